/// Reads ClickHouse wire primitives from a contiguous byte buffer.
///
/// The reader does not own its memory: it is only valid inside the closure of ``withReader(_:_:)``
/// (or while the caller keeps the underlying storage alive). All reads are bounds-checked and throw
/// ``WireError`` instead of trapping.
#if _endian(big)
#error("the column codecs copy little-endian wire bytes straight into memory")
#endif

public struct ByteReader {
    @usableFromInline let base: UnsafeRawBufferPointer
    /// Offset of the next unread byte.
    public var offset: Int

    @inlinable
    public init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0) {
        self.base = bytes
        self.offset = offset
    }

    /// Runs `body` with a reader over `bytes`.
    @inlinable
    public static func withReader<R>(_ bytes: [UInt8], _ body: (inout ByteReader) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            return try body(&reader)
        }
    }

    @inlinable public var remaining: Int { base.count - offset }
    @inlinable public var isAtEnd: Bool { offset >= base.count }

    @inlinable
    func require(_ count: Int) throws {
        if count > remaining || count < 0 {
            throw WireError.unexpectedEnd(offset: offset, needed: count, available: remaining)
        }
    }

    @inlinable
    public mutating func readUInt8() throws -> UInt8 {
        try require(1)
        let value = base[offset]
        offset += 1
        return value
    }

    /// A fixed-width little-endian integer.
    @inlinable
    public mutating func readInteger<T: FixedWidthInteger>(as: T.Type = T.self) throws -> T {
        let size = MemoryLayout<T>.size
        try require(size)
        let value = base.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += size
        return T(littleEndian: value)
    }

    @inlinable
    public mutating func readFloat64() throws -> Double {
        Double(bitPattern: try readInteger(as: UInt64.self))
    }

    @inlinable
    public mutating func readFloat32() throws -> Float {
        Float(bitPattern: try readInteger(as: UInt32.self))
    }

    /// Unsigned LEB128, at most 10 bytes.
    @inlinable
    public mutating func readVarUInt() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        let start = offset
        while true {
            guard offset < base.count else {
                throw WireError.unexpectedEnd(offset: offset, needed: 1, available: 0)
            }
            let byte = base[offset]
            offset += 1
            if shift == 63 && byte > 1 { throw WireError.malformedVarUInt(offset: start) }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw WireError.malformedVarUInt(offset: start) }
        }
    }

    /// A VarUInt used as a byte length or element count: it must not exceed the bytes left when
    /// each element takes at least `minimumElementSize` bytes, so it can size an allocation safely.
    @inlinable
    public mutating func readLength(minimumElementSize: Int = 1) throws -> Int {
        let start = offset
        let value = try readVarUInt()
        let limit = minimumElementSize == 0 ? Int.max : remaining / minimumElementSize
        guard value <= UInt64(limit) else {
            throw WireError.lengthTooLarge(offset: start, length: value, limit: remaining)
        }
        return Int(value)
    }

    /// `count` raw bytes, as a view into the reader's memory.
    @inlinable
    public mutating func readBytes(count: Int) throws -> UnsafeRawBufferPointer {
        try require(count)
        let slice = UnsafeRawBufferPointer(rebasing: base[offset..<offset + count])
        offset += count
        return slice
    }

    /// A length-prefixed string, decoded as UTF-8 (invalid sequences are repaired).
    @inlinable
    public mutating func readString() throws -> String {
        let count = try readLength()
        let bytes = try readBytes(count: count)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A length-prefixed byte string, kept as raw bytes.
    @inlinable
    public mutating func readByteString() throws -> [UInt8] {
        let count = try readLength()
        return Array(try readBytes(count: count))
    }

    /// `count` fixed-width values stored little-endian, with one bounds check and one copy.
    /// Only valid for types whose memory layout is their wire layout on a little-endian machine.
    @inlinable
    public mutating func readFixedWidthArray<T: BitwiseCopyable>(of _: T.Type, count: Int) throws -> [T] {
        let total = try byteCount(count, stride: MemoryLayout<T>.stride)
        let source = UnsafeRawBufferPointer(rebasing: base[offset..<offset + total])
        offset += total
        return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            UnsafeMutableRawBufferPointer(buffer).copyMemory(from: source)
            initialized = count
        }
    }

    /// Appends `count` fixed-width values to `array` (see ``readFixedWidthArray(of:count:)``).
    @inlinable
    public mutating func appendFixedWidth<T: BitwiseCopyable>(count: Int, to array: inout [T]) throws {
        if array.isEmpty {
            array = try readFixedWidthArray(of: T.self, count: count)
        } else {
            array.append(contentsOf: try readFixedWidthArray(of: T.self, count: count))
        }
    }

    /// Checks that `count` elements of `stride` bytes are present and returns their byte size.
    @inlinable
    func byteCount(_ count: Int, stride: Int) throws -> Int {
        let (total, overflow) = count.multipliedReportingOverflow(by: stride)
        if overflow || count < 0 {
            throw WireError.unexpectedEnd(offset: offset, needed: Int.max, available: remaining)
        }
        try require(total)
        return total
    }

    /// Moves the read position forward by `count` bytes.
    @inlinable
    public mutating func skip(_ count: Int) throws {
        try require(count)
        offset += count
    }
}
