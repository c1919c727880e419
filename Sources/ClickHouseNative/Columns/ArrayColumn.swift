/// `Array(T)`: cumulative end offsets (wire layout) over one column holding all elements.
public struct ArrayColumn: Column {
    public let type: ClickHouseType
    /// `offsets[i]` is the end of row i in ``elements``; row i starts at `offsets[i - 1]` (or 0).
    public var offsets: [UInt64]
    public var elements: any Column

    public init(type: ClickHouseType, offsets: [UInt64], elements: any Column) {
        self.type = type
        self.offsets = offsets
        self.elements = elements
    }

    /// `Array(T)` for a fixed-width T from Swift arrays.
    public init<T: BitwiseCopyable & Sendable>(elementType: ClickHouseType, arrays: [[T]]) {
        var offsets: [UInt64] = []
        offsets.reserveCapacity(arrays.count)
        var values: [T] = []
        for array in arrays {
            values.append(contentsOf: array)
            offsets.append(UInt64(values.count))
        }
        self.init(type: .array(elementType), offsets: offsets, elements: FixedWidthColumn(type: elementType, values: values))
    }

    public var count: Int { offsets.count }

    /// The element indexes of row `row`.
    public func range(at row: Int) -> Range<Int> {
        Int(row == 0 ? 0 : offsets[row - 1])..<Int(offsets[row])
    }
}

/// Reads `count` array offsets and checks they never decrease (else a hostile offset could index
/// past the elements); returns them and the element count.
func readOffsets(_ reader: inout ByteReader, count: Int, elementsMayBeEmpty: Bool = false) throws -> [UInt64] {
    _ = try checkOffsets(reader, count: count, elementsMayBeEmpty: elementsMayBeEmpty)
    return try reader.readFixedWidthArray(of: UInt64.self, count: count)
}

/// Checks the `count` array offsets at the reader's position (they never decrease, and the
/// elements they count can be in what follows) and returns the element count, the last offset.
func checkOffsets(_ reader: ByteReader, count: Int, elementsMayBeEmpty: Bool = false) throws -> Int {
    if count == 0 { return 0 }
    guard reader.remaining / 8 >= count, let base = reader.base.baseAddress else {
        throw ColumnCodecError.unexpectedEnd(row: reader.remaining / 8)
    }
    var previous: UInt64 = 0
    for row in 0..<count {
        let offset = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: reader.offset + row * 8, as: UInt64.self))
        guard offset >= previous else {
            throw ColumnCodecError.invalid("array offsets decrease at row \(row) (\(offset) after \(previous))")
        }
        previous = offset
    }
    // Every element takes at least one byte (Nothing and empty tuples are read as one placeholder
    // byte per row too), so the total can never exceed the bytes left; except JSON values, which
    // take none in the flattened form when the block has no paths (a valid `['{}'::JSON]` was
    // taken for truncated input). Those get 2^24 elements beyond the bytes: unbounded, a 33-byte
    // block could claim 2^31 of them and become gigabytes of text.
    let limit = UInt64(reader.remaining - count * 8) + (elementsMayBeEmpty ? 1 << 24 : 0)
    guard previous <= limit else {
        // Either truncated input or a hostile offset: in both cases the elements are not there.
        throw ColumnCodecError.unexpectedEnd(row: count)
    }
    return Int(previous)
}

struct ArrayCodec: ColumnCodec {
    let type: ClickHouseType
    let elements: any ColumnCodec

    func readPrefix(_ reader: inout ByteReader) throws -> PrefixState { try elements.readPrefix(&reader) }

    func read(_ reader: inout ByteReader, count: Int, prefix: PrefixState) throws -> any Column {
        let offsets = try readOffsets(&reader, count: count, elementsMayBeEmpty: elements.type.valuesMayBeEmpty)
        let elementCount = Int(offsets.last ?? 0)
        return ArrayColumn(type: type, offsets: offsets, elements: try elements.read(&reader, count: elementCount, prefix: prefix))
    }

    func writePrefix(_ column: any Column, to writer: inout ByteWriter) throws {
        try elements.writePrefix(try cast(column, to: ArrayColumn.self).elements, to: &writer)
    }

    func write(_ column: any Column, to writer: inout ByteWriter) throws {
        let array = try cast(column, to: ArrayColumn.self)
        guard Int(array.offsets.last ?? 0) == array.elements.count else {
            throw ColumnCodecError.invalid("Array offsets end at \(array.offsets.last ?? 0) but there are \(array.elements.count) elements")
        }
        writer.writeFixedWidthArray(array.offsets)
        try elements.write(array.elements, to: &writer)
    }
}

/// `Map(K, V)`: stored as `Array(Tuple(K, V))`: offsets, then all keys, then all values.
public struct MapColumn: Column {
    public let type: ClickHouseType
    public var offsets: [UInt64]
    public var keys: any Column
    public var values: any Column

    public init(type: ClickHouseType, offsets: [UInt64], keys: any Column, values: any Column) {
        self.type = type
        self.offsets = offsets
        self.keys = keys
        self.values = values
    }

    public var count: Int { offsets.count }
    public func range(at row: Int) -> Range<Int> {
        Int(row == 0 ? 0 : offsets[row - 1])..<Int(offsets[row])
    }
}

struct MapCodec: ColumnCodec {
    let type: ClickHouseType
    let keys: any ColumnCodec
    let values: any ColumnCodec

    func readPrefix(_ reader: inout ByteReader) throws -> PrefixState {
        .children([try keys.readPrefix(&reader), try values.readPrefix(&reader)])
    }

    func read(_ reader: inout ByteReader, count: Int, prefix: PrefixState) throws -> any Column {
        let offsets = try readOffsets(&reader, count: count)
        let n = Int(offsets.last ?? 0)
        let keyColumn = try keys.read(&reader, count: n, prefix: prefix.child(0))
        let valueColumn = try values.read(&reader, count: n, prefix: prefix.child(1))
        return MapColumn(type: type, offsets: offsets, keys: keyColumn, values: valueColumn)
    }

    func writePrefix(_ column: any Column, to writer: inout ByteWriter) throws {
        let map = try cast(column, to: MapColumn.self)
        try keys.writePrefix(map.keys, to: &writer)
        try values.writePrefix(map.values, to: &writer)
    }

    func write(_ column: any Column, to writer: inout ByteWriter) throws {
        let map = try cast(column, to: MapColumn.self)
        let n = Int(map.offsets.last ?? 0)
        guard map.keys.count == n, map.values.count == n else {
            throw ColumnCodecError.invalid("Map offsets end at \(n) but there are \(map.keys.count) keys and \(map.values.count) values")
        }
        writer.writeFixedWidthArray(map.offsets)
        try keys.write(map.keys, to: &writer)
        try values.write(map.values, to: &writer)
    }
}

extension ClickHouseType {
    /// Whether a value may take no bytes at all in Native data: JSON in its flattened form with
    /// no paths, and tuples made only of such values.
    var valuesMayBeEmpty: Bool {
        switch self {
        case .json: return true
        case let .tuple(elements): return !elements.isEmpty && elements.allSatisfy { $0.type.valuesMayBeEmpty }
        default: return false
        }
    }
}
