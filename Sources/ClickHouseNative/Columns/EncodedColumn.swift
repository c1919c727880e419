/// A column kept in its Native encoding (prefix, data and suffix bytes exactly as read), never
/// decoded into values. Blocks of such columns pass Native input (a file, a pipe) on to an INSERT
/// at the cost of finding where each column ends: for an event-sized row that is one walk over the
/// string lengths instead of decoding every value and encoding it again.
///
/// Its values cannot be read; decode the block with ``BlockDecoding/values`` for that.
public struct EncodedColumn: Column {
    public let type: ClickHouseType
    public let count: Int
    /// The column's Native bytes for `count` rows. A stream decoder hands out slices of its own
    /// buffer (no copy); holding a block while it decodes the next one costs it a copy instead.
    public let bytes: ArraySlice<UInt8>

    public init(type: ClickHouseType, count: Int, bytes: ArraySlice<UInt8>) {
        self.type = type
        self.count = count
        self.bytes = bytes
    }
}

/// Finds the end of a column's Native bytes without building its values.
enum EncodedExtent {
    /// Moves `reader` past `rows` values of `type`, checking what a decoder would check (every
    /// length within the input, array offsets that never decrease). Types with serialization state
    /// (LowCardinality, Variant, Dynamic, JSON) or placeholder bytes (empty tuples) are run
    /// through their decoder instead, which checks them the same way it does for any block.
    static func skip(_ reader: inout ByteReader, type: ClickHouseType, rows: Int) throws {
        guard isWalkable(type) else {
            let codec = try makeCodec(for: type)
            let prefix = try codec.readPrefix(&reader)
            _ = try codec.read(&reader, count: rows, prefix: prefix)
            return
        }
        try walk(&reader, type: type.storageType, rows: rows)
    }

    /// Whether the bytes of `type` can be walked without decoder state.
    static func isWalkable(_ type: ClickHouseType) -> Bool {
        let storage = type.storageType
        if fixedWidth(storage) != nil { return true }
        switch storage {
        case .string: return true
        case let .nullable(inner), let .array(inner): return isWalkable(inner)
        case let .map(key, value): return isWalkable(key) && isWalkable(value)
        case let .tuple(elements): return !elements.isEmpty && elements.allSatisfy { isWalkable($0.type) }
        default: return false
        }
    }

    /// Bytes per value of a fixed-width type (Nothing is one placeholder byte per row).
    static func fixedWidth(_ type: ClickHouseType) -> Int? {
        switch type {
        case .int8, .uint8, .bool, .enum8, .nothing: return 1
        case .int16, .uint16, .date, .bfloat16, .enum16: return 2
        case .int32, .uint32, .float32, .dateTime, .ipv4, .date32, .time: return 4
        case .int64, .uint64, .float64, .dateTime64, .time64, .interval: return 8
        case .int128, .uint128, .uuid, .ipv6: return 16
        case .int256, .uint256: return 32
        case let .decimal(precision, _):
            switch precision {
            case ...9: return 4
            case ...18: return 8
            case ...38: return 16
            default: return 32
            }
        case let .fixedString(length): return length
        default: return nil
        }
    }

    private static func walk(_ reader: inout ByteReader, type: ClickHouseType, rows: Int) throws {
        if rows == 0 { return }
        if let width = fixedWidth(type) {
            let (total, overflow) = rows.multipliedReportingOverflow(by: width)
            guard !overflow, total <= reader.remaining else { throw ColumnCodecError.unexpectedEnd(row: reader.remaining / max(width, 1)) }
            try reader.skip(total)
            return
        }
        switch type {
        case .string:
            reader.offset = try StringCodec.extent(reader, count: rows).end
        case let .nullable(inner):
            guard reader.remaining >= rows else { throw ColumnCodecError.unexpectedEnd(row: reader.remaining) }
            try reader.skip(rows)
            try walk(&reader, type: inner.storageType, rows: rows)
        case let .array(inner):
            try walk(&reader, type: inner.storageType, rows: try skipOffsets(&reader, rows: rows))
        case let .map(key, value):
            let elements = try skipOffsets(&reader, rows: rows)
            try walk(&reader, type: key.storageType, rows: elements)
            try walk(&reader, type: value.storageType, rows: elements)
        case let .tuple(elements):
            for element in elements { try walk(&reader, type: element.type.storageType, rows: rows) }
        default:
            throw ColumnCodecError.invalid("no byte walker for \(type.name)")
        }
    }

    /// Skips `rows` array offsets and returns the element count (the last offset).
    private static func skipOffsets(_ reader: inout ByteReader, rows: Int) throws -> Int {
        guard reader.remaining / 8 >= rows, let base = reader.base.baseAddress else {
            throw ColumnCodecError.unexpectedEnd(row: reader.remaining / 8)
        }
        var previous: UInt64 = 0
        for row in 0..<rows {
            let offset = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: reader.offset + row * 8, as: UInt64.self))
            guard offset >= previous else {
                throw ColumnCodecError.invalid("array offsets decrease at row \(row) (\(offset) after \(previous))")
            }
            previous = offset
        }
        try reader.skip(rows * 8)
        // As in the decoder: every element takes at least one byte, so a larger count is not there.
        guard previous <= UInt64(reader.remaining) else { throw ColumnCodecError.unexpectedEnd(row: rows) }
        return Int(previous)
    }
}
