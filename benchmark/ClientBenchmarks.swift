import ArgumentParser
import ClickHouseNative
import Foundation

struct ServerOptions: ParsableArguments {
    @Option(help: "ClickHouse host.") var host = ProcessInfo.processInfo.environment["CLICKHOUSE_HOST"] ?? "127.0.0.1"
    @Option(help: "ClickHouse native port.") var port = Int(ProcessInfo.processInfo.environment["CLICKHOUSE_PORT"] ?? "") ?? 9000
    @Option(help: "ClickHouse user (CLICKHOUSE_USER).") var user = ProcessInfo.processInfo.environment["CLICKHOUSE_USER"] ?? "default"
    // Read from the environment when used, not as the option's default: `--help` prints defaults.
    @Option(name: .customLong("password"), help: "ClickHouse password (default: CLICKHOUSE_PASSWORD).") var passwordOption: String?
    var password: String { passwordOption ?? ProcessInfo.processInfo.environment["CLICKHOUSE_PASSWORD"] ?? "" }

    func configuration(_ compression: CompressionMethod = .lz4) -> ClickHouseConfiguration {
        ClickHouseConfiguration(host: host, port: port, user: user, password: password, compression: compression)
    }

    var clientArguments: [String] {
        ["clickhouse-client", "--host", host, "--port", String(port), "--user", user] + (password.isEmpty ? [] : ["--password", password])
    }
}

/// `event-bench read`: streaming a large result and discarding it, next to clickhouse-client.
struct ReadBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "read", abstract: "Read throughput against clickhouse-client --format Null.")
    @OptionGroup var server: ServerOptions
    @Option(help: "Rows to read.") var rows = 100_000_000
    @Option(help: "Runs of each client, alternating; the table shows each run and the medians (9: single runs swing on a shared 2-core machine).") var repeats = 9
    @Option(help: "Network compression methods to run, comma-separated (none, lz4, zstd).") var compression = "none,lz4"

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        guard rows >= 1 else { throw ValidationError("--rows must be at least 1") }
        _ = try methods()
    }

    /// Each method named in `--compression`, with the clickhouse-client flags that match it.
    func methods() throws -> [(CompressionMethod, [String])] {
        try compression.split(separator: ",").map { name -> (CompressionMethod, [String]) in
            switch name {
            case "none": return (.none, ["--compression", "0"])
            case "lz4": return (.lz4, ["--compression", "1"])
            case "zstd": return (.zstd, ["--compression", "1", "--network_compression_method", "zstd"])
            default: throw ValidationError("unknown compression method \(name) (none, lz4, zstd)")
            }
        }
    }

    func run() async throws {
        let sql = "SELECT number FROM system.numbers_mt LIMIT \(rows)"
        let methods = try methods()
        let labelWidth = 2 + methods.map { method, flags in
            max("  run \(repeats): clickhouse-client \(flags.joined(separator: " "))".count,
                "  run \(repeats): ClickHouseNative (\(method.rawValue), consumer on its event loop)".count)
        }.max()!
        // One table row; ours also gets its ratios to the peer's figures.
        func row(_ label: String, wall: Double, cpu: Double, peer: (wall: Double, cpu: Double)? = nil) {
            let ratios = peer.map { pad(ratio(wall, $0.wall), 12) + ratio(cpu, $0.cpu) } ?? ""
            print(pad(label, labelWidth) + pad(fmt3(wall), 10) + pad(fmt3(cpu), 14) + ratios)
        }
        print("read benchmark: \(sql), \(repeats) alternating runs of each client")
        print("(clickhouse-client's figures include its process start and connect, about 0.03 s wall here; ours reuse an open connection)")
        print(pad("run", labelWidth) + pad("wall s", 10) + pad("client CPU s", 14) + pad("wall ratio", 12) + "CPU ratio")
        for (method, flags) in methods {
            let peerLabel = "clickhouse-client \(flags.joined(separator: " "))"
            // Two ways of consuming: from a task on Swift's global executor (what code gets by
            // default), and from a task on the connection's event loop (`taskExecutor`).
            let consumers: [(label: String, onEventLoop: Bool)] = [
                ("ClickHouseNative (\(method.rawValue))", false),
                ("ClickHouseNative (\(method.rawValue), consumer on its event loop)", true),
            ]
            var peers: [Measurement] = []
            var ours = Array(repeating: [Measurement](), count: consumers.count)
            let connection = try await ClickHouseConnection.connect(server.configuration(method))
            for run in 1...repeats {
                let peer = try Measurement.child(server.clientArguments + flags + ["--format", "Null", "--query", sql])
                peers.append(peer)
                row("  run \(run): \(peerLabel)", wall: peer.wallSeconds, cpu: peer.cpuSeconds)
                // Which consumer goes first alternates from run to run, as the peer's place does not.
                let order = run % 2 == 1 ? Array(consumers.indices) : consumers.indices.reversed()
                for index in order {
                    let consumer = consumers[index]
                    var received = 0
                    let mine = try await Measurement.inProcess {
                        let executor: (any TaskExecutor)? = consumer.onEventLoop ? connection.taskExecutor : nil
                        try await withTaskExecutorPreference(executor) {
                            for try await block in try await connection.query(sql) { received += block.rowCount }
                        }
                    }
                    guard received == rows else { throw ValidationFailure("received \(received) rows, expected \(rows)") }
                    ours[index].append(mine)
                    row("  run \(run): \(consumer.label)", wall: mine.wallSeconds, cpu: mine.cpuSeconds, peer: (peer.wallSeconds, peer.cpuSeconds))
                }
            }
            await connection.close()
            let peerMedian = (wall: median(peers.map(\.wallSeconds)), cpu: median(peers.map(\.cpuSeconds)))
            row("median \(peerLabel)", wall: peerMedian.wall, cpu: peerMedian.cpu)
            for (index, consumer) in consumers.enumerated() {
                row("median \(consumer.label)", wall: median(ours[index].map(\.wallSeconds)), cpu: median(ours[index].map(\.cpuSeconds)), peer: peerMedian)
            }
        }
    }
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

/// `event-bench insert`: event rows into MergeTree from a Native file and from in-memory columns,
/// next to `clickhouse-client --query "INSERT ... FORMAT Native" < file`.
struct InsertBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "insert", abstract: "Insert throughput of event rows against clickhouse-client.")
    @OptionGroup var server: ServerOptions
    @Option(help: "Rows to insert.") var rows = 10_000_000
    @Option(help: "Rows per block.") var blockRows = 100_000

    func run() async throws {
        let table = "default.bench_events"
        let schema = """
            (id UUID, conversation_id String, event_name String, input String, output String, latency Float64,
             error Nullable(String), timestamp DateTime64(3, 'UTC'), version UInt64, is_deleted UInt8)
            """.replacingOccurrences(of: "DateTime64(3, 'UTC')", with: "UInt64")  // 18.16 has no DateTime64
        let connection = try await ClickHouseConnection.connect(server.configuration(.none))
        func recreate() async throws {
            try await connection.execute("DROP TABLE IF EXISTS \(table)")
            try await connection.execute("CREATE TABLE \(table) \(schema) ENGINE = MergeTree ORDER BY (conversation_id, id)")
        }
        // Each run must have inserted every row, or its time means nothing.
        func checkRows(_ run: String) async throws {
            let stored = try firstCount(try await connection.collect("SELECT count() AS c FROM \(table)"), "c")
            guard stored == rows else { throw ValidationFailure("\(run): \(stored) rows in the table, \(rows) inserted") }
        }
        // One block of the event schema, reused for every insert (as 18.16 lacks DateTime64, the
        // timestamp is sent as UInt64 milliseconds).
        let template = Self.eventBlock(blockRows)
        let blocks = (rows + blockRows - 1) / blockRows
        let rows = blocks * blockRows  // whole blocks are sent
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("bench-events-\(getpid()).native")
        defer { try? FileManager.default.removeItem(at: file) }
        guard FileManager.default.createFile(atPath: file.path, contents: nil) else { throw ValidationError("cannot create \(file.path)") }
        let handle = try FileHandle(forWritingTo: file)
        let encoded = try NativeFormat.encodeBlocks([template])
        for _ in 0..<blocks { handle.write(Data(encoded)) }
        try handle.close()
        let megabytes = Double(encoded.count * blocks) / 1e6
        print("insert benchmark: \(blocks * blockRows) event rows in blocks of \(blockRows), Native file \(fmt(megabytes)) MB")
        print(pad("run", 38) + pad("wall s", 10) + pad("client CPU s", 14) + pad("peak RSS MB", 13) + pad("wall ratio", 12) + "CPU ratio")
        // Each client with and without network compression, next to clickhouse-client set the same way.
        for (method, flag) in [(CompressionMethod.none, "0"), (.lz4, "1")] {
            try await recreate()
            let peer = try Measurement.child(server.clientArguments + ["--compression", flag, "--query", "INSERT INTO \(table) FORMAT Native"], input: file)
            try await checkRows("clickhouse-client, \(method)")
            print(pad("clickhouse-client < file, \(method)", 38) + pad(fmt(peer.wallSeconds), 10) + pad(fmt(peer.cpuSeconds), 14) + pad(fmt(peer.peakResidentMegabytes), 13))
            let inserting = try await ClickHouseConnection.connect(server.configuration(method))
            try await recreate()
            let fromFile = try await Measurement.inProcess {
                let input = open(file.path, O_RDONLY)
                guard input >= 0 else { throw ValidationFailure("cannot open \(file.path)") }
                defer { close(input) }
                try await inserting.insert("INSERT INTO \(table) VALUES", blocks: FileDescriptorBlocks(nativeFrom: input))
            }
            try await checkRows("from file, \(method)")
            print(pad("ClickHouseNative from file, \(method)", 38) + pad(fmt(fromFile.wallSeconds), 10) + pad(fmt(fromFile.cpuSeconds), 14)
                  + pad(fmt(fromFile.peakResidentMegabytes), 13) + pad(ratio(fromFile.wallSeconds, peer.wallSeconds), 12) + ratio(fromFile.cpuSeconds, peer.cpuSeconds))
            try await recreate()
            let fromMemory = try await Measurement.inProcess {
                try await inserting.insert("INSERT INTO \(table) VALUES", blocks: RepeatedBlocks(block: template, count: blocks))
            }
            try await checkRows("from columns, \(method)")
            print(pad("ClickHouseNative from columns, \(method)", 38) + pad(fmt(fromMemory.wallSeconds), 10) + pad(fmt(fromMemory.cpuSeconds), 14)
                  + pad(fmt(fromMemory.peakResidentMegabytes), 13) + pad(ratio(fromMemory.wallSeconds, peer.wallSeconds), 12) + ratio(fromMemory.cpuSeconds, peer.cpuSeconds))
            await inserting.close()
        }
        print("every run's table held all \(rows) rows; peak RSS is each run's own (the child's from wait4, ours after resetting the high-water mark)")
        try await connection.execute("DROP TABLE \(table)")
        await connection.close()
    }

    static func eventBlock(_ rows: Int) -> Block {
        let block = CodecBenchmark.eventBlock(rows)
        return Block(columns: block.columns.map { named in
            switch named.name {
            case "event_name":
                let lc = named.column as! LowCardinalityColumn
                let dictionary = lc.dictionary as! StringColumn
                return NamedColumn(named.name, StringColumn((0..<rows).map { dictionary[lc.indexes[$0]] }))
            case "timestamp":
                let ticks = named.column as! FixedWidthColumn<Int64>
                return NamedColumn(named.name, FixedWidthColumn(type: .uint64, values: ticks.values.map { UInt64($0) }))
            default:
                return named
            }
        })
    }
}

struct RepeatedBlocks: AsyncSequence, Sendable {
    typealias Element = Block
    let block: Block
    let count: Int
    struct AsyncIterator: AsyncIteratorProtocol {
        let block: Block
        var remaining: Int
        mutating func next() async -> Block? {
            guard remaining > 0 else { return nil }
            remaining -= 1
            return block
        }
    }
    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(block: block, remaining: count) }
}

/// The UInt64 in `column` of a one-row answer (`SELECT count() AS n ...`), 0 when no row came.
func firstCount(_ blocks: [Block], _ column: String) throws -> Int {
    try blocks.first { $0.rowCount > 0 }.map { Int(try $0.values(column, as: UInt64.self)[0]) } ?? 0
}
