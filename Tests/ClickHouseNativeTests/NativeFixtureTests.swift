import Foundation
import Testing
@testable import ClickHouseNative

/// Every golden fixture made by a real ClickHouse engine (chDB 26.x) decodes to the values that
/// engine printed, and encodes back to the same bytes.
/// Serialized: its cases are CPU-bound, and run side by side they held both threads of the
/// concurrency pool for long stretches, while tests waiting on the server or the broker queued
/// behind them (a consumer's schema migration took 39 s in one CI run).
@Suite(.serialized) struct NativeFixtureTests {
    @Test func manifestHasTheCases() {
        #expect(Fixtures.cases.count >= 120, "Fixtures/native/manifest.json lists \(Fixtures.cases.count) cases")
        #expect(Fixtures.largeCases.count >= 4, "Fixtures/native/manifest.json lists \(Fixtures.largeCases.count) large cases")
    }

    @Test(arguments: Fixtures.smallCases)
    func decodesToTheEngineValues(_ fixture: Fixtures.Case) throws {
        let bytes = try Fixtures.nativeBytes(fixture)
        let blocks = try NativeFormat.decodeBlocks(bytes)
        #expect(blocks.reduce(0) { $0 + $1.rowCount } == fixture.rows)
        if fixture.hasRawBytes {
            #expect(Fixtures.renderHex(blocks, timeZone: fixture.timeZone) == (try Fixtures.text("\(fixture.name).hex.jsonl")))
        } else {
            let expected = try Fixtures.text("\(fixture.name).jsonl")
            let actual = blocks.map { JSONEachRow.render($0, timeZone: fixture.timeZone) }.joined()
            #expect(actual == expected)
        }
    }

    @Test(arguments: Fixtures.cases)
    func reencodesToTheSameBytes(_ fixture: Fixtures.Case) throws {
        let bytes = try Fixtures.nativeBytes(fixture)
        let blocks = try NativeFormat.decodeBlocks(bytes)
        let encoded = try NativeFormat.encodeBlocks(blocks)
        #expect(encoded.count == bytes.count)
        #expect(encoded == bytes)
    }

    /// Native input kept encoded (what an INSERT from a Native file sends) is written back byte for
    /// byte, fed in pieces as a pipe would deliver it.
    @Test(arguments: Fixtures.cases)
    func encodedColumnsPassThroughUnchanged(_ fixture: Fixtures.Case) throws {
        let bytes = try Fixtures.nativeBytes(fixture)
        var decoder = NativeStreamDecoder(decoding: .encoded)
        var blocks: [Block] = []
        for chunk in stride(from: 0, to: bytes.count, by: 4096) {
            decoder.append(bytes[chunk..<min(chunk + 4096, bytes.count)])
            while let block = try decoder.nextBlock() { blocks.append(block) }
        }
        while let block = try decoder.nextBlock(endOfInput: true) { blocks.append(block) }
        try decoder.finish()
        #expect(blocks.allSatisfy { block in block.rowCount == 0 || block.columns.allSatisfy { $0.column is EncodedColumn } })
        #expect(blocks.map(\.rowCount) == (try NativeFormat.decodeBlocks(bytes)).map(\.rowCount))
        #expect(try NativeFormat.encodeBlocks(blocks) == bytes)
    }

    /// A Native file read through a file descriptor: the same blocks as decoding it whole, in
    /// both decodings (the large fixtures span several 1 MiB reads).
    @Test(arguments: Fixtures.largeCases)
    func fileDescriptorBlocksReadTheFile(_ fixture: Fixtures.Case) async throws {
        let bytes = try Fixtures.nativeBytes(fixture)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("fd-blocks-\(fixture.name)-\(getpid()).native")
        try Data(bytes).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let expected = try NativeFormat.decodeBlocks(bytes)
        for decoding in [BlockDecoding.values, .encoded] {
            let descriptor = open(url.path, O_RDONLY)
            #expect(descriptor >= 0)
            defer { close(descriptor) }
            var blocks: [Block] = []
            for try await block in FileDescriptorBlocks(nativeFrom: descriptor, decoding: decoding) { blocks.append(block) }
            #expect(blocks.map(\.rowCount) == expected.map(\.rowCount))
            #expect(try NativeFormat.encodeBlocks(blocks) == bytes)
        }
    }

    @Test(arguments: Fixtures.largeCases)
    func largeFixturesMatchTheirSummary(_ fixture: Fixtures.Case) throws {
        let blocks = try NativeFormat.decodeBlocks(try Fixtures.nativeBytes(fixture))
        let summary = try JSONSerialization.jsonObject(with: Data(try Fixtures.text("\(fixture.name).summary.json").utf8)) as! [String: Any]
        let rows = blocks.reduce(0) { $0 + $1.rowCount }
        #expect(rows == summary["rows"] as? Int)
        let columns = summary["columns"] as! [String: [String: Any]]
        for (name, expected) in columns {
            let parts = blocks.compactMap { $0[name] }
            func rendered(_ global: Int) -> String {
                var index = global
                for part in parts {
                    if index < part.count {
                        var out = TextBuffer()
                        JSONEachRow.appendValue(part, row: index, to: &out)
                        return out.text
                    }
                    index -= part.count
                }
                return "?"
            }
            func parse(_ values: [String]) throws -> NSArray {
                try JSONSerialization.jsonObject(with: Data("[\(values.joined(separator: ","))]".utf8)) as! NSArray
            }
            #expect(try parse((0..<3).map(rendered)) == (expected["first"] as! NSArray), "\(name) first")
            #expect(try parse(((rows - 3)..<rows).map(rendered)) == (expected["last"] as! NSArray), "\(name) last")
            var nulls = 0
            var sum = 0.0
            var totalLength = 0
            for part in parts {
                switch part {
                case let c as FixedWidthColumn<UInt64>: sum += c.values.reduce(0.0) { $0 + Double($1) }
                case let c as StringColumn: totalLength += c.bytes.count
                case let c as NullableColumn:
                    nulls += c.nulls.reduce(0) { $0 + Int($1) }
                    if let values = c.values as? FixedWidthColumn<Double> {
                        sum += zip(c.nulls, values.values).reduce(0.0) { $0 + ($1.0 == 0 ? $1.1 : 0) }
                    }
                case let c as LowCardinalityColumn:
                    let dictionary = c.dictionary as! StringColumn
                    for row in 0..<c.count { totalLength += dictionary.range(at: c.indexes[row]).count }
                default: Issue.record("no summary check for \(part.type)")
                }
            }
            #expect(nulls == ((expected["null_count"] as? NSNumber)?.intValue ?? -1), "\(name) nulls")
            if let expectedSum = (expected["sum"] as? NSNumber)?.doubleValue { #expect(abs(sum - expectedSum) <= 1e-9 * abs(expectedSum), "\(name) sum") }
            if let expectedLength = (expected["total_length"] as? NSNumber)?.intValue { #expect(totalLength == expectedLength, "\(name) total length") }
        }
    }

    /// Columns built with the builders (as the consumer builds its inserts) are read by the engine as meant.
    @Test func engineReadsBuiltColumns() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("native-built-\(getpid())")
        let output = directory.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var tags = StringColumn()
        var offsets: [UInt64] = []
        for i in 0..<4 {
            for t in 0..<i { tags.append("tag\(t)") }
            offsets.append(UInt64(tags.count))
        }
        let block = Block(columns: [
            NamedColumn("id", FixedWidthColumn(type: .uuid, values: (0..<4).map { Bits128(first: 0x0190_0000_0000_7000 | UInt64($0), second: 0x8000_0000_0000_0001) })),
            NamedColumn("name", LowCardinalityColumn(strings: ["llm_call", "tool_call", "llm_call", "feedback"])),
            NamedColumn("error", NullableColumn(strings: [nil, "timeout", nil, "it's \"quoted\""])),
            NamedColumn("maybe", LowCardinalityColumn(strings: ["a", nil, "b", nil], nullable: true)),
            NamedColumn("latency", FixedWidthColumn(type: .float64, values: [0.5, 1.25, 1e-7, 12345.0])),
            NamedColumn("at", FixedWidthColumn(type: .dateTime64(precision: 3, timeZone: "UTC"), values: [Int64(1_700_000_000_123), 0, -1, 4_102_444_800_000])),
            NamedColumn("tags", ArrayColumn(type: .array(.string), offsets: offsets, elements: tags)),
            NamedColumn("scores", ArrayColumn(elementType: .int32, arrays: [[Int32(1)], [], [-2, 3], [Int32.max]])),
        ])
        let file = directory.appendingPathComponent("built.native")
        try Data(try NativeFormat.encodeBlocks([block])).write(to: file)
        #expect(try Fixtures.readBackWithChDB(outputDirectory: output, files: [file]) == 0)
        let engine = try String(contentsOf: output.appendingPathComponent("built.jsonl"), encoding: .utf8)
        #expect(engine == JSONEachRow.render(block))
        #expect(engine.hasPrefix("{\"id\":\"01900000-0000-7000-8000-000000000001\",\"name\":\"llm_call\",\"error\":null,\"maybe\":\"a\",\"latency\":0.5,\"at\":\"2023-11-14 22:13:20.123\",\"tags\":[],\"scores\":[1]}"))
    }

    /// Columns built from Swift values for the types the local 18.16 server lacks (Date32,
    /// DateTime64, Map), read by the current engine as meant.
    @Test func engineReadsColumnsBuiltFromSwiftValues() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("native-swift-values-\(getpid())")
        let output = directory.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // 1900-01-01, 2024-02-29 12:00:00.123 (a millisecond a Date holds a hair below), 2299-12-31.
        let instants = [Date(timeIntervalSince1970: -2_208_988_800), Date(timeIntervalSince1970: 1_709_208_000.123),
                        Date(timeIntervalSince1970: 10_413_705_600)]
        let block = Block(columns: [
            NamedColumn("d32", try FixedWidthColumn<Int32>(dates: instants)),
            NamedColumn("t3", try FixedWidthColumn<Int64>(dateTime64s: instants, precision: 3, timeZone: "UTC")),
            NamedColumn("t6", try FixedWidthColumn<Int64>(dateTime64s: instants, precision: 6)),
            NamedColumn("m", MapColumn(strings: [["b": "2", "a": "1", "é": "3"], [:], ["k": "it's"]])),
            NamedColumn("pairs", MapColumn(strings: [[(key: "z", value: "1"), (key: "a", value: "2")], [], []])),
        ])
        let file = directory.appendingPathComponent("swift_values.native")
        try Data(try NativeFormat.encodeBlocks([block])).write(to: file)
        #expect(try Fixtures.readBackWithChDB(outputDirectory: output, files: [file]) == 0)
        let engine = try String(contentsOf: output.appendingPathComponent("swift_values.jsonl"), encoding: .utf8)
        #expect(engine == """
            {"d32":"1900-01-01","t3":"1900-01-01 00:00:00.000","t6":"1900-01-01 00:00:00.000000","m":{"a":"1","b":"2","é":"3"},"pairs":{"z":"1","a":"2"}}
            {"d32":"2024-02-29","t3":"2024-02-29 12:00:00.123","t6":"2024-02-29 12:00:00.123000","m":{},"pairs":{}}
            {"d32":"2299-12-31","t3":"2299-12-31 00:00:00.000","t6":"2299-12-31 00:00:00.000000","m":{"k":"it's"},"pairs":{}}

            """)
    }

    /// Our encoder's bytes, read back by the real engine, print the same values.
    @Test func engineReadsOurEncoding() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("native-readback-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        let output = directory.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }

        var files: [URL] = []
        for fixture in Fixtures.smallCases {
            let blocks = try NativeFormat.decodeBlocks(try Fixtures.nativeBytes(fixture))
            guard !blocks.isEmpty else { continue }
            let file = directory.appendingPathComponent("\(fixture.name).native")
            try Data(try NativeFormat.encodeBlocks(blocks)).write(to: file)
            files.append(file)
        }
        #expect(try Fixtures.readBackWithChDB(outputDirectory: output, files: files) == 0)
        for fixture in Fixtures.smallCases where files.contains(where: { $0.lastPathComponent == "\(fixture.name).native" }) {
            let jsonl = output.appendingPathComponent("\(fixture.name).jsonl")
            let actual = try? Data(contentsOf: jsonl)
            let error = try? String(contentsOf: output.appendingPathComponent("\(fixture.name).error"), encoding: .utf8)
            #expect(actual == (try Fixtures.data("\(fixture.name).jsonl")), "\(fixture.name): \(error ?? "")")
        }
    }
}
