/// A column of values of one ClickHouse type, stored contiguously (no per-value boxing).
///
/// Concrete columns (``FixedWidthColumn``, ``StringColumn``, ``ArrayColumn``, ...) give typed
/// access and builders; code that handles any type works with `any Column` once per column.
public protocol Column: Sendable {
    /// The column's type, as named in block headers.
    var type: ClickHouseType { get }
    /// Number of values (rows at this nesting level).
    var count: Int { get }
}

/// Why a column could not be decoded; ``NativeFormatError`` adds the column name and type.
public enum ColumnCodecError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input ended while reading value `row` (at the nesting level being read).
    case unexpectedEnd(row: Int)
    /// The bytes cannot be valid for the type.
    case invalid(String)
    /// A column given to the encoder does not match the type it is encoded as.
    case columnMismatch(expected: String, actual: String)

    public var description: String {
        switch self {
        case let .unexpectedEnd(row): return "unexpected end of data at row \(row)"
        case let .invalid(message): return message
        case let .columnMismatch(expected, actual): return "expected a column of type \(expected), got \(actual)"
        }
    }
}

/// Serialization state read before a column's data (LowCardinality key versions, Variant modes,
/// Dynamic/JSON structures), depth-first over the type tree.
indirect enum PrefixState: Sendable {
    case none
    case children([PrefixState])
    case lowCardinality(inner: PrefixState)
    case variant(mode: UInt64, members: [PrefixState])
    case dynamic(DynamicStructure)
    case json(JSONStructure)

    func child(_ index: Int) -> PrefixState {
        if case let .children(states) = self, index < states.count { return states[index] }
        return .none
    }
}

/// Reads and writes the Native encoding of one type. Codecs are built once per column per block.
protocol ColumnCodec: Sendable {
    var type: ClickHouseType { get }
    func readPrefix(_ reader: inout ByteReader) throws -> PrefixState
    func read(_ reader: inout ByteReader, count: Int, prefix: PrefixState) throws -> any Column
    func writePrefix(_ column: any Column, to writer: inout ByteWriter) throws
    func write(_ column: any Column, to writer: inout ByteWriter) throws
    /// Bytes per value when every value takes the same (no prefix, no lengths); nil otherwise.
    var fixedWidth: Int? { get }
    /// A column of `count` values to be filled with their wire bytes as they arrive; nil for
    /// types whose values are not their wire bytes.
    func makeDirectFill(name: String, count: Int) -> (any DirectColumnFill)?
}

extension ColumnCodec {
    var fixedWidth: Int? { nil }
    func makeDirectFill(name: String, count: Int) -> (any DirectColumnFill)? { nil }
    func readPrefix(_ reader: inout ByteReader) throws -> PrefixState { .none }
    func writePrefix(_ column: any Column, to writer: inout ByteWriter) throws {}

    func cast<C: Column>(_ column: any Column, to _: C.Type) throws -> C {
        guard let typed = column as? C else {
            // Name the Swift column types too: FixedWidthColumn<Int> labelled UInt64 is a common slip.
            throw ColumnCodecError.columnMismatch(expected: "\(type.name) (\(C.self))",
                                                  actual: "\(column.type.name) (\(Swift.type(of: column)))")
        }
        return typed
    }
}

/// Maps a short read inside a column to the row being read.
@inline(__always)
func rowContext<R>(_ row: Int, _ body: () throws -> R) throws -> R {
    do {
        return try body()
    } catch is WireError {
        throw ColumnCodecError.unexpectedEnd(row: row)
    }
}

/// The codec for a type. Aliases (geo types, Nested, SimpleAggregateFunction) use their storage
/// type's codec but keep their own name.
func makeCodec(for type: ClickHouseType) throws -> any ColumnCodec {
    switch type {
    case .int8: return FixedWidthCodec<Int8>(type: type)
    case .int16: return FixedWidthCodec<Int16>(type: type)
    case .int32: return FixedWidthCodec<Int32>(type: type)
    case .int64: return FixedWidthCodec<Int64>(type: type)
    case .int128: return FixedWidthCodec<Int128>(type: type)
    case .int256, .uint256: return FixedWidthCodec<Bits256>(type: type)
    case .uint8, .bool: return FixedWidthCodec<UInt8>(type: type)
    case .uint16, .date, .bfloat16: return FixedWidthCodec<UInt16>(type: type)
    case .uint32, .dateTime, .ipv4: return FixedWidthCodec<UInt32>(type: type)
    case .uint64: return FixedWidthCodec<UInt64>(type: type)
    case .uint128: return FixedWidthCodec<UInt128>(type: type)
    case .float32: return FixedWidthCodec<Float>(type: type)
    case .float64: return FixedWidthCodec<Double>(type: type)
    case .date32, .time: return FixedWidthCodec<Int32>(type: type)
    case .dateTime64, .time64, .interval: return FixedWidthCodec<Int64>(type: type)
    case .uuid, .ipv6: return FixedWidthCodec<Bits128>(type: type)
    case .enum8: return FixedWidthCodec<Int8>(type: type)
    case .enum16: return FixedWidthCodec<Int16>(type: type)
    case let .decimal(precision, _):
        switch precision {
        case ...9: return FixedWidthCodec<Int32>(type: type)
        case ...18: return FixedWidthCodec<Int64>(type: type)
        case ...38: return FixedWidthCodec<Int128>(type: type)
        default: return FixedWidthCodec<Bits256>(type: type)
        }
    case .string: return StringCodec(type: type)
    case let .fixedString(length): return FixedStringCodec(type: type, length: length)
    case .nothing: return NothingCodec(type: type)
    case let .nullable(inner): return NullableCodec(type: type, inner: try makeCodec(for: inner))
    case let .array(inner): return ArrayCodec(type: type, elements: try makeCodec(for: inner))
    case let .map(key, value):
        return MapCodec(type: type, keys: try makeCodec(for: key), values: try makeCodec(for: value))
    case let .tuple(elements):
        return TupleCodec(type: type, names: elements.map(\.name), elements: try elements.map { try makeCodec(for: $0.type) })
    case let .lowCardinality(inner): return try LowCardinalityCodec(type: type, inner: inner)
    case let .variant(members): return VariantCodec(type: type, members: try members.map { try makeCodec(for: $0) })
    case .dynamic: return DynamicCodec(type: type)
    case let .json(parameters): return try JSONObjectCodec(type: type, parameters: parameters)
    case .point, .ring, .lineString, .multiLineString, .polygon, .multiPolygon, .nested, .simpleAggregateFunction:
        return AliasCodec(type: type, storage: try makeCodec(for: type.storageType))
    }
}

/// A type stored as another (``ClickHouseType/storageType``): same bytes, its own name.
struct AliasCodec: ColumnCodec {
    let type: ClickHouseType
    let storage: any ColumnCodec
    var fixedWidth: Int? { storage.fixedWidth }

    func readPrefix(_ reader: inout ByteReader) throws -> PrefixState { try storage.readPrefix(&reader) }
    func read(_ reader: inout ByteReader, count: Int, prefix: PrefixState) throws -> any Column {
        AliasColumn(type: type, storage: try storage.read(&reader, count: count, prefix: prefix))
    }
    func writePrefix(_ column: any Column, to writer: inout ByteWriter) throws {
        try storage.writePrefix(unwrap(column), to: &writer)
    }
    func write(_ column: any Column, to writer: inout ByteWriter) throws {
        try storage.write(unwrap(column), to: &writer)
    }
    private func unwrap(_ column: any Column) -> any Column {
        (column as? AliasColumn)?.storage ?? column
    }
}

/// A column of an alias type (Point, Nested, SimpleAggregateFunction, ...) over its storage column.
public struct AliasColumn: Column {
    public let type: ClickHouseType
    /// The values, as a column of ``ClickHouseType/storageType``.
    public var storage: any Column
    public var count: Int { storage.count }

    public init(type: ClickHouseType, storage: any Column) {
        self.type = type
        self.storage = storage
    }
}

/// The order ClickHouse sorts names in (Variant members, JSON paths, Dynamic types): by their
/// UTF-8 bytes. Swift's `<` on strings compares canonically equivalent text as equal, which swapped
/// two JSON paths spelled with a decomposed and a precomposed "é".
func precedesByBytes<S: StringProtocol>(_ a: S, _ b: S) -> Bool {
    a.utf8.lexicographicallyPrecedes(b.utf8)
}
