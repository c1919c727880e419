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

    /// Bytes per value of a fixed-width type, as its codec reads them.
    static func fixedWidth(_ type: ClickHouseType) -> Int? {
        (try? makeCodec(for: type))?.fixedWidth
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
            try walk(&reader, type: inner.storageType, rows: try skipOffsets(&reader, rows: rows, elementsMayBeEmpty: inner.valuesMayBeEmpty))
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
    private static func skipOffsets(_ reader: inout ByteReader, rows: Int, elementsMayBeEmpty: Bool = false) throws -> Int {
        let elements = try checkOffsets(reader, count: rows, elementsMayBeEmpty: elementsMayBeEmpty)
        try reader.skip(rows * 8)
        return elements
    }
}
