/// Writes ClickHouse wire primitives into a growing byte array.
public struct ByteWriter: Sendable {
    public var bytes: [UInt8]

    public init(capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    @inlinable public var count: Int { bytes.count }

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
