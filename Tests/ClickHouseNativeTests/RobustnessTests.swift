import Foundation
import NIOPosix
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

    /// Found in review: `bytes` is public, and the codec wrote all of them while the block counted
    /// whole values only, so the stray bytes went out as the start of the next column.
    @Test func fixedStringBytesThatAreNotWholeValuesAreRefused() throws {
        var column = FixedStringColumn(length: 4, bytes: Array("abcdefgh".utf8))
        column.bytes.append(contentsOf: [1, 2])
        let block = Block(columns: [NamedColumn("f", column)])
        #expect(throws: NativeFormatError("cannot encode column f of type FixedString(4): FixedString(4) column of 10 bytes: not a whole number of values")) {
            _ = try NativeFormat.encodeBlocks([block])
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

    /// A one-column Native block: column and row counts, name, type, then `data` as it is.
    static func nativeBlock(rows: UInt64, name: String, type: String, data: [UInt8]) -> [UInt8] {
        var writer = ByteWriter()
        writer.writeVarUInt(1)
        writer.writeVarUInt(rows)
        writer.writeString(name)
        writer.writeString(type)
        writer.writeBytes(data)
        return writer.bytes
    }

    static func le64(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }

    @Test func compactVariantDiscriminatorsAreRefused() {
        // Found in review (2026-12-07): one compact granule ("2^40 rows, all NULL") in 34 bytes made
        // the decoder allocate for every row (2^30 rows took 9.4 GB; 2^40 aborted the process).
        var granule = ByteWriter()
        granule.writeVarUInt(UInt64(1) << 40)
        let data = Self.le64(1) + granule.bytes + [1, 0xFF]
        #expect(throws: NativeFormatError("column v of type Variant(UInt8): Variant discriminators in compact mode (MergeTree's storage form) are not supported in Native data")) {
            try NativeFormat.decodeBlocks(Self.nativeBlock(rows: UInt64(1) << 40, name: "v", type: "Variant(UInt8)", data: data))
        }
    }

    @Test func deeplyNestedDynamicIsRefused() {
        // Found in review: a Dynamic whose only type is Dynamic, 5 000 times over (125 KB),
        // overflowed the stack.
        var level = ByteWriter()
        level.writeInteger(UInt64(2))
        level.writeVarUInt(1)
        level.writeString("Dynamic")
        level.writeInteger(UInt64(0))
        let data = Array([[UInt8]](repeating: level.bytes, count: 5000).joined()) + Self.le64(2) + [0] + Self.le64(0) + [0xFF]
        #expect(throws: NativeFormatError("column d of type Dynamic: Dynamic values nested more than 16 levels deep")) {
            try NativeFormat.decodeBlocks(Self.nativeBlock(rows: 1, name: "d", type: "Dynamic", data: data))
        }
    }

    /// A Dynamic column of one row whose value is in the shared variant: binary type, then value.
    static func sharedDynamicValue(_ typeAndValue: [UInt8]) throws -> String {
        var value = ByteWriter()
        value.writeVarUInt(UInt64(typeAndValue.count))
        value.writeBytes(typeAndValue)
        // Version 2, no listed types, basic mode; the discriminator 0 is SharedVariant.
        let data = le64(2) + [0] + le64(0) + [0] + value.bytes
        let blocks = try NativeFormat.decodeBlocks(nativeBlock(rows: 1, name: "d", type: "Dynamic", data: data))
        return JSONEachRow.render(try #require(blocks.first))
    }

    @Test func invalidBinaryTypesInSharedValuesDoNotTrap() throws {
        // Found in review: FixedString(0) divided by zero, DateTime64 with precision 19 overflowed
        // 10^19, and Dynamic tags nested 100 000 deep overflowed the stack, all while rendering.
        // Such values now render as null, as values of types that cannot be decoded do.
        #expect(try Self.sharedDynamicValue([0x16, 0x00]) == "{\"d\":null}\n")
        #expect(try Self.sharedDynamicValue([0x13, 0x13] + Self.le64(5)) == "{\"d\":null}\n")
        #expect(try Self.sharedDynamicValue([0x33, 0x0A] + Self.le64(5)) == "{\"d\":null}\n")
        #expect(try Self.sharedDynamicValue([0x19, 0x00, 0x00] + [0, 0, 0, 0]) == "{\"d\":null}\n")
        #expect(try Self.sharedDynamicValue(Array([[UInt8]](repeating: [0x2B, 0x00], count: 100_000).joined()) + [0x01, 7]) == "{\"d\":null}\n")
        // Valid ones still render.
        #expect(try Self.sharedDynamicValue([0x16, 0x01, 0x41]) == "{\"d\":\"A\"}\n")
        #expect(try Self.sharedDynamicValue([0x2B, 0x00, 0x01, 7]) == "{\"d\":7}\n")
    }

    /// Found in review: a DateTime64(0) or Time64(0) value of Int64.min (any server may send one; a
    /// Native INSERT stores it) trapped while rendered as text. Instants outside years 0000–9999
    /// print as the nearest end of that range with their fraction, as ClickHouse 26.x prints them
    /// (checked with chdb: `reinterpret(toInt64(v), 'DateTime64(3, \'UTC\')')`).
    @Test func extremeInstantsRenderAsClickHousePrintsThem() throws {
        func rendered(_ type: ClickHouseType, _ values: [Int64]) -> String {
            JSONEachRow.render(Block(columns: [NamedColumn("t", FixedWidthColumn(type: type, values: values))]))
        }
        #expect(rendered(.dateTime64(precision: 0, timeZone: "UTC"), [.min, .max]) == """
            {"t":"0000-01-01 00:00:00"}
            {"t":"9999-12-31 23:59:59"}

            """)
        #expect(rendered(.dateTime64(precision: 0, timeZone: "America/New_York"), [.min, .max]) == """
            {"t":"0000-01-01 00:00:00"}
            {"t":"9999-12-31 23:59:59"}

            """)
        #expect(rendered(.dateTime64(precision: 3, timeZone: "UTC"), [316_516_000_000_123, -70_000_000_000_000, 253_402_300_799_999, .min]) == """
            {"t":"9999-12-31 23:59:59.123"}
            {"t":"0000-01-01 00:00:00.000"}
            {"t":"9999-12-31 23:59:59.999"}
            {"t":"0000-01-01 00:00:00.192"}

            """)
        #expect(rendered(.time64(precision: 0), [.min, .max]) == """
            {"t":"-2562047788015215:30:08"}
            {"t":"2562047788015215:30:07"}

            """)
    }

    /// Found in review: progress counts are the server's numbers, and chnative adds up every
    /// Progress packet; two whose sum passes UInt64.max trapped the process.
    @Test func progressSumsStopAtTheLargestCount() {
        var total = Progress()
        var huge = Progress()
        (huge.rows, huge.bytes, huge.totalRowsToRead, huge.writtenRows, huge.writtenBytes, huge.elapsedNanoseconds) = (.max, .max - 1, .max, .max, .max, .max)
        var small = Progress()
        (small.rows, small.bytes, small.totalRowsToRead, small.writtenRows, small.writtenBytes, small.elapsedNanoseconds) = (1, 1, 2, 3, 4, 5)
        total.add(huge)
        total.add(small)
        #expect([total.rows, total.bytes, total.totalRowsToRead, total.writtenRows, total.writtenBytes, total.elapsedNanoseconds] == Array(repeating: UInt64.max, count: 6))
        var exact = Progress()
        exact.add(small)
        exact.add(small)
        #expect([exact.rows, exact.bytes, exact.totalRowsToRead, exact.writtenRows, exact.writtenBytes, exact.elapsedNanoseconds] == [2, 2, 4, 6, 8, 10])
    }

    @Test func arraysOfValuesThatTakeNoBytesAreNotTakenForTruncation() throws {
        // Found in review: `['{}'::JSON]` in the flattened form (no paths, so no bytes per value)
        // was reported as a stream cut inside a block, because offsets were bounded by the bytes left.
        let data = Self.le64(3) + [0] + Self.le64(1)  // JSON prefix: flattened, no paths; then offsets [1] (chDB's bytes)
        let blocks = try NativeFormat.decodeBlocks(Self.nativeBlock(rows: 1, name: "a", type: "Array(JSON)", data: data))
        #expect(JSONEachRow.render(try #require(blocks.first)) == "{\"a\":[{}]}\n")
    }

    @Test func variantMembersOutOfTheServersOrderAreRefusedWhenEncoding() throws {
        // Found in review: the server numbers members in name order whatever the type name lists;
        // `Variant(UInt64, String)` written as listed made discriminator 0 mean String to the reader.
        let unsorted = ClickHouseType.variant([.uint64, .string])
        var numbers = FixedWidthColumn<UInt64>(type: .uint64)
        numbers.append(7)
        let column = try VariantColumn(type: unsorted, discriminators: [0], members: [numbers, StringColumn()])
        #expect(throws: NativeFormatError("cannot encode column v of type Variant(UInt64, String): Variant members must be in the server's order, sorted by name: Variant(String, UInt64)")) {
            try NativeFormat.encodeBlocks([Block(columns: [NamedColumn("v", column)])])
        }
    }

    @Test func namesSortByTheirBytes() {
        // Swift's `<` takes canonically equivalent strings as equal: JSON paths `e\u{301}x` and
        // `\u{E9}a` came out swapped against ClickHouse's byte order.
        #expect(precedesByBytes("e\u{301}x", "\u{E9}a"))
        #expect(!("e\u{301}x" < "\u{E9}a"))
    }

    /// Set by the writer thread once it closed its end of the pipe.
    final class ClosedFlag: @unchecked Sendable {
        private let lock = NSLock()
        private var closed = false
        func set() { lock.withLock { closed = true } }
        var isSet: Bool { lock.withLock { closed } }
    }

    /// A thread of its own for tests that time a quiet source, each check made on it: the iterator
    /// sleeps between looks at the source, and on the shared pool (two threads here) a wake-up
    /// queues behind the CPU-bound tests running in parallel, measured at over 30 s.
    static let ownThread = EventLoopTaskExecutor(MultiThreadedEventLoopGroup(numberOfThreads: 1).next())

    /// Writes `pieces` into a new pipe from a thread, pausing `pause` seconds after each, and closes
    /// its write end `holdOpen` seconds after the last; returns the read end and the flag it sets then.

    static func pipeWriting(_ pieces: [[UInt8]], pause: Double, holdOpen: Double) -> (Int32, ClosedFlag) {
        var ends: [Int32] = [0, 0]
        precondition(pipe(&ends) == 0)
        let writeEnd = ends[1]
        let flag = ClosedFlag()
        Thread.detachNewThread {
            for piece in pieces {
                piece.withUnsafeBytes { raw in
                    var offset = 0
                    while offset < raw.count { offset += max(0, write(writeEnd, raw.baseAddress! + offset, raw.count - offset)) }
                }
                Thread.sleep(forTimeInterval: pause)
            }
            Thread.sleep(forTimeInterval: holdOpen)
            flag.set()
            close(writeEnd)
        }
        return (ends[0], flag)
    }

    @Test(arguments: [BlockDecoding.values, .encoded])
    func aBlockFinishedByASmallPieceIsYieldedWhileTheSourceStaysOpen(decoding: BlockDecoding) async throws {
        // Found in review: a Native block whose last bytes came in a small read waited until the
        // bytes had doubled, that is until the next block (9 s behind a live producer), or the end.
        var numbers = FixedWidthColumn<UInt64>(type: .uint64)
        for n in 0..<100_000 { numbers.append(UInt64(n)) }
        let bytes = try NativeFormat.encodeBlocks([Block(columns: [NamedColumn("n", numbers)])])
        let (readEnd, writerClosed) = Self.pipeWriting([Array(bytes.dropLast(5)), Array(bytes.suffix(5))], pause: 0.2, holdOpen: 30)
        defer { close(readEnd) }
        try await withTaskExecutorPreference(Self.ownThread) {
            var iterator = FileDescriptorBlocks(nativeFrom: readEnd, decoding: decoding).makeAsyncIterator()
            let block = try #require(try await iterator.next())
            #expect(block.rowCount == 100_000)
            #expect(!writerClosed.isSet, "the block waited for the end of the input")
        }
    }

    @Test func textRowsFromAQuietSourceAreYieldedWithoutWaitingForABlocksWorth() async throws {
        let (readEnd, writerClosed) = Self.pipeWriting([Array("1\tone\n2\ttwo\n".utf8)], pause: 0, holdOpen: 30)
        defer { close(readEnd) }
        let decoder = TextInputDecoder(format: .tabSeparated, structure: try TextInputDecoder.parseStructure("n UInt8, s String"))
        try await withTaskExecutorPreference(Self.ownThread) {
            var iterator = FileDescriptorBlocks(fileDescriptor: readEnd, decoder: decoder).makeAsyncIterator()
            let block = try #require(try await iterator.next())
            #expect(TabSeparated.render(block) == "1\tone\n2\ttwo\n")
            #expect(!writerClosed.isSet, "the rows waited for the end of the input")
        }
    }

    @Test func cancellingWhileTheSourceIsQuietEndsTheWait() async throws {
        // Found in review: the iterator then sat in read(2) until input came, so Ctrl-C on
        // `chnative --query "INSERT ... FORMAT TabSeparated"` from a quiet pipe did nothing.
        let (readEnd, writerClosed) = Self.pipeWriting([Array("1\tone\n".utf8)], pause: 0, holdOpen: 30)
        defer { close(readEnd) }
        let structure = try TextInputDecoder.parseStructure("n UInt8, s String")
        try await withTaskExecutorPreference(Self.ownThread) {
            let reading = Task(executorPreference: Self.ownThread) {
                let decoder = TextInputDecoder(format: .tabSeparated, structure: structure)
                var rows = 0
                for try await block in FileDescriptorBlocks(fileDescriptor: readEnd, decoder: decoder) { rows += block.rowCount }
                return rows
            }
            try await Task.sleep(for: .milliseconds(300))  // the one row is yielded; the source is quiet
            reading.cancel()
            await #expect(throws: CancellationError.self) { try await reading.value }
            #expect(!writerClosed.isSet, "the iterator waited for the end of the input")
        }
    }

    @Test func nilInANonNullableLowCardinalityIsTheDefault() {
        // Found in review: it stopped the program (a precondition) instead.
        let column = LowCardinalityColumn(strings: ["a", nil, "a"])
        #expect(TabSeparated.render(Block(columns: [NamedColumn("s", column)])) == "a\n\na\n")
    }
}
