/// `Tuple(T1, ..., Tk)`: one column per element, all of the same length.
public struct TupleColumn: Column {
    public let type: ClickHouseType
    public var elements: [any Column]
    /// Rows of a tuple with no elements (its count cannot come from an element).
    let emptyTupleCount: Int

    public init(type: ClickHouseType, elements: [any Column]) {
        self.type = type
        self.elements = elements
        self.emptyTupleCount = 0
    }

    init(type: ClickHouseType, emptyTupleCount: Int) {
        self.type = type
        self.elements = []
        self.emptyTupleCount = emptyTupleCount
    }

    public var count: Int { elements.first?.count ?? emptyTupleCount }
}

struct TupleCodec: ColumnCodec {
    let type: ClickHouseType
    let names: [String?]
    let elements: [any ColumnCodec]

    func readPrefix(_ reader: inout ByteReader) throws -> PrefixState {
        .children(try elements.map { try $0.readPrefix(&reader) })
    }

    func read(_ reader: inout ByteReader, count: Int, prefix: PrefixState) throws -> any Column {
        if elements.isEmpty {
            // `Tuple()` writes one placeholder byte per row.
            guard reader.remaining >= count else { throw ColumnCodecError.unexpectedEnd(row: reader.remaining) }
            try reader.skip(count)
            return TupleColumn(type: type, emptyTupleCount: count)
        }
        var columns: [any Column] = []
        columns.reserveCapacity(elements.count)
        for (index, element) in elements.enumerated() {
            columns.append(try element.read(&reader, count: count, prefix: prefix.child(index)))
        }
        return TupleColumn(type: type, elements: columns)
    }

    func writePrefix(_ column: any Column, to writer: inout ByteWriter) throws {
        let tuple = try checked(column)
        for (codec, element) in zip(elements, tuple.elements) { try codec.writePrefix(element, to: &writer) }
    }

    func write(_ column: any Column, to writer: inout ByteWriter) throws {
        let tuple = try checked(column)
        if elements.isEmpty {
            writer.writeBytes(repeatElement(UInt8(ascii: "0"), count: tuple.count))
            return
        }
        for (codec, element) in zip(elements, tuple.elements) { try codec.write(element, to: &writer) }
    }

    private func checked(_ column: any Column) throws -> TupleColumn {
        let tuple = try cast(column, to: TupleColumn.self)
        guard tuple.elements.count == elements.count else {
            throw ColumnCodecError.invalid("Tuple has \(elements.count) elements in its type but \(tuple.elements.count) columns")
        }
        guard tuple.elements.allSatisfy({ $0.count == tuple.count }) else {
            throw ColumnCodecError.invalid("Tuple element columns differ in length")
        }
        return tuple
    }
}
