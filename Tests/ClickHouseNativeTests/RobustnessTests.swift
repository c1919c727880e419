import Foundation
import Testing
@testable import ClickHouseNative

/// Truncated and corrupted input ends in an error or a value: never a trap, a hang or a huge allocation.
@Suite struct RobustnessTests {
    @Test func headerBlockOfJSONWithTypedPaths() throws {
        // Found by scripts/fuzz (2026-12-02): the empty column of a header block gave a JSON type
        // with typed paths no prefixes for them, and reading it trapped on an index.
        let type = try ClickHouseType.parse("JSON(`a.b` UInt32, max_dynamic_paths=8, c String)")
        let column = try #require(try NativeFormat.emptyColumn(type) as? JSONObjectColumn)
        #expect(column.count == 0)
        #expect(column.typedPathNames == ["a.b", "c"])
        // The fuzzer's input: a Data packet whose header names such a column.
        let input: [UInt8] = Array(Data(base64Encoded: "AQAB/wABAAFqHEpTT04oYGEuYmAgVUludDMyLCA4IFN0cmluZykBdAAifQ==")!)
        _ = input.withUnsafeBytes { ServerPacketFuzzing.decodeAll($0, revision: 54460, compression: false) }
    }

    @Test func stringLengthAtTheEndOfTheInputAsksForMore() {
        // Found by scripts/fuzz (2026-12-03): a ProfileEvents packet cut after the length of its
        // table name. The length was checked against the bytes left, and the wait asked for fewer
        // bytes than were there, so a connection would have decoded the same bytes again forever.
        let input: [UInt8] = [0x0E, 0x01, 0x68, 0x00]
        for revision: UInt64 in [54412, 54460] {
            #expect(input.withUnsafeBytes { ServerPacketFuzzing.decodeInPieces($0, piece: 1, revision: revision, compression: false) } == 0)
        }
    }

    /// A small deterministic generator (SplitMix64), so failures reproduce.
    struct SplitMix64: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// The rows of the decoded blocks, or the error.
    static func decodeOutcome(_ bytes: [UInt8]) -> Result<Int, any Error> {
        Result { try NativeFormat.decodeBlocks(bytes).reduce(0) { $0 + $1.rowCount } }
    }

    @Test(arguments: Fixtures.smallCases)
    func truncatedAtEveryOffset(_ fixture: Fixtures.Case) throws {
        let bytes = try Fixtures.nativeBytes(fixture)
        // Every offset for small files; an even sample of 2000 offsets for larger ones.
        let step = max(1, bytes.count / 2000)
        // A cut file decodes to the whole blocks before the cut, or reports a truncation (which a
        // stream reader answers by waiting for more bytes), never another error.
        for cut in stride(from: 0, to: bytes.count, by: step) {
            switch Self.decodeOutcome(Array(bytes[..<cut])) {
            case let .success(rows): #expect(rows <= fixture.rows, "cut at \(cut)")
            case let .failure(error as NativeFormatError): #expect(error.isTruncation, "cut at \(cut): \(error)")
            case let .failure(error): Issue.record("cut at \(cut): \(type(of: error)) \(error)")
            }
        }
        #expect(try Self.decodeOutcome(bytes).get() == fixture.rows)
    }

    /// Both decodings of the same bytes, as the decoded blocks' row counts or the error.
    static func outcomes(_ bytes: [UInt8]) -> (values: String, encoded: String) {
        func outcome(_ decoding: BlockDecoding) -> String {
            do {
                return try bytes.withUnsafeBytes { raw in
                    var reader = ByteReader(raw)
                    var rows: [Int] = []
                    while !reader.isAtEnd { rows.append(try NativeFormat.readBlock(&reader, decoding: decoding).rowCount) }
                    return "\(rows)"
                }
            } catch {
                return "\(error)"
            }
        }
        return (outcome(.values), outcome(.encoded))
    }

    /// Keeping columns encoded checks what decoding checks: a cut or corrupted input gives the same
    /// error (or the same blocks) either way, so a Native file forwarded to an INSERT is refused
    /// exactly when decoding it would be.
    @Test(arguments: Fixtures.smallCases)
    func encodedDecodingChecksLikeValueDecoding(_ fixture: Fixtures.Case) throws {
        let bytes = try Fixtures.nativeBytes(fixture)
        let step = max(1, bytes.count / 500)
        for cut in stride(from: 0, to: bytes.count, by: step) {
            let (values, encoded) = Self.outcomes(Array(bytes[..<cut]))
            #expect(values == encoded, "cut at \(cut)")
        }
        guard !bytes.isEmpty else { return }
        var random = SplitMix64(state: UInt64(bytes.count))
        for _ in 0..<100 {
            var corrupted = bytes
            corrupted[Int.random(in: 0..<corrupted.count, using: &random)] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &random)
            let (values, encoded) = Self.outcomes(corrupted)
            #expect(values == encoded)
        }
    }

    /// The stream decoder's two modes fed the same pieces (random sizes, cut anywhere): the same
    /// blocks, or the same error, whether a walk resumes mid-block or decodes from the start.
    @Test(arguments: Fixtures.smallCases)
    func encodedStreamDecodingResumesLikeValueDecoding(_ fixture: Fixtures.Case) throws {
        let bytes = try Fixtures.nativeBytes(fixture)
        func feed(_ input: ArraySlice<UInt8>, _ decoding: BlockDecoding, seed: UInt64) -> String {
            var random = SplitMix64(state: seed)
            var decoder = NativeStreamDecoder(decoding: decoding)
            var blocks: [Block] = []
            do {
                var position = input.startIndex
                while position < input.endIndex {
                    let next = min(input.endIndex, position + Int.random(in: 1...300, using: &random))
                    decoder.append(input[position..<next])
                    position = next
                    while let block = try decoder.nextBlock() { blocks.append(block) }
                }
                while let block = try decoder.nextBlock(endOfInput: true) { blocks.append(block) }
                try decoder.finish()
                return "\(try NativeFormat.encodeBlocks(blocks))"
            } catch {
                return "\(blocks.count) blocks, then \(error)"
            }
        }
        let step = max(1, bytes.count / 40)
        for cut in stride(from: 0, through: bytes.count, by: step) {
            let input = bytes[..<cut]
            #expect(feed(input, .values, seed: UInt64(cut)) == feed(input, .encoded, seed: UInt64(cut)), "cut at \(cut)")
        }
    }

    @Test func encodedArrayOffsetsThatDecreaseAreRefused() throws {
        var writer = ByteWriter()
        writer.writeVarUInt(1)
        writer.writeVarUInt(2)
        writer.writeString("a")
        writer.writeString("Array(UInt8)")
        writer.writeInteger(UInt64(2))
        writer.writeInteger(UInt64(1))
        writer.writeBytes([1, 2])
        #expect(throws: NativeFormatError("column a of type Array(UInt8): array offsets decrease at row 1 (1 after 2)")) {
            var decoder = NativeStreamDecoder(decoding: .encoded)
            decoder.append(writer.bytes)
            _ = try decoder.nextBlock(endOfInput: true)
        }
    }

    @Test(arguments: Fixtures.smallCases)
    func randomBitFlips(_ fixture: Fixtures.Case) throws {
        let bytes = try Fixtures.nativeBytes(fixture)
        guard !bytes.isEmpty else { return }
        var random = SplitMix64(state: UInt64(truncatingIfNeeded: fixture.name.hashValue & 0) &+ UInt64(bytes.count))
        for _ in 0..<200 {
            var corrupted = bytes
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                let index = Int.random(in: 0..<corrupted.count, using: &random)
                corrupted[index] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &random)
            }
            // Rows, or one of the format's own errors: a corrupted type name is a type error, the
            // rest format errors.
            switch Self.decodeOutcome(corrupted) {
            case .success, .failure(is NativeFormatError), .failure(is ClickHouseTypeError): break
            case let .failure(error): Issue.record("\(type(of: error)) \(error)")
            }
        }
    }

    @Test func truncatedColumnNamesColumnTypeAndRow() throws {
        // Two rows of String, cut inside the second value.
        var writer = ByteWriter()
        writer.writeVarUInt(1)
        writer.writeVarUInt(2)
        writer.writeString("s")
        writer.writeString("String")
        writer.writeString("abc")
        writer.writeVarUInt(5)
        writer.writeBytes(Array("de".utf8))
        #expect(throws: NativeFormatError("unexpected end of data in column s of type String at row 1", isTruncation: true)) {
            try NativeFormat.decodeBlocks(writer.bytes)
        }
    }

    @Test func hostileLengthsDoNotAllocate() throws {
        // A String column whose first value claims 2^62 bytes.
        var writer = ByteWriter()
        writer.writeVarUInt(1)
        writer.writeVarUInt(1)
        writer.writeString("s")
        writer.writeString("String")
        writer.writeVarUInt(UInt64(1) << 62)
        #expect(throws: NativeFormatError("unexpected end of data in column s of type String at row 0", isTruncation: true)) {
            try NativeFormat.decodeBlocks(writer.bytes)
        }
        // A block claiming 2^60 rows of UInt64 with 8 bytes present.
        var rows = ByteWriter()
        rows.writeVarUInt(1)
        rows.writeVarUInt(UInt64(1) << 60)
        rows.writeString("n")
        rows.writeString("UInt64")
        rows.writeInteger(UInt64(7))
        #expect(throws: NativeFormatError("unexpected end of data in column n of type UInt64 at row 1", isTruncation: true)) {
            try NativeFormat.decodeBlocks(rows.bytes)
        }
        // Array offsets claiming 2^40 elements.
        var array = ByteWriter()
        array.writeVarUInt(1)
        array.writeVarUInt(1)
        array.writeString("a")
        array.writeString("Array(String)")
        array.writeInteger(UInt64(1) << 40)
        #expect(throws: NativeFormatError("unexpected end of data in column a of type Array(String) at row 1", isTruncation: true)) {
            try NativeFormat.decodeBlocks(array.bytes)
        }
    }

    @Test func invalidLowCardinalityFlags() throws {
        var writer = ByteWriter()
        writer.writeVarUInt(1)
        writer.writeVarUInt(1)
        writer.writeString("lc")
        writer.writeString("LowCardinality(String)")
        writer.writeInteger(UInt64(1))       // key version
        writer.writeInteger(UInt64(0x100))   // NeedGlobalDictionary, never valid on the wire
        #expect(throws: NativeFormatError("column lc of type LowCardinality(String): invalid LowCardinality flags 0x100")) {
            try NativeFormat.decodeBlocks(writer.bytes)
        }
    }

    @Test func mislabelledColumnIsAClearError() {
        let block = Block(columns: [NamedColumn("n", FixedWidthColumn(type: .uint64, values: [1, 2, 3]))])
        #expect(throws: NativeFormatError("cannot encode column n of type UInt64: expected a column of type UInt64 (FixedWidthColumn<UInt64>), got UInt64 (FixedWidthColumn<Int>)")) {
            try NativeFormat.encodeBlocks([block])
        }
    }

    @Test func streamDecoderWaitsForWholeBlocks() throws {
        var writer = ByteWriter()
        let block = Block(columns: [NamedColumn("n", FixedWidthColumn(type: .uint64, values: [UInt64(1), 2, 3])),
                                    NamedColumn("s", StringColumn(["a", "bc", ""]))])
        try NativeFormat.writeBlock(block, to: &writer)
        try NativeFormat.writeBlock(block, to: &writer)
        var decoder = NativeStreamDecoder()
        var decoded: [Block] = []
        for byte in writer.bytes {
            decoder.append([byte])
            while let next = try decoder.nextBlock() { decoded.append(next) }
        }
        while let next = try decoder.nextBlock(endOfInput: true) { decoded.append(next) }
        try decoder.finish()
        #expect(decoded.count == 2)
        #expect(decoded.map { JSONEachRow.render($0) }.joined() == String(repeating: "{\"n\":1,\"s\":\"a\"}\n{\"n\":2,\"s\":\"bc\"}\n{\"n\":3,\"s\":\"\"}\n", count: 2))
    }
}
