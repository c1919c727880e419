import Testing
@testable import ClickHouseNative

/// Our LZ4 decoder against liblz4's `LZ4_decompress_safe` on the same blocks, its exact errors on
/// corrupt blocks, and proof that its word copies stay inside the slack it asks for.
@Suite struct LZ4DecoderTests {
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 11
        }
    }

    /// Inputs that produce every kind of sequence: long and short literal runs, matches at every
    /// small offset (periods 1 to 20 overlap their own output), long matches, random bytes.
    static func samples() -> [(String, [UInt8])] {
        var random = Generator(state: 7)
        var result: [(String, [UInt8])] = [
            ("empty", []),
            ("one byte", [42]),
            ("zeros", [UInt8](repeating: 0, count: 100_000)),
            ("random", (0..<70_000).map { _ in UInt8(truncatingIfNeeded: random.next()) }),
            ("sequential UInt64", (0..<UInt64(40_000)).flatMap { withUnsafeBytes(of: $0.littleEndian, Array.init) }),
            ("text", Array(String(repeating: "event_type=llm_call conversation=conv-17 latency=12.5 ", count: 2_000).utf8)),
        ]
        for period in 1...20 {
            let pattern = (0..<period).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            result.append(("period \(period)", (0..<(5_000 + period)).map { pattern[$0 % period] }))
        }
        for length in [1, 5, 12, 13, 15, 16, 17, 31, 32, 33, 270, 4096] {
            // Random runs separated by repeats of earlier bytes: literal runs of this length between matches.
            var bytes: [UInt8] = []
            while bytes.count < 60_000 {
                bytes += (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                let back = Int(random.next() % UInt64(min(bytes.count, 60_000)))
                let repeatLength = 4 + Int(random.next() % 40)
                let from = bytes.count - 1 - back
                for i in 0..<repeatLength { bytes.append(bytes[from + i]) }
            }
            result.append(("literal runs of \(length)", bytes))
        }
        return result
    }

    @Test func decodesWhatLibLZ4Decodes() throws {
        for (name, data) in Self.samples() {
            let compressed = try data.withUnsafeBytes { try LZ4Block.compress($0) }
            let reference = compressed.withUnsafeBytes { LZ4Block.decompressWithLibLZ4($0, uncompressedSize: data.count) }
            #expect(reference == data, "liblz4 on \(name)")
            let ours = try compressed.withUnsafeBytes { try LZ4Block.decompress($0, uncompressedSize: data.count) }
            #expect(ours == data, "\(name)")
        }
    }

    @Test func agreesWithLibLZ4OnDamagedBlocks() throws {
        // Flipped bytes and cut blocks: whenever liblz4 accepts a block ours gives the same bytes,
        // and ours accepts nothing liblz4 rejects.
        var random = Generator(state: 99)
        var checked = 0
        for (_, data) in Self.samples() where !data.isEmpty {
            let compressed = try data.withUnsafeBytes { try LZ4Block.compress($0) }
            for _ in 0..<200 {
                var damaged = compressed
                if random.next() % 4 == 0 {
                    damaged.removeLast(1 + Int(random.next() % UInt64(damaged.count)))
                    if damaged.isEmpty { damaged = [0] }
                } else {
                    for _ in 0...(random.next() % 3) {
                        damaged[Int(random.next() % UInt64(damaged.count))] ^= UInt8(1 + random.next() % 255)
                    }
                }
                let size = random.next() % 8 == 0 ? data.count + Int(random.next() % 100) : data.count
                let reference = damaged.withUnsafeBytes { LZ4Block.decompressWithLibLZ4($0, uncompressedSize: size) }
                let ours = try? damaged.withUnsafeBytes { try LZ4Block.decompress($0, uncompressedSize: size) }
                #expect(ours == reference)
                checked += 1
            }
        }
        #expect(checked > 5_000)
    }

    @Test func copiesStayInsideTheSlack() throws {
        for (name, data) in Self.samples() {
            let compressed = try data.withUnsafeBytes { try LZ4Block.compress($0) }
            let guardBytes = 64
            var output = [UInt8](repeating: 0xA5, count: data.count + LZ4Decoder.outputSlack + guardBytes)
            try compressed.withUnsafeBytes { input in
                try output.withUnsafeMutableBytes { try LZ4Decoder.decode(input, into: $0.baseAddress!, count: data.count) }
            }
            #expect(Array(output[..<data.count]) == data, "\(name)")
            #expect(output[(data.count + LZ4Decoder.outputSlack)...].allSatisfy { $0 == 0xA5 }, "\(name) wrote past the slack")
        }
    }

    static func decode(_ block: [UInt8], count: Int) throws -> [UInt8] {
        try block.withUnsafeBytes { try LZ4Block.decompress($0, uncompressedSize: count) }
    }

    @Test func handMadeBlocks() throws {
        // "abc" then a 10-byte match at offset 3, then the closing literal "z".
        #expect(try Self.decode([0x36, 0x61, 0x62, 0x63, 0x03, 0x00, 0x10, 0x7A], count: 14) == Array("abcabcabcabcaz".utf8))
        // 15 + 3 literals through one extension byte.
        #expect(try Self.decode([0xF0, 0x03] + Array("abcdefghijklmnopqr".utf8), count: 18) == Array("abcdefghijklmnopqr".utf8))
        // The empty block is one token with no literals.
        #expect(try Self.decode([0x00], count: 0) == [])
        // Short matches at offset 8, as a sequential UInt64 column has them: the second sequence's
        // match lies wholly before its literal (loaded before the literal is written), the third's
        // source takes in its own first literal "Y" (copied after the literals).
        let block: [UInt8] = [0x83] + Array("abcdefgh".utf8) + [0x08, 0x00, 0x13] + Array("X".utf8) + [0x08, 0x00, 0x23] + Array("YZ".utf8) + [0x08, 0x00, 0x10] + Array("!".utf8)
        let expected = Array("abcdefgh" + "abcdefg" + "X" + "abcdefg" + "YZ" + "bcdefgY" + "!")
        #expect(try Self.decode(block, count: expected.count) == expected.map { UInt8($0.asciiValue!) })
        // liblz4 refuses this block for its end-of-block rules (the last 5 bytes literals, the last
        // match at least 12 bytes before the end), which compressors follow and this decoder, which
        // checks every read and write on its own, does not need.
        #expect(block.withUnsafeBytes { LZ4Block.decompressWithLibLZ4($0, uncompressedSize: expected.count) } == nil)
    }

    @Test func corruptBlocksNameWhatIsWrong() {
        #expect(throws: CompressionError.corrupt(method: "LZ4", detail: "the block is empty")) { try Self.decode([], count: 0) }
        #expect(throws: CompressionError.corrupt(method: "LZ4", detail: "a literal run of 5 bytes passes the end of the block")) {
            try Self.decode([0x50, 0x61, 0x62], count: 5)
        }
        #expect(throws: CompressionError.corrupt(method: "LZ4", detail: "the block ends inside a length")) { try Self.decode([0xF0, 0xFF], count: 300) }
        #expect(throws: CompressionError.corrupt(method: "LZ4", detail: "the block ends inside a match offset")) { try Self.decode([0x10, 0x61, 0x01], count: 8) }
        #expect(throws: CompressionError.corrupt(method: "LZ4", detail: "a match offset of 0 points before the start of the output (at byte 1)")) {
            try Self.decode([0x10, 0x61, 0x00, 0x00, 0x00], count: 6)
        }
        #expect(throws: CompressionError.corrupt(method: "LZ4", detail: "a match offset of 2 points before the start of the output (at byte 1)")) {
            try Self.decode([0x10, 0x61, 0x02, 0x00, 0x00], count: 6)
        }
        #expect(throws: CompressionError.corrupt(method: "LZ4", detail: "a copy of 4 bytes at byte 1 passes the uncompressed size 3")) {
            try Self.decode([0x10, 0x61, 0x01, 0x00, 0x00], count: 3)
        }
        #expect(throws: CompressionError.corrupt(method: "LZ4", detail: "a copy of 3 bytes at byte 0 passes the uncompressed size 2")) {
            try Self.decode([0x30, 0x61, 0x62, 0x63], count: 2)
        }
        #expect(throws: CompressionError.corrupt(method: "LZ4", detail: "the block ends after a match; the last sequence must be literals")) {
            try Self.decode([0x10, 0x61, 0x01, 0x00], count: 5)
        }
        #expect(throws: CompressionError.sizeMismatch(method: "LZ4", expected: 10, actual: 3)) { try Self.decode([0x30, 0x61, 0x62, 0x63], count: 10) }
    }
}
