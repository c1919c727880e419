import ArgumentParser
import ClickHouseNative
import EventPipeline
import Foundation
import Kafka

/// `event-bench drain`: the consumer's throughput from a pre-loaded topic into ClickHouse, next to
/// the ceiling measured in the same run (clickhouse-client inserting the same rows from a Native
/// file), with the CPU of the consumer, the broker and the server, and the consumer's peak RSS.
struct DrainBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain", abstract: "Consumer throughput from a pre-loaded Kafka topic into ClickHouse, next to clickhouse-client.")

    @OptionGroup var server: ServerOptions
    @Option(help: "Create messages to pre-load.") var messages = 1_000_000
    @Option(help: "Kafka brokers.") var brokers = ProcessInfo.processInfo.environment["KAFKA_BROKERS"] ?? "localhost:9092"
    @Option(help: "Partitions of the benchmark topic.") var partitions = 6
    @Option(help: "CONSUMER_BATCH_SIZE for the consumer under test.") var batchSize = 500
    @Option(help: "The event-consumer binary (default: next to this one).") var consumerBinary: String?
    @Option(help: "Seconds to wait for all rows.") var timeout = 600.0

    func run() async throws {
        let runID = String(UUID().lowercasedString.prefix(8))
        let topic = "drain-\(runID)"
        let database = "drain_\(runID)"
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        let consumerPath = consumerBinary ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("event-consumer").path
        print("event-bench drain: \(messages) create messages, topic \(topic) (\(partitions) partitions), batch size \(batchSize)")

        try Self.shell([root.appendingPathComponent(".venv/bin/python").path, root.appendingPathComponent("scripts/kafka_admin.py").path,
                        "ensure-topic", brokers, topic, String(partitions)])
        try Self.shell([root.appendingPathComponent(".venv/bin/python").path, root.appendingPathComponent("scripts/kafka_admin.py").path,
                        "ensure-topic", brokers, topic + ".dlq", "1"])

        // The rows, as the consumer will write them and as clickhouse-client will read them from a file.
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var envelopes: [EventEnvelope] = []
        envelopes.reserveCapacity(messages)
        for i in 0..<messages {
            let fields = EventFields(conversationID: "drain-\(i % 5000)", eventName: "llm_call_\(i % 7)",
                                     input: "What is the capital of France? request \(i)", output: "Paris is the capital of France.",
                                     latency: Double(i % 1000) + 0.5, error: i % 10 == 0, timestampMilliseconds: now - Int64(i))
            let id = UUID.v7(milliseconds: now + Int64(i / 1000))
            envelopes.append(EventEnvelope(eventID: id, operation: .create(fields, idSuppliedByClient: false), receivedAtMilliseconds: now))
        }

        // Pre-load the topic.
        let producer = try KafkaProducer(configuration: KafkaConfiguration(brokers: brokers, ["linger.ms": "50", "batch.num.messages": "10000"]))
        let loadStarted = ContinuousClock.now
        for chunk in stride(from: 0, to: messages, by: 20_000) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for envelope in envelopes[chunk..<min(messages, chunk + 20_000)] {
                    group.addTask { _ = try await producer.send(topic: topic, key: envelope.key, value: envelope.encoded()) }
                }
                try await group.waitForAll()
            }
        }
        producer.close()
        print(String(format: "pre-loaded %d messages in %.1f s", messages, Measurement.seconds(ContinuousClock.now - loadStarted)))

        // Ceiling: clickhouse-client inserting the same rows from a Native file into the same table shape.
        let client = ClickHouseClient(hosts: [server.configuration()])
        let ceilingRepository = EventRepository(client: client, database: database + "_ceiling")
        try await ceilingRepository.schema.migrate(client)
        let rows = envelopes.enumerated().map { index, envelope -> EventRow in
            guard case let .create(fields, _) = envelope.operation else { fatalError() }
            return EventRow(id: envelope.eventID, fields: fields, receivedAtMilliseconds: now, version: UInt64(index))
        }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("drain-\(runID).native")
        var blocks: [Block] = []
        for start in stride(from: 0, to: rows.count, by: 100_000) { blocks.append(EventRow.block(Array(rows[start..<min(rows.count, start + 100_000)]))) }
        try Data(try NativeFormat.encodeBlocks(blocks)).write(to: file)
        blocks.removeAll()
        let serverPID = Self.pid(matching: "clickhouse-server")
        let brokerPID = Self.pid(matching: "tansu broker")
        let serverBefore = Self.cpuSeconds(serverPID)
        let ceiling = try Measurement.child(server.clientArguments + ["--query", "INSERT INTO \(ceilingRepository.schema.table) (\(EventSchema.columns)) FORMAT Native"], input: file)
        let ceilingServerCPU = Self.cpuSeconds(serverPID) - serverBefore
        try? FileManager.default.removeItem(at: file)
        let ceilingRate = Double(messages) / ceiling.wallSeconds

        // The consumer under test, as its own process.
        let repository = EventRepository(client: client, database: database)
        try await repository.schema.migrate(client)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: consumerPath)
        var environment = ProcessInfo.processInfo.environment
        environment["KAFKA_BROKERS"] = brokers
        environment["KAFKA_TOPIC"] = topic
        environment["KAFKA_GROUP_ID"] = "drain-\(runID)"
        environment["CLICKHOUSE_HOST"] = server.host
        environment["CLICKHOUSE_PORT"] = String(server.port)
        environment["CLICKHOUSE_USER"] = server.user
        environment["CLICKHOUSE_PASSWORD"] = server.password
        environment["CLICKHOUSE_DATABASE"] = database
        environment["CONSUMER_BATCH_SIZE"] = String(batchSize)
        environment["CONSUMER_METRICS_PORT"] = String(Int.random(in: 20_000...29_999))
        environment["LOG_LEVEL"] = "warning"
        process.environment = environment
        let brokerBefore = Self.cpuSeconds(brokerPID)
        let serverBefore2 = Self.cpuSeconds(serverPID)
        let started = ContinuousClock.now
        try process.run()
        var firstRow: ContinuousClock.Instant?
        var rowsAtFirstSight = 0
        var count = 0
        let deadline = ContinuousClock.now + .seconds(timeout)
        var consumerCPU = 0.0
        var peakRSS = 0.0
        while count < messages && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            consumerCPU = Self.cpuSeconds(process.processIdentifier)
            peakRSS = max(peakRSS, Self.peakResidentMegabytes(process.processIdentifier))
            count = try await Self.count(repository)
            if count > 0 && firstRow == nil {
                firstRow = .now
                rowsAtFirstSight = count  // written before this poll, at no time charged: left out of the rate
            }
        }
        let finished = ContinuousClock.now
        let brokerCPU = Self.cpuSeconds(brokerPID) - brokerBefore
        let serverCPU = Self.cpuSeconds(serverPID) - serverBefore2
        process.terminate()
        process.waitUntilExit()
        // count() on the ReplacingMergeTree counts a redelivered row twice until a merge: the
        // polls stop on it, but the run passes only if the distinct events are exactly those sent.
        let distinct = try await Self.distinctEvents(repository)
        try await client.execute("DROP DATABASE IF EXISTS \(database)")
        try await client.execute("DROP DATABASE IF EXISTS \(database)_ceiling")
        await client.shutdown()
        // The local broker keeps topics in memory and slows down as it holds more: a million
        // messages left behind would make the next run measure a different broker.
        try? Self.shell([root.appendingPathComponent(".venv/bin/python").path, root.appendingPathComponent("scripts/kafka_admin.py").path,
                         "delete-topics", brokers, topic, topic + ".dlq"])

        let total = Measurement.seconds(finished - started)
        let drain = Measurement.seconds(finished - (firstRow ?? started))
        let rate = Double(count) / total
        print("""

            | | rows/s | wall s | CPU s: client or consumer | broker | server |
            |---|---|---|---|---|---|
            | clickhouse-client < Native file (ceiling) | \(Int(ceilingRate)) | \(fmt3(ceiling.wallSeconds)) | \(fmt3(ceiling.cpuSeconds)) | — | \(fmt3(ceilingServerCPU)) |
            | event-consumer from Kafka (incl. ~3 s group join) | \(Int(rate)) | \(fmt3(total)) | \(fmt3(consumerCPU)) | \(fmt3(brokerCPU)) | \(fmt3(serverCPU)) |

            consumer: \(Int(Double(count - rowsAtFirstSight) / max(drain, 0.001))) rows/s from the first poll that saw rows to the last (\(fmt3(drain)) s), \
            \(String(format: "%.0f%%", 100 * rate / ceilingRate)) of the ceiling overall; peak RSS \(String(format: "%.0f", peakRSS)) MB
            """)
        guard count >= messages else { throw ValidationFailure("only \(count) of \(messages) rows arrived within \(timeout) s") }
        guard distinct == messages else { throw ValidationFailure("\(distinct) distinct events stored, \(messages) sent") }
    }

    static func shell(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ValidationFailure("\(arguments.joined(separator: " ")) failed") }
    }

    static func distinctEvents(_ repository: EventRepository) async throws -> Int {
        try firstCount(try await repository.client.collect("SELECT uniqExact(event_id) AS n FROM \(repository.schema.table)"), "n")
    }

    static func count(_ repository: EventRepository) async throws -> Int {
        try firstCount(try await repository.client.collect("SELECT count() AS n FROM \(repository.schema.table)"), "n")
    }

    /// The pid of the first process whose command line contains `pattern`, or 0.
    static func pid(matching pattern: String) -> Int32 {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for entry in entries {
            guard let pid = Int32(entry), let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { continue }
            let command = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            if command.contains(pattern) && !command.contains("event-bench") { return pid }
        }
        return 0
    }

    /// User + system CPU seconds of a process so far; NaN (printed "nan") when there is no such
    /// process, so a missing figure never reads as 0.
    static func cpuSeconds(_ pid: Int32) -> Double { pid > 0 ? ProcessCPU.seconds(pid: pid) ?? .nan : .nan }

    static func peakResidentMegabytes(_ pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
        return kilobytes / 1024
    }
}
