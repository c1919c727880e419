import Foundation

/// A result column that is absent or not of the kind asked for, named with its ClickHouse type.
public struct ColumnAccessError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Typed values out of a result block, with an error that names the column's actual type when it
/// is not what the caller expects (a cast with `as?` fails silently, and a loop that skips such
/// blocks processes nothing). Storage types: integers and floats as themselves, Bool as `UInt8`,
/// Date as `UInt16` days, Date32 as `Int32` days, DateTime as `UInt32` seconds, DateTime64 as
/// `Int64` ticks, Decimal as its unscaled integer, UUID and IPv6 as ``Bits128``; ``uuids(_:)``
/// and ``dates(_:)`` convert to Foundation's types.
extension Block {
    /// The column `name` as the column type `C` (`FixedWidthColumn<UInt64>`, `StringColumn`, ...).
    public func column<C: Column>(_ name: String, as _: C.Type = C.self) throws -> C {
        let column = try requireColumn(name)
        guard let typed = column as? C else {
            throw ColumnAccessError("column \(name) is \(column.type.name), not readable as \(C.self)")
        }
        return typed
    }

    private func requireColumn(_ name: String) throws -> any Column {
        guard let column = self[name] else {
            throw ColumnAccessError("no column \(name) (the block has \(columns.map(\.name).joined(separator: ", ")))")
        }
        return column
    }

    /// String, FixedString (its bytes as UTF-8, trailing zero bytes kept) and LowCardinality of
    /// them; NULL is refused (use ``optionalStrings(_:)``).
    public func strings(_ name: String) throws -> [String] {
        try optionalStrings(name).enumerated().map { row, value in
            guard let value else { throw ColumnAccessError("column \(name) has NULL at row \(row); read it with optionalStrings") }
            return value
        }
    }

    /// As ``strings(_:)``, also for Nullable and LowCardinality(Nullable) columns.
    public func optionalStrings(_ name: String) throws -> [String?] {
        let column = try requireColumn(name)
        guard let strings = Self.optionalStrings(column) else {
            throw ColumnAccessError("column \(name) is \(column.type.name), not a string type")
        }
        return strings
    }

    static func optionalStrings(_ column: any Column) -> [String?]? {
        switch column {
        case let strings as StringColumn: return (0..<strings.count).map { strings[$0] }
        case let fixed as FixedStringColumn: return (0..<fixed.count).map { String(decoding: fixed[$0], as: UTF8.self) }
        case let nullable as NullableColumn:
            guard let inner = optionalStrings(nullable.values) else { return nil }
            return inner.indices.map { nullable.isNull($0) ? nil : inner[$0] }
        case let lowCardinality as LowCardinalityColumn:
            guard let dictionary = optionalStrings(lowCardinality.dictionary) else { return nil }
            return (0..<lowCardinality.count).map { lowCardinality.isNull($0) ? nil : dictionary[lowCardinality.indexes[$0]] }
        default: return nil
        }
    }

    /// Fixed-width values stored as `T` (see the storage types above); NULL is refused.
    public func values<T: BitwiseCopyable & Sendable>(_ name: String, as type: T.Type) throws -> [T] {
        try optionalValues(name, as: type).enumerated().map { row, value in
            guard let value else { throw ColumnAccessError("column \(name) has NULL at row \(row); read it with optionalValues") }
            return value
        }
    }

    /// As ``values(_:as:)``, also for Nullable and LowCardinality(Nullable) columns.
    public func optionalValues<T: BitwiseCopyable & Sendable>(_ name: String, as _: T.Type) throws -> [T?] {
        let column = try requireColumn(name)
        guard let values: [T?] = Self.optionalValues(column) else {
            throw ColumnAccessError("column \(name) is \(column.type.name), not stored as \(T.self)")
        }
        return values
    }

    static func optionalValues<T: BitwiseCopyable & Sendable>(_ column: any Column) -> [T?]? {
        switch column {
        case let fixed as FixedWidthColumn<T>: return fixed.values.map { $0 }
        case let nullable as NullableColumn:
            guard let inner: [T?] = optionalValues(nullable.values) else { return nil }
            return inner.indices.map { nullable.isNull($0) ? nil : inner[$0] }
        case let lowCardinality as LowCardinalityColumn:
            guard let dictionary: [T?] = optionalValues(lowCardinality.dictionary) else { return nil }
            return (0..<lowCardinality.count).map { lowCardinality.isNull($0) ? nil : dictionary[lowCardinality.indexes[$0]] }
        default: return nil
        }
    }

    /// A UUID column's values.
    public func uuids(_ name: String) throws -> [UUID] {
        let column = try requireColumn(name)
        guard column.type == .uuid, let values = column as? FixedWidthColumn<Bits128> else {
            throw ColumnAccessError("column \(name) is \(column.type.name), not UUID")
        }
        return values.values.map(UUID.init(clickHouse:))
    }

    /// Date, Date32, DateTime and DateTime64 values as instants (a date is its midnight UTC).
    public func dates(_ name: String) throws -> [Date] {
        let column = try requireColumn(name)
        switch column.type {
        case .date: return try values(name, as: UInt16.self).map { Date(timeIntervalSince1970: Double($0) * 86_400) }
        case .date32: return try values(name, as: Int32.self).map { Date(timeIntervalSince1970: Double($0) * 86_400) }
        case .dateTime: return try values(name, as: UInt32.self).map { Date(timeIntervalSince1970: Double($0)) }
        case let .dateTime64(precision, _):
            let scale = Double(ValueText.pow10(precision))
            return try values(name, as: Int64.self).map { Date(timeIntervalSince1970: Double($0) / scale) }
        default:
            throw ColumnAccessError("column \(name) is \(column.type.name), not a date or time")
        }
    }
}

extension UUID {
    /// The id a ClickHouse `UUID` value holds: its two halves, each a little-endian 64-bit integer
    /// on the wire, are the UUID's first and last 8 bytes read as big-endian integers.
    public init(clickHouse value: Bits128) {
        var bytes: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &bytes) { buffer in
            buffer.storeBytes(of: value.first.bigEndian, toByteOffset: 0, as: UInt64.self)
            buffer.storeBytes(of: value.second.bigEndian, toByteOffset: 8, as: UInt64.self)
        }
        self.init(uuid: bytes)
    }

    /// The value of a ClickHouse `UUID` column holding this id.
    public var clickHouseValue: Bits128 {
        withUnsafeBytes(of: uuid) { buffer in
            Bits128(first: UInt64(bigEndian: buffer.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
                    second: UInt64(bigEndian: buffer.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        }
    }
}
