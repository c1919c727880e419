/// Writes ClickHouse wire primitives into a growing byte array.
public struct ByteWriter: Sendable {
    public var bytes: [UInt8]

    public init(capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    @inlinable public var count: Int { bytes.count }

    /// Empties the writer but keeps its memory, so a writer reused for every packet of a stream
    /// does not allocate (and fault in) fresh pages each time.
    @inlinable
    public mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
    }

    /// Overwrites bytes written earlier (a size or checksum known only later).
    @inlinable
    public mutating func patch<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= bytes.count, "patch outside the written bytes")
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self) }
    }

    /// Lets `body` write up to `maximumCount` bytes in place (e.g. a compressor's output) and
    /// keeps the count it returns.
    @inlinable
    public mutating func writeInPlace(maximumCount: Int, _ body: (UnsafeMutableRawBufferPointer) throws -> Int) rethrows {
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: maximumCount))
        var written = 0
        defer { bytes.removeLast(maximumCount - written) }
        written = try bytes.withUnsafeMutableBytes { all in
            try body(UnsafeMutableRawBufferPointer(rebasing: all[start...]))
        }
        precondition(written >= 0 && written <= maximumCount, "wrote more than the space given")
    }

    @inlinable
    public mutating func writeUInt8(_ value: UInt8) {
        bytes.append(value)
    }

    @inlinable
    public mutating func writeInteger<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    @inlinable
    public mutating func writeFloat64(_ value: Double) { writeInteger(value.bitPattern) }

    @inlinable
    public mutating func writeFloat32(_ value: Float) { writeInteger(value.bitPattern) }

    /// Unsigned LEB128.
    @inlinable
    public mutating func writeVarUInt(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    @inlinable
    public mutating func writeVarUInt(_ value: Int) {
        precondition(value >= 0, "a VarUInt cannot be negative")
        writeVarUInt(UInt64(value))
    }

    @inlinable
    public mutating func writeBytes(_ raw: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: raw)
    }

    @inlinable
    public mutating func writeBytes<C: Collection>(_ source: C) where C.Element == UInt8 {
        bytes.append(contentsOf: source)
    }

    /// A length-prefixed string (its UTF-8 bytes).
    @inlinable
    public mutating func writeString(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            writeVarUInt(utf8.count)
            bytes.append(contentsOf: utf8)
        }
    }

    /// A length-prefixed byte string.
    @inlinable
    public mutating func writeByteString<C: Collection>(_ value: C) where C.Element == UInt8 {
        writeVarUInt(value.count)
        bytes.append(contentsOf: value)
    }

    /// Fixed-width values whose memory layout is their little-endian wire layout, in one copy.
    @inlinable
    public mutating func writeFixedWidthArray<T: BitwiseCopyable>(_ values: [T]) {
        values.withUnsafeBytes { bytes.append(contentsOf: $0) }
    }

    @inlinable
    public mutating func writeFixedWidthArray<T: BitwiseCopyable>(_ values: ArraySlice<T>) {
        values.withUnsafeBytes { bytes.append(contentsOf: $0) }
    }
}
