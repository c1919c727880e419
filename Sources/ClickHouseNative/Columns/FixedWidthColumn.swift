/// 16 raw bytes in wire order: UUID (two little-endian UInt64 halves, high half first) and IPv6
/// (network byte order).
public struct Bits128: Hashable, Sendable, BitwiseCopyable {
    public var first: UInt64
    public var second: UInt64
    public init(first: UInt64, second: UInt64) {
        self.first = first
        self.second = second
    }

    /// The 16 bytes as they are on the wire.
    public var bytes: [UInt8] { withUnsafeBytes(of: self) { Array($0) } }
}

/// A 256-bit little-endian integer (Int256, UInt256, Decimal256), as four 64-bit limbs, least significant first.
public struct Bits256: Hashable, Sendable, BitwiseCopyable {
    public var limb0: UInt64, limb1: UInt64, limb2: UInt64, limb3: UInt64
    public init(limb0: UInt64, limb1: UInt64, limb2: UInt64, limb3: UInt64) {
        (self.limb0, self.limb1, self.limb2, self.limb3) = (limb0, limb1, limb2, limb3)
    }
    public var limbs: [UInt64] { [limb0, limb1, limb2, limb3] }
}

/// Values of a fixed-width type, stored in wire layout: integers, floats, dates and times, enums,
/// decimals, UUID, IP addresses, intervals, Bool. Element types: the matching Swift integer or
/// float (`Date` as UInt16 days, `DateTime` as UInt32 seconds, `DateTime64` as Int64 ticks,
/// `Enum8` as Int8, `Decimal(9, S)` as Int32 of value × 10^S, ...), ``Bits128``, ``Bits256``.
public struct FixedWidthColumn<Element: BitwiseCopyable & Sendable>: Column {
    public let type: ClickHouseType
    public var values: [Element]

    public init(type: ClickHouseType, values: [Element] = []) {
        self.type = type
        self.values = values
    }

    public var count: Int { values.count }
    public subscript(row: Int) -> Element { values[row] }

    public mutating func append(_ value: Element) { values.append(value) }
    public mutating func append(contentsOf newValues: [Element]) { values.append(contentsOf: newValues) }
    public mutating func reserveCapacity(_ n: Int) { values.reserveCapacity(n) }
}

struct FixedWidthCodec<Element: BitwiseCopyable & Sendable>: ColumnCodec, NullAwareWriting {
    let type: ClickHouseType
    var fixedWidth: Int? { MemoryLayout<Element>.stride }

    func read(_ reader: inout ByteReader, count: Int, prefix: PrefixState) throws -> any Column {
        let stride = MemoryLayout<Element>.stride
        guard reader.remaining / stride >= count else {
            throw ColumnCodecError.unexpectedEnd(row: reader.remaining / stride)
        }
        return FixedWidthColumn(type: type, values: try reader.readFixedWidthArray(of: Element.self, count: count))
    }

    func write(_ column: any Column, to writer: inout ByteWriter) throws { try write(column, to: &writer, nulls: nil) }

    func write(_ column: any Column, to writer: inout ByteWriter, nulls: [UInt8]?) throws {
        let values = try cast(column, to: FixedWidthColumn<Element>.self).values
        if let refusal = undefinedEnumValue(values, of: type, nulls: nulls) { throw ColumnCodecError.invalid(refusal) }
        writer.writeFixedWidthArray(values)
    }

    func makeDirectFill(name: String, count: Int) -> (any DirectColumnFill)? {
        FixedWidthFill<Element>(name: name, type: type, count: count)
    }
}

/// Why the first Enum number the type does not define cannot be sent, or nil when all are defined
/// (or the type is no Enum). The server stores whatever arrives in a Native block without looking,
/// and an undefined number, once stored, makes every later read of the table fail ("Unexpected
/// value 5 in enum", on 18.16 and 26.x alike). Such a number can come from a server (a join's
/// default row is 0 whether or not the Enum defines it): it cannot be written back. `nulls`: a
/// Nullable's null map; its NULL rows hold placeholders the server never reads as values.
/// (Decimals are not checked: the server itself stores results of Decimal arithmetic with more
/// digits than their precision.)
func undefinedEnumValue<Element>(_ values: [Element], of type: ClickHouseType, nulls: [UInt8]?) -> String? {
    let cases: [ClickHouseType.EnumCase]
    switch type {
    case let .enum8(enumCases), let .enum16(enumCases): cases = enumCases
    default: return nil
    }
    let defined = Set(cases.map(\.value))
    func first<Integer: BinaryInteger>(_ values: [Integer]) -> String? {
        guard let row = values.indices.first(where: { (nulls == nil || nulls![$0] == 0) && !defined.contains(Int(values[$0])) }) else { return nil }
        return "value \(values[row]) at row \(row) is not one of \(type.name)"
    }
    switch values {  // the storage types of Enum8 and Enum16
    case let values as [Int8]: return first(values)
    case let values as [Int16]: return first(values)
    default: return nil
    }
}

/// A codec that checks values before it writes them (``undefinedEnumValue(_:of:nulls:)``), told which rows a
/// Nullable marks NULL so that their placeholders are not checked.
protocol NullAwareWriting {
    func write(_ column: any Column, to writer: inout ByteWriter, nulls: [UInt8]?) throws
}

/// A column whose wire bytes are copied into its array as they arrive, piece by piece.
protocol DirectColumnFill: AnyObject {
    var name: String { get }
    /// Bytes still to come.
    var remainingBytes: Int { get }
    /// Takes as many of the reader's bytes as the column still needs.
    func take(from reader: inout ByteReader)
    /// The column, once ``remainingBytes`` is 0.
    func finish() -> any Column
}

/// Lets a large fixed-width column that arrives over many socket reads be copied from each read
/// straight into its array, instead of into a buffer first and into the array once all is here.
final class FixedWidthFill<Element: BitwiseCopyable & Sendable>: DirectColumnFill {
    let name: String
    let type: ClickHouseType
    private var values: [Element]
    private var filled = 0
    private let byteCount: Int

    init(name: String, type: ClickHouseType, count: Int) {
        self.name = name
        self.type = type
        self.byteCount = count * MemoryLayout<Element>.stride
        // Left uninitialized: every byte is written by `take` before `finish` hands the array out,
        // and zeroing it first would touch each page once more than the copy does.
        self.values = [Element](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }

    var remainingBytes: Int { byteCount - filled }

    func take(from reader: inout ByteReader) {
        let count = min(reader.remaining, remainingBytes)
        guard count > 0, let source = reader.base.baseAddress else { return }
        let offset = filled
        values.withUnsafeMutableBytes { destination in
            (destination.baseAddress! + offset).copyMemory(from: source + reader.offset, byteCount: count)
        }
        filled += count
        reader.offset += count
    }

    func finish() -> any Column {
        precondition(remainingBytes == 0, "a column handed out before all its bytes arrived")
        defer { values = [] }
        return FixedWidthColumn(type: type, values: values)
    }
}

/// `Nothing`: no values, one placeholder byte per row.
public struct NothingColumn: Column {
    public let type: ClickHouseType = .nothing
    public var count: Int
    public init(count: Int) { self.count = count }
}

struct NothingCodec: ColumnCodec {
    let type: ClickHouseType
    var fixedWidth: Int? { 1 }  // one placeholder byte per row
    func read(_ reader: inout ByteReader, count: Int, prefix: PrefixState) throws -> any Column {
        guard reader.remaining >= count else { throw ColumnCodecError.unexpectedEnd(row: reader.remaining) }
        try reader.skip(count)
        return NothingColumn(count: count)
    }
    func write(_ column: any Column, to writer: inout ByteWriter) throws {
        writer.writeBytes(repeatElement(UInt8(ascii: "0"), count: column.count))
    }
}
