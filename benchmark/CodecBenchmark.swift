import ArgumentParser
import ClickHouseNative
import Foundation

/// `event-bench codec`: decode and encode speed of the column codecs next to a plain memory copy of
/// the same bytes, measured in the same run.
struct CodecBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codec", abstract: "Column codec throughput (decode/encode) against memcpy of the same bytes.")

    @Option(help: "Rows per column.") var rows = 1_000_000
    @Option(help: "Repetitions; the best time is reported.") var repetitions = 7

    func run() throws {
        let cases: [(String, Block)] = [
            ("UInt64", Block(columns: [NamedColumn("n", FixedWidthColumn(type: .uint64, values: (0..<UInt64(rows)).map { $0 &* 2_654_435_761 }))])),
            ("String (avg 50 B)", Block(columns: [NamedColumn("s", Self.strings(rows))])),
            ("LowCardinality(String)", Block(columns: [NamedColumn("lc", LowCardinalityColumn(strings: (0..<rows).map { "event_type_\($0 % 50)" }))])),
            ("Nullable(Float64)", Block(columns: [NamedColumn("f", NullableColumn(type: .float64, values: (0..<rows).map { $0 % 5 == 0 ? nil : Double($0) * 0.25 }, placeholder: 0))])),
            ("event schema (10 columns)", Self.eventBlock(rows)),
        ]
        print("codec benchmark: \(rows) rows per case, best of \(repetitions); MB/s of Native bytes")
        print(pad("case", 28) + pad("bytes", 12) + pad("decode MB/s", 13) + pad("ns/row", 9) + pad("encode MB/s", 13)
              + pad("ns/row", 9) + pad("rows/s enc", 13) + pad("memcpy MB/s", 13) + pad("dec/memcpy", 11) + "enc/memcpy")
        for (name, block) in cases {
            var writer = ByteWriter()
            try NativeFormat.writeBlock(block, to: &writer)
            let bytes = writer.bytes
            let decode = try bestThrowing {
                try bytes.withUnsafeBytes { raw in
                    var reader = ByteReader(raw)
                    _ = try NativeFormat.readBlock(&reader)
                }
            }
            let encode = try bestThrowing {
                var w = ByteWriter(capacity: bytes.count)
                try NativeFormat.writeBlock(block, to: &w)
            }
            // Copies into a fresh array the way decoding allocates (Array(buffer) of an unused result
            // may be stack-promoted by the optimizer, which overflows the stack at this size).
            let copy = best {
                let copied = [UInt8](unsafeUninitializedCapacity: bytes.count) { buffer, n in
                    bytes.withUnsafeBytes { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: $0) }
                    n = bytes.count
                }
                precondition(copied.count == bytes.count)
            }
            let mb = Double(bytes.count) / 1e6
            print(pad(name, 28) + pad(String(bytes.count), 12)
                  + pad(fmt(mb / decode), 13) + pad(fmt(decode * 1e9 / Double(rows)), 9)
                  + pad(fmt(mb / encode), 13) + pad(fmt(encode * 1e9 / Double(rows)), 9)
                  + pad(fmt(Double(rows) / encode / 1e6) + "M", 13)
                  + pad(fmt(mb / copy), 13) + pad(fmt(copy / decode * 100) + "%", 11) + fmt(copy / encode * 100) + "%")
        }
        let sequential = Block(columns: [NamedColumn("number", FixedWidthColumn(type: .uint64, values: (0..<UInt64(rows)).map { $0 }))])
        try lz4(cases + [("sequential UInt64", sequential)])
    }

    /// LZ4 decoding of 1 MiB frames (what the server sends) of each case's Native bytes: our
    /// decoder against liblz4's `LZ4_decompress_safe`, on the same frames.
    func lz4(_ cases: [(String, Block)]) throws {
        print("\nLZ4 block decoding, 1 MiB frames, best of \(repetitions); MB/s of uncompressed bytes")
        print(pad("case", 28) + pad("ratio", 8) + pad("ours MB/s", 11) + pad("liblz4 MB/s", 13) + "ours/liblz4")
        for (name, block) in cases {
            var writer = ByteWriter()
            try NativeFormat.writeBlock(block, to: &writer)
            let frames: [(compressed: [UInt8], size: Int)] = try stride(from: 0, to: writer.count, by: 1 << 20).map { start in
                let chunk = Array(writer.bytes[start..<min(writer.count, start + (1 << 20))])
                return (try chunk.withUnsafeBytes { try LZ4Block.compress($0) }, chunk.count)
            }
            for frame in frames {
                let ours = try frame.compressed.withUnsafeBytes { try LZ4Block.decompress($0, uncompressedSize: frame.size) }
                let reference = frame.compressed.withUnsafeBytes { LZ4Block.decompressWithLibLZ4($0, uncompressedSize: frame.size) }
                precondition(ours == reference, "LZ4 decoders disagree on \(name)")
            }
            let ours = try bestThrowing {
                for frame in frames { _ = try frame.compressed.withUnsafeBytes { try LZ4Block.decompress($0, uncompressedSize: frame.size) } }
            }
            let liblz4 = best {
                for frame in frames { _ = frame.compressed.withUnsafeBytes { LZ4Block.decompressWithLibLZ4($0, uncompressedSize: frame.size) } }
            }
            let mb = Double(writer.count) / 1e6
            let compressed = frames.reduce(0) { $0 + $1.compressed.count }
            print(pad(name, 28) + pad(fmt(Double(writer.count) / Double(compressed)), 8) + pad(fmt(mb / ours), 11)
                  + pad(fmt(mb / liblz4), 13) + fmt(liblz4 / ours * 100) + "%")
        }
    }

    static func strings(_ rows: Int) -> StringColumn {
        var column = StringColumn()
        column.reserveCapacity(rows: rows, bytes: rows * 50)
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789 ".utf8)
        var state: UInt64 = 42
        for _ in 0..<rows {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let length = 20 + Int(state >> 33) % 61  // 20...80 bytes, mean 50
            column.append(bytes: (0..<length).map { alphabet[($0 &+ Int(state >> 40)) % alphabet.count] })
        }
        return column
    }

    /// The events table's columns, as the consumer inserts them.
    static func eventBlock(_ rows: Int) -> Block {
        let ids = (0..<rows).map { Bits128(first: 0x0190_0000_0000_7000 | UInt64($0), second: 0x8000_0000_0000_0000 | UInt64($0) &* 31) }
        var conversations = StringColumn()
        var inputs = StringColumn()
        var outputs = StringColumn()
        for i in 0..<rows {
            conversations.append("conv-\(i / 20)")
            inputs.append("user question number \(i) about the product")
            outputs.append("assistant answer \(i)")
        }
        let names = LowCardinalityColumn(strings: (0..<rows).map { ["llm_call", "tool_call", "retrieval", "feedback"][$0 % 4] })
        return Block(columns: [
            NamedColumn("id", FixedWidthColumn(type: .uuid, values: ids)),
            NamedColumn("conversation_id", conversations),
            NamedColumn("event_name", names),
            NamedColumn("input", inputs),
            NamedColumn("output", outputs),
            NamedColumn("latency", FixedWidthColumn(type: .float64, values: (0..<rows).map { Double($0 % 1000) * 1.5 })),
            NamedColumn("error", NullableColumn(strings: (0..<rows).map { $0 % 10 == 0 ? "timeout" : nil })),
            NamedColumn("timestamp", FixedWidthColumn(type: .dateTime64(precision: 3, timeZone: "UTC"), values: (0..<rows).map { 1_700_000_000_000 + Int64($0) })),
            NamedColumn("version", FixedWidthColumn(type: .uint64, values: (0..<UInt64(rows)).map { $0 })),
            NamedColumn("is_deleted", FixedWidthColumn(type: .uint8, values: [UInt8](repeating: 0, count: rows))),
        ])
    }

    func best(_ body: () -> Void) -> Double {
        var result = Double.infinity
        for _ in 0..<repetitions {
            let start = ContinuousClock.now
            body()
            result = min(result, seconds(ContinuousClock.now - start))
        }
        return result
    }

    func bestThrowing(_ body: () throws -> Void) throws -> Double {
        var result = Double.infinity
        for _ in 0..<repetitions {
            let start = ContinuousClock.now
            try body()
            result = min(result, seconds(ContinuousClock.now - start))
        }
        return result
    }

    func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
func fmt(_ x: Double) -> String { String(format: "%.1f", x) }
