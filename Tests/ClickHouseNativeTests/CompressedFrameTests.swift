import Testing
@testable import ClickHouseNative

@Suite struct CompressedFrameTests {
    static func hexBytes(_ text: String) -> [UInt8] {
        let clean = text.filter { !$0.isWhitespace }
        return stride(from: 0, to: clean.count, by: 2).map {
            let start = clean.index(clean.startIndex, offsetBy: $0)
            return UInt8(clean[start..<clean.index(start, offsetBy: 2)], radix: 16)!
        }
    }

    /// The empty block framed with method NONE, as accepted by the 18.16 server (reference §16).
    static let emptyBlockFrame = hexBytes("BB 94 89 A1 C1 69 E9 00 EC AF F1 68 95 6A 64 74 02 13 00 00 00 0A 00 00 00 01 00 02 FF FF FF FF 00 00 00")
    static let emptyBlock: [UInt8] = [0x01, 0x00, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00]

    @Test func noneFrameMatchesCapture() throws {
        var writer = ByteWriter()
        try Self.emptyBlock.withUnsafeBytes { try CompressedFrame.write($0, method: .none, to: &writer) }
        #expect(writer.bytes == Self.emptyBlockFrame)
    }

    @Test func serverLZ4FrameDecodes() throws {
        // The LZ4 header block the 18.16 server sent for `SELECT number AS n, toString(number) AS s` (reference §16).
        let frame = Self.hexBytes("""
            A6 93 3E BD FB 7E 5A 13 05 F8 BA 98 EA 5B 43 A1 82 27 00 00 00 1C 00 00 00
            F0 0D 01 00 02 FF FF FF FF 00 02 00 01 6E 06 55 49 6E 74 36 34 01 73 06 53 74 72 69 6E 67
            """)
        let data = try ByteReader.withReader(frame) { try CompressedFrame.read(&$0) }
        #expect(data == [0x01, 0x00, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x02, 0x00] + [0x01] + Array("n".utf8) + [0x06] + Array("UInt64".utf8) + [0x01] + Array("s".utf8) + [0x06] + Array("String".utf8))
    }

    @Test(arguments: CompressionMethod.allCases)
    func roundTripAcrossFrames(method: CompressionMethod) throws {
        // 2.5 MiB: three frames of at most 1 MiB each.
        let data = (0..<(5 << 19)).map { UInt8(truncatingIfNeeded: $0 &* 7 >> 3) }
        var writer = ByteWriter()
        try data.withUnsafeBytes { try CompressedFrame.write($0, method: method, to: &writer) }
        var restored: [UInt8] = []
        var frames = 0
        try ByteReader.withReader(writer.bytes) { reader in
            while !reader.isAtEnd {
                restored += try CompressedFrame.read(&reader)
                frames += 1
            }
        }
        #expect(frames == 3)
        #expect(restored == data)
    }

    @Test func corruptedFrameNamesTheChecksum() {
        var frame = Self.emptyBlockFrame
        frame[frame.count - 1] ^= 0x01
        #expect(throws: CompressedFrameError.checksumMismatch(expected: "bb9489a1c169e900ecaff168956a6474", actual: "863bce50ed4e35954160266ff3b07e42")) {
            try ByteReader.withReader(frame) { try CompressedFrame.read(&$0) }
        }
    }

    @Test func incompleteFrameIsATruncation() {
        let partial = Array(Self.emptyBlockFrame.prefix(30))
        // After the 16-byte checksum, the frame (9-byte header and 10 compressed bytes) is read whole:
        // 19 bytes needed, 14 there.
        #expect(throws: WireError.unexpectedEnd(offset: 16, needed: 19, available: 14)) {
            try ByteReader.withReader(partial) { try CompressedFrame.read(&$0) }
        }
    }

    @Test func unknownMethod() throws {
        var writer = ByteWriter()
        try Self.emptyBlock.withUnsafeBytes { try CompressedFrame.write($0, method: .none, to: &writer) }
        var bytes = writer.bytes
        bytes[16] = 0x95  // Gorilla: a storage codec, never sent on the network
        let checksum = bytes[16...].withUnsafeBytes { CityHash128.hash($0) }
        var header = ByteWriter()
        header.writeInteger(checksum.first)
        header.writeInteger(checksum.second)
        bytes.replaceSubrange(0..<16, with: header.bytes)
        #expect(throws: CompressedFrameError.unknownMethod(0x95)) {
            try ByteReader.withReader(bytes) { try CompressedFrame.read(&$0) }
        }
    }

    /// Empty data framed by every method reads back as empty. A ZSTD frame of uncompressed size 0
    /// on a fresh buffer crashed the process (a nil storage pointer), and a server could send one.
    @Test(arguments: [CompressionMethod.none, .lz4, .zstd])
    func emptyFrameRoundTrip(method: CompressionMethod) throws {
        var writer = ByteWriter()
        try [UInt8]().withUnsafeBytes { try CompressedFrame.write($0, method: method, to: &writer) }
        #expect(try ByteReader.withReader(writer.bytes) { try CompressedFrame.read(&$0) } == [])
    }
}
