import ClickHouseNative
import Foundation
import Kafka
import Logging
import Synchronization
import Testing
@testable import EventPipeline

/// The consumer's start and stop against the real broker and server (started by scripts/test).
@Suite(.serialized) struct EventConsumerLifecycleTests {
    static func consumer(_ overrides: [String: String]) throws -> (EventConsumer, ConsumerMetrics, ClickHouseClient, String) {
        var environment = ProcessInfo.processInfo.environment
        let database = "consumer_lifecycle_\(UUID().uuidString.prefix(8).lowercased())"
        environment["CLICKHOUSE_DATABASE"] = database
        environment["KAFKA_GROUP_ID"] = "consumer-lifecycle-\(UUID().uuidString.prefix(8))"
        environment.merge(overrides) { $1 }
        let configuration = try PipelineConfiguration(environment: environment)
        let client = ClickHouseClient(hosts: [configuration.clickHouse])
        let metrics = ConsumerMetrics()
        let consumer = EventConsumer(options: .init(configuration), kafka: configuration.kafka,
                                     repository: EventRepository(client: client, database: database),
                                     metrics: metrics, logger: Logger(label: "consumer-lifecycle"))
        return (consumer, metrics, client, database)
    }

    static func dropAndShutDown(_ client: ClickHouseClient, _ database: String) async {
        try? await client.execute("DROP DATABASE IF EXISTS \(database)")
        await client.shutdown()
    }

    /// Found in review: the loop runs on a thread of its own, which saw only a graceful shutdown.
    /// When the service group cancelled it (another service failed, such as the metrics server on
    /// a port already taken), the group waited for it for ever and the process ignored SIGTERM.
    @Test func cancellingARunningConsumerStopsIt() async throws {
        let (consumer, metrics, client, database) = try Self.consumer([:])
        let running = Task { try await consumer.run() }
        // Running means polling with partitions assigned (the group join takes ~3 s on Tansu; the
        // schema migration before it took 39 s once while CPU-bound tests held the pool's threads).
        func assigned() -> Double {
            let text = String(decoding: metrics.registry.emitToBuffer(), as: UTF8.self)
            let line = text.split(separator: "\n").first { $0.hasPrefix("consumer_assigned_partitions ") }
            return line.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        }
        let deadline = ContinuousClock.now + .seconds(120)
        while assigned() == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(assigned() > 0)
        running.cancel()
        // Bounded: without the fix the wait never ends, and a time limit cannot end it either
        // (awaiting a task's value ignores cancellation).
        let stopped = Mutex(false)
        Task { _ = try? await running.value; stopped.withLock { $0 = true } }
        let stopDeadline = ContinuousClock.now + .seconds(30)
        while !stopped.withLock({ $0 }), ContinuousClock.now < stopDeadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(stopped.withLock { $0 }, "the consumer still runs 30 s after it was cancelled")
        // Exported from the start (KafkaTests makes a commit fail and checks the count it comes from).
        #expect(String(decoding: metrics.registry.emitToBuffer(), as: UTF8.self).contains("\nconsumer_commit_failures_total 0\n"))
        await Self.dropAndShutDown(client, database)
    }

    /// Found in review: without its dead-letter topic the consumer ran until the first message it
    /// could not apply, then retried that batch for ever with every partition paused.
    @Test func aMissingDeadLetterTopicStopsTheConsumerAtStart() async throws {
        let (consumer, _, client, database) = try Self.consumer(["KAFKA_DLQ_TOPIC": "no-such-dead-letter-topic"])
        await #expect(throws: KafkaError(code: -1, message: "the dead-letter topic no-such-dead-letter-topic does not exist: create it or set KAFKA_DLQ_TOPIC"
                                         + " (without it, the first message that cannot be applied would stop every partition)")) {
            try await consumer.run()
        }
        await Self.dropAndShutDown(client, database)
    }
}
