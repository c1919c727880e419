import Testing
@testable import ClickHouseNative

@Suite struct WireTests {
    static let varUIntCases: [(UInt64, [UInt8])] = [
        (0, [0x00]),
        (127, [0x7F]),
        (128, [0x80, 0x01]),
        (300, [0xAC, 0x02]),
        (54460, [0xBC, 0xA9, 0x03]),
        (UInt64.max, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
    ]

    @Test(arguments: varUIntCases)
    func varUIntRoundTrip(value: UInt64, bytes: [UInt8]) throws {
        var writer = ByteWriter()
        writer.writeVarUInt(value)
        #expect(writer.bytes == bytes)
        let decoded = try ByteReader.withReader(bytes) { try $0.readVarUInt() }
        #expect(decoded == value)
    }

    @Test func varUIntRejectsOverlongEncoding() {
        let bytes = [UInt8](repeating: 0xFF, count: 10) + [0x01]
        #expect(throws: WireError.malformedVarUInt(offset: 0)) {
            try ByteReader.withReader(bytes) { try $0.readVarUInt() }
        }
    }

    @Test func truncatedVarUInt() {
        #expect(throws: WireError.unexpectedEnd(offset: 1, needed: 1, available: 0)) {
            try ByteReader.withReader([0x80]) { try $0.readVarUInt() }
        }
    }

    @Test func clientHelloBytesMatchCapture() {
        // The client Hello captured against the 18.16 server (reference §16).
        var writer = ByteWriter()
        writer.writeVarUInt(0)
        writer.writeString("probe")
        writer.writeVarUInt(1)
        writer.writeVarUInt(0)
        writer.writeVarUInt(54460)
        writer.writeString("")
        writer.writeString("default")
        writer.writeString("")
        #expect(writer.bytes == [0x00, 0x05, 0x70, 0x72, 0x6F, 0x62, 0x65, 0x01, 0x00, 0xBC, 0xA9, 0x03,
                                 0x00, 0x07, 0x64, 0x65, 0x66, 0x61, 0x75, 0x6C, 0x74, 0x00])
    }

    @Test func hostileStringLengthDoesNotAllocate() {
        // A 2^62 length prefix followed by two bytes: the reader refuses before allocating.
        var writer = ByteWriter()
        writer.writeVarUInt(UInt64(1) << 62)
        writer.writeBytes([0x61, 0x62])
        let bytes = writer.bytes
        #expect(throws: WireError.lengthTooLarge(offset: 0, length: UInt64(1) << 62, limit: 2)) {
            try ByteReader.withReader(bytes) { try $0.readString() }
        }
    }

    @Test func fixedWidthArrays() throws {
        var writer = ByteWriter()
        writer.writeFixedWidthArray([UInt32(1), 2, 0xDEAD_BEEF])
        #expect(writer.bytes == [1, 0, 0, 0, 2, 0, 0, 0, 0xEF, 0xBE, 0xAD, 0xDE])
        let values = try ByteReader.withReader(writer.bytes) { try $0.readFixedWidthArray(of: UInt32.self, count: 3) }
        #expect(values == [1, 2, 0xDEAD_BEEF])
        #expect(throws: WireError.unexpectedEnd(offset: 0, needed: 16, available: 12)) {
            try ByteReader.withReader(writer.bytes) { try $0.readFixedWidthArray(of: UInt32.self, count: 4) }
        }
    }
}
