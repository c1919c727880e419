import ClickHouseNative
import EventPipeline
import Foundation
import Kafka
import Logging
import ServiceLifecycle

/// event-consumer: Kafka topic `events` → ClickHouse, configured by environment variables
/// (see README's configuration table). SIGTERM/SIGINT: stop fetching, write and commit what is
/// in hand, exit 0.
let (configuration, logger) = PipelineProcess.start("event-consumer")
logger.info("starting", metadata: [
    "librdkafka": "\(KafkaLibrary.version)", "brokers": "\(configuration.kafkaBrokers)", "topic": "\(configuration.kafkaTopic)",
    "group": "\(configuration.kafkaGroupID)", "clickhouse": "\(configuration.clickHouseHost):\(configuration.clickHousePort)",
    "database": "\(configuration.clickHouseDatabase)", "batch_size": "\(configuration.consumerBatchSize)",
    "flush_interval_ms": "\(configuration.consumerFlushIntervalMilliseconds)",
])

let client = ClickHouseClient(hosts: [configuration.clickHouse], logger: Logger(label: "clickhouse"))
let metrics = ConsumerMetrics()
let consumer = EventConsumer(options: .init(configuration), kafka: configuration.kafka,
                             repository: EventRepository(client: client, database: configuration.clickHouseDatabase),
                             metrics: metrics, logger: logger)
let group = ServiceGroup(
    configuration: .init(
        services: [
            .init(service: consumer, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup),
            // A metrics server that fails (its port taken) stops the consumer the graceful way: the
            // batch in hand is written and committed, and the process exits 1 with the error.
            .init(service: makeMetricsServer(registry: metrics.registry, port: configuration.consumerMetricsPort),
                  failureTerminationBehavior: .gracefullyShutdownGroup),
        ],
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger))
do {
    try await PipelineProcess.run(group)
    await client.shutdown()
    logger.info("stopped")
} catch {
    logger.critical("stopped with an error", metadata: ["error": "\(error)"])
    await client.shutdown()
    exit(1)
}
