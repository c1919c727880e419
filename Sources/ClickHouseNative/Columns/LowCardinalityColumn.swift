/// Dictionary indexes of a LowCardinality column, kept at the width the wire used.
public enum LowCardinalityIndexes: Sendable, Equatable {
    case uint8([UInt8])
    case uint16([UInt16])
    case uint32([UInt32])
    case uint64([UInt64])

    public var count: Int {
        switch self {
        case let .uint8(v): return v.count
        case let .uint16(v): return v.count
        case let .uint32(v): return v.count
        case let .uint64(v): return v.count
        }
    }

    @inlinable
    public subscript(row: Int) -> Int {
        switch self {
        case let .uint8(v): return Int(v[row])
        case let .uint16(v): return Int(v[row])
        case let .uint32(v): return Int(v[row])
        case let .uint64(v): return Int(truncatingIfNeeded: v[row])
        }
    }

    /// Key type code in the index metadata word: 0 UInt8 … 3 UInt64.
    var keyTypeCode: UInt64 {
        switch self {
        case .uint8: return 0
        case .uint16: return 1
        case .uint32: return 2
        case .uint64: return 3
        }
    }

    /// The narrowest indexes that can address `dictionarySize` entries.
    static func narrowest(_ indexes: [Int], dictionarySize: Int) -> LowCardinalityIndexes {
        if dictionarySize <= 1 << 8 { return .uint8(indexes.map { UInt8(truncatingIfNeeded: $0) }) }
        if dictionarySize <= 1 << 16 { return .uint16(indexes.map { UInt16(truncatingIfNeeded: $0) }) }
        if dictionarySize <= 1 << 32 { return .uint32(indexes.map { UInt32(truncatingIfNeeded: $0) }) }
        return .uint64(indexes.map { UInt64($0) })
    }
}

/// `LowCardinality(T)`: a dictionary of distinct values and one index per row. For
/// `LowCardinality(Nullable(T))` the dictionary holds T and index 0 means NULL.
public struct LowCardinalityColumn: Column {
    public let type: ClickHouseType
    /// Dictionary values, of T without Nullable.
    public var dictionary: any Column
    public var indexes: LowCardinalityIndexes

    public init(type: ClickHouseType, dictionary: any Column, indexes: LowCardinalityIndexes) {
        self.type = type
        self.dictionary = dictionary
        self.indexes = indexes
    }

    public var count: Int { indexes.count }

    /// Whether index 0 stands for NULL (the type is `LowCardinality(Nullable(T))`).
    public var isNullable: Bool { type.isNullable }

    public func isNull(_ row: Int) -> Bool { isNullable && indexes[row] == 0 }

    /// `LowCardinality(String)` (or `LowCardinality(Nullable(String))` when `nullable`) built the way the
    /// server builds it: default value first (after the NULL slot), then distinct values in order of appearance.
    /// A nil in a column that is not nullable is the default, the empty string (as the server's
    /// text formats take NULL for such a column); it used to stop the program.
    public init(strings: [String?], nullable: Bool = false) {
        var dictionary = StringColumn()
        var positions: [String: Int] = [:]
        if nullable { dictionary.append("") }  // slot 0: NULL
        dictionary.append("")
        positions[""] = dictionary.count - 1
        var indexes: [Int] = []
        indexes.reserveCapacity(strings.count)
        for value in strings {
            guard let value else {
                indexes.append(nullable ? 0 : positions[""]!)
                continue
            }
            if let position = positions[value] {
                indexes.append(position)
            } else {
                dictionary.append(value)
                positions[value] = dictionary.count - 1
                indexes.append(dictionary.count - 1)
            }
        }
        self.init(type: .lowCardinality(nullable ? .nullable(.string) : .string), dictionary: dictionary,
                  indexes: .narrowest(indexes, dictionarySize: dictionary.count))
    }
}

struct LowCardinalityCodec: ColumnCodec {
    let type: ClickHouseType
    let dictionaryCodec: any ColumnCodec

    static let sharedDictionariesWithAdditionalKeys: UInt64 = 1
    static let needGlobalDictionary: UInt64 = 0x100
    static let hasAdditionalKeys: UInt64 = 0x200
    static let needUpdateDictionary: UInt64 = 0x400

    init(type: ClickHouseType, inner: ClickHouseType) throws {
        self.type = type
        var dictionaryType = inner
        if case let .nullable(t) = inner { dictionaryType = t }
        self.dictionaryCodec = try makeCodec(for: dictionaryType)
    }

    func readPrefix(_ reader: inout ByteReader) throws -> PrefixState {
        let version = try rowContext(0) { try reader.readInteger(as: UInt64.self) }
        guard version == Self.sharedDictionariesWithAdditionalKeys else {
            throw ColumnCodecError.invalid("invalid LowCardinality key serialization version \(version)")
        }
        return .lowCardinality(inner: try dictionaryCodec.readPrefix(&reader))
    }

    func read(_ reader: inout ByteReader, count: Int, prefix: PrefixState) throws -> any Column {
        if count == 0 { return LowCardinalityColumn(type: type, dictionary: try dictionaryCodec.read(&reader, count: 0, prefix: .none), indexes: .uint8([])) }
        var innerPrefix = PrefixState.none
        if case let .lowCardinality(inner) = prefix { innerPrefix = inner }

        let meta = try rowContext(0) { try reader.readInteger(as: UInt64.self) }
        let keyType = meta & 0xFF
        let flags = meta & ~0xFF
        guard keyType <= 3,
              flags & Self.needGlobalDictionary == 0,
              flags & Self.hasAdditionalKeys != 0,
              flags & ~(Self.hasAdditionalKeys | Self.needUpdateDictionary | Self.needGlobalDictionary) == 0 else {
            throw ColumnCodecError.invalid("invalid LowCardinality flags 0x\(String(meta, radix: 16))")
        }
        let dictionarySize = try rowContext(0) { try reader.readInteger(as: UInt64.self) }
        guard dictionarySize <= UInt64(reader.remaining) else {
            // Truncated input or a hostile size: the dictionary is not there.
            throw ColumnCodecError.unexpectedEnd(row: 0)
        }
        let dictionary = try dictionaryCodec.read(&reader, count: Int(dictionarySize), prefix: innerPrefix)
        let indexCount = try rowContext(0) { try reader.readInteger(as: UInt64.self) }
        guard indexCount == UInt64(count) else {
            throw ColumnCodecError.invalid("LowCardinality block has \(indexCount) indexes, expected \(count)")
        }
        let indexes: LowCardinalityIndexes
        switch keyType {
        case 0: indexes = .uint8(try readIndexes(&reader, count: count))
        case 1: indexes = .uint16(try readIndexes(&reader, count: count))
        case 2: indexes = .uint32(try readIndexes(&reader, count: count))
        default: indexes = .uint64(try readIndexes(&reader, count: count))
        }
        try validate(indexes, dictionarySize: Int(dictionarySize))
        return LowCardinalityColumn(type: type, dictionary: dictionary, indexes: indexes)
    }

    private func readIndexes<T: FixedWidthInteger & BitwiseCopyable>(_ reader: inout ByteReader, count: Int) throws -> [T] {
        let width = MemoryLayout<T>.size
        guard reader.remaining / width >= count else { throw ColumnCodecError.unexpectedEnd(row: reader.remaining / width) }
        return try reader.readFixedWidthArray(of: T.self, count: count)
    }

    private func validate(_ indexes: LowCardinalityIndexes, dictionarySize: Int) throws {
        func check<T: FixedWidthInteger>(_ values: [T]) throws {
            let limit = UInt64(dictionarySize)
            for (row, value) in values.enumerated() where UInt64(value) >= limit {
                throw ColumnCodecError.invalid("LowCardinality index \(value) at row \(row) is outside the dictionary of \(dictionarySize) values")
            }
        }
        switch indexes {
        case let .uint8(v): try check(v)
        case let .uint16(v): try check(v)
        case let .uint32(v): try check(v)
        case let .uint64(v): try check(v)
        }
    }

    func writePrefix(_ column: any Column, to writer: inout ByteWriter) throws {
        writer.writeInteger(Self.sharedDictionariesWithAdditionalKeys)
        try dictionaryCodec.writePrefix(try cast(column, to: LowCardinalityColumn.self).dictionary, to: &writer)
    }

    func write(_ column: any Column, to writer: inout ByteWriter) throws {
        let lc = try cast(column, to: LowCardinalityColumn.self)
        guard lc.count > 0 else { return }
        // The server reads the additional keys as the block's whole dictionary.
        writer.writeInteger(lc.indexes.keyTypeCode | Self.hasAdditionalKeys | Self.needUpdateDictionary)
        writer.writeInteger(UInt64(lc.dictionary.count))
        try dictionaryCodec.write(lc.dictionary, to: &writer)
        writer.writeInteger(UInt64(lc.count))
        switch lc.indexes {
        case let .uint8(v): writer.writeFixedWidthArray(v)
        case let .uint16(v): writer.writeFixedWidthArray(v)
        case let .uint32(v): writer.writeFixedWidthArray(v)
        case let .uint64(v): writer.writeFixedWidthArray(v)
        }
    }
}
