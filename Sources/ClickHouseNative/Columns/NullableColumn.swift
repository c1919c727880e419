/// `Nullable(T)`: a null map (1 = NULL) and a column of T with a placeholder at each NULL row.
public struct NullableColumn: Column {
    public let type: ClickHouseType
    public var nulls: [UInt8]
    public var values: any Column

    public init(type: ClickHouseType, nulls: [UInt8], values: any Column) {
        self.type = type
        self.nulls = nulls
        self.values = values
    }

    public var count: Int { nulls.count }
    public func isNull(_ row: Int) -> Bool { nulls[row] != 0 }

    /// `Nullable(String)` from optional strings.
    public init(strings: [String?]) {
        var column = StringColumn()
        for value in strings { column.append(value ?? "") }
        self.init(type: .nullable(.string), nulls: strings.map { $0 == nil ? 1 : 0 }, values: column)
    }

    /// `Nullable(T)` for a fixed-width T from optional values (NULL rows hold `placeholder`).
    public init<T: BitwiseCopyable & Sendable>(type inner: ClickHouseType, values: [T?], placeholder: T) {
        self.init(type: .nullable(inner), nulls: values.map { $0 == nil ? 1 : 0 },
                  values: FixedWidthColumn(type: inner, values: values.map { $0 ?? placeholder }))
    }
}

struct NullableCodec: ColumnCodec {
    let type: ClickHouseType
    let inner: any ColumnCodec

    func readPrefix(_ reader: inout ByteReader) throws -> PrefixState { try inner.readPrefix(&reader) }

    func read(_ reader: inout ByteReader, count: Int, prefix: PrefixState) throws -> any Column {
        guard reader.remaining >= count else { throw ColumnCodecError.unexpectedEnd(row: reader.remaining) }
        let nulls = try reader.readFixedWidthArray(of: UInt8.self, count: count)
        return NullableColumn(type: type, nulls: nulls, values: try inner.read(&reader, count: count, prefix: prefix))
    }

    func writePrefix(_ column: any Column, to writer: inout ByteWriter) throws {
        try inner.writePrefix(try cast(column, to: NullableColumn.self).values, to: &writer)
    }

    func write(_ column: any Column, to writer: inout ByteWriter) throws {
        let nullable = try cast(column, to: NullableColumn.self)
        guard nullable.values.count == nullable.nulls.count else {
            throw ColumnCodecError.invalid("Nullable column has \(nullable.nulls.count) null flags but \(nullable.values.count) values")
        }
        writer.writeFixedWidthArray(nullable.nulls)
        if let inner = inner as? any NullAwareWriting {
            try inner.write(nullable.values, to: &writer, nulls: nullable.nulls)
        } else {
            try inner.write(nullable.values, to: &writer)
        }
    }
}
