/// `String` values: all bytes in one buffer plus end offsets, so reading a block allocates twice,
/// not once per value. Values are byte strings; ClickHouse does not require UTF-8.
public struct StringColumn: Column {
    public var type: ClickHouseType { .string }
    /// The concatenated bytes of all values.
    public var bytes: [UInt8]
    /// `ends[i]` is the end of value i in ``bytes``; value i starts at `ends[i - 1]` (or 0).
    public var ends: [Int]

    public init() {
        bytes = []
        ends = []
    }

    public init<S: Sequence>(_ strings: S) where S.Element == String {
        self.init()
        for string in strings { append(string) }
    }

    public var count: Int { ends.count }

    public func range(at row: Int) -> Range<Int> {
        (row == 0 ? 0 : ends[row - 1])..<ends[row]
    }

    /// The raw bytes of value `row`.
    public func bytes(at row: Int) -> ArraySlice<UInt8> { bytes[range(at: row)] }

    /// Value `row` decoded as UTF-8 (invalid sequences are replaced).
    public subscript(row: Int) -> String { String(decoding: bytes[range(at: row)], as: UTF8.self) }

    public mutating func append(_ value: String) {
        var value = value
        value.withUTF8 { bytes.append(contentsOf: $0) }
        ends.append(bytes.count)
    }

    public mutating func append<C: Collection>(bytes value: C) where C.Element == UInt8 {
        bytes.append(contentsOf: value)
        ends.append(bytes.count)
    }

    public mutating func reserveCapacity(rows: Int, bytes byteCount: Int) {
        ends.reserveCapacity(rows)
        bytes.reserveCapacity(byteCount)
    }
}

struct StringCodec: ColumnCodec {
    let type: ClickHouseType

    /// Walks `count` length-prefixed strings from the reader's position, checking every length
    /// against the input: the offset just past them and the sum of their lengths.
    static func extent(_ reader: ByteReader, count: Int) throws -> (end: Int, total: Int) {
        guard count <= reader.remaining, let base = reader.base.baseAddress else {
            throw ColumnCodecError.unexpectedEnd(row: reader.remaining)
        }
        let limit = reader.base.count
        var position = reader.offset
        var total = 0
        var row = 0
        // Serial by nature (each length says where the next one is), so the loop is kept to a load
        // and two adds for the common one-byte length; `position <= limit` throughout, so the
        // unchecked adds cannot overflow.
        while row < count {
            guard position < limit else { throw ColumnCodecError.unexpectedEnd(row: row) }
            let first = Int(base.load(fromByteOffset: position, as: UInt8.self))
            let length: Int
            if first < 0x80 {
                length = first
                position &+= 1
            } else {
                length = try longLength(reader, &position, row: row)
            }
            guard length <= limit &- position else { throw ColumnCodecError.unexpectedEnd(row: row) }
            position &+= length
            total &+= length
            row &+= 1
        }
        return (position, total)
    }

    /// A length of two or more VarUInt bytes. Any length the input cannot hold (cut, malformed,
    /// 2^63 or more) is the same error as a string that runs past the input.
    @inline(never)
    private static func longLength(_ reader: ByteReader, _ position: inout Int, row: Int) throws -> Int {
        var lengthReader = reader
        lengthReader.offset = position
        guard let value = try? lengthReader.readVarUInt(), value <= UInt64(Int.max) else {
            throw ColumnCodecError.unexpectedEnd(row: row)
        }
        position = lengthReader.offset
        return Int(value)
    }

    func read(_ reader: inout ByteReader, count: Int, prefix: PrefixState) throws -> any Column {
        // Pass 1 validates every length against the input and sums them; pass 2 copies. Allocation is
        // bounded by the input size, whatever the lengths claim.
        if count == 0 { return StringColumn() }
        let start = reader.offset
        let (end, total) = try Self.extent(reader, count: count)
        let base = reader.base.baseAddress!
        var column = StringColumn()
        column.ends = [Int](unsafeUninitializedCapacity: count) { ends, endsInitialized in
            column.bytes = [UInt8](unsafeUninitializedCapacity: total) { buffer, initialized in
                var position = start
                var written = 0
                for row in 0..<count {
                    // Lengths were validated in pass 1.
                    var length = 0
                    var shift = 0
                    while true {
                        let byte = base.load(fromByteOffset: position, as: UInt8.self)
                        position += 1
                        length |= Int(byte & 0x7F) << shift
                        if byte & 0x80 == 0 { break }
                        shift += 7
                    }
                    if length > 0 {
                        UnsafeMutableRawPointer(buffer.baseAddress! + written).copyMemory(from: base + position, byteCount: length)
                    }
                    position += length
                    written += length
                    ends[row] = written
                }
                initialized = written
            }
            endsInitialized = count
        }
        reader.offset = end
        return column
    }

    func write(_ column: any Column, to writer: inout ByteWriter) throws {
        let strings = try cast(column, to: StringColumn.self)
        guard strings.count > 0 else { return }
        // Exact size first (lengths' varints plus the bytes), then one pass in place: appending
        // value by value costs two Array appends (and uniqueness checks) per string.
        var size = strings.bytes.count
        var start = 0
        for end in strings.ends {
            var length = end - start
            repeat { size += 1; length >>= 7 } while length > 0
            start = end
        }
        strings.bytes.withUnsafeBytes { raw in
            writer.writeInPlace(maximumCount: size) { output in
                let out = output.baseAddress!
                var position = 0
                var start = 0
                for end in strings.ends {
                    var length = UInt64(end - start)
                    while length >= 0x80 {
                        out.storeBytes(of: UInt8(truncatingIfNeeded: length) | 0x80, toByteOffset: position, as: UInt8.self)
                        position += 1
                        length >>= 7
                    }
                    out.storeBytes(of: UInt8(length), toByteOffset: position, as: UInt8.self)
                    position += 1
                    if end > start {
                        (out + position).copyMemory(from: raw.baseAddress! + start, byteCount: end - start)
                        position += end - start
                    }
                    start = end
                }
                return position
            }
        }
    }
}

/// `FixedString(N)` values: `count × N` bytes, shorter values padded with zero bytes.
public struct FixedStringColumn: Column {
    public let length: Int
    public var bytes: [UInt8]
    public var type: ClickHouseType { .fixedString(length: length) }
    public var count: Int { length == 0 ? 0 : bytes.count / length }

    public init(length: Int, bytes: [UInt8] = []) {
        precondition(length > 0 && bytes.count % length == 0, "FixedString bytes must be a multiple of the length")
        self.length = length
        self.bytes = bytes
    }

    public subscript(row: Int) -> ArraySlice<UInt8> { bytes[row * length..<(row + 1) * length] }

    /// Appends a value, padded with zero bytes; a longer value is an error, as on the server.
    public mutating func append<C: Collection>(bytes value: C) throws where C.Element == UInt8 {
        guard value.count <= length else {
            throw ColumnCodecError.invalid("value of \(value.count) bytes is too long for FixedString(\(length))")
        }
        bytes.append(contentsOf: value)
        bytes.append(contentsOf: repeatElement(0, count: length - value.count))
    }
}

struct FixedStringCodec: ColumnCodec {
    let type: ClickHouseType
    let length: Int
    var fixedWidth: Int? { length }

    func read(_ reader: inout ByteReader, count: Int, prefix: PrefixState) throws -> any Column {
        guard reader.remaining / length >= count else { throw ColumnCodecError.unexpectedEnd(row: reader.remaining / length) }
        return FixedStringColumn(length: length, bytes: Array(try reader.readBytes(count: count * length)))
    }

    func write(_ column: any Column, to writer: inout ByteWriter) throws {
        let fixed = try cast(column, to: FixedStringColumn.self)
        guard fixed.length == length else {
            throw ColumnCodecError.columnMismatch(expected: type.name, actual: fixed.type.name)
        }
        // `bytes` is public: stray bytes past the last whole value would go out as the start of
        // the next column, and the server would read everything after them wrongly.
        guard fixed.bytes.count % length == 0 else {
            throw ColumnCodecError.invalid("\(type.name) column of \(fixed.bytes.count) bytes: not a whole number of values")
        }
        writer.writeBytes(fixed.bytes)
    }
}
