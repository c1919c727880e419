import Testing
@testable import ClickHouseNative

@Suite struct BlockCodecTests {
    static let sample: [UInt8] = Array("ClickHouse native protocol ".utf8) + (0..<4096).map { UInt8($0 % 251) }

    @Test func lz4RoundTrip() throws {
        let compressed = try Self.sample.withUnsafeBytes { try LZ4Block.compress($0) }
        #expect(compressed.count < Self.sample.count)
        let restored = try compressed.withUnsafeBytes { try LZ4Block.decompress($0, uncompressedSize: Self.sample.count) }
        #expect(restored == Self.sample)
    }

    @Test func zstdRoundTrip() throws {
        let compressed = try Self.sample.withUnsafeBytes { try ZSTDBlock.compress($0) }
        #expect(Array(compressed.prefix(4)) == [0x28, 0xB5, 0x2F, 0xFD])
        let restored = try compressed.withUnsafeBytes { try ZSTDBlock.decompress($0, uncompressedSize: Self.sample.count) }
        #expect(restored == Self.sample)
    }

    @Test func lz4CorruptInputIsAnError() throws {
        var compressed = try Self.sample.withUnsafeBytes { try LZ4Block.compress($0) }
        compressed.removeLast(compressed.count / 2)
        #expect(throws: CompressionError.corrupt(method: "LZ4", detail: "a literal run of 278 bytes passes the end of the block")) {
            try compressed.withUnsafeBytes { try LZ4Block.decompress($0, uncompressedSize: Self.sample.count) }
        }
    }

    @Test func zstdWrongSizeIsAnError() throws {
        let compressed = try Self.sample.withUnsafeBytes { try ZSTDBlock.compress($0) }
        #expect(throws: CompressionError.corrupt(method: "ZSTD", detail: "Destination buffer is too small")) {
            try compressed.withUnsafeBytes { try ZSTDBlock.decompress($0, uncompressedSize: 10) }
        }
    }
}
