import ClickHouseNative
import EventPipeline
import Foundation
import Hummingbird
import Kafka
import Logging
import ServiceLifecycle

/// event-api: the HTTP API (README's API reference, `GET /openapi.yaml`), configured by
/// environment variables. SIGTERM/SIGINT: stop accepting, finish in-flight requests, flush Kafka.
let (configuration, logger) = PipelineProcess.start("event-api")

let producer: KafkaProducer
do {
    producer = try KafkaProducer(configuration: configuration.kafka, logger: Logger(label: "kafka"))
} catch {
    // Through the logger, so that it is a JSON line under LOG_FORMAT=json like every other.
    logger.critical("cannot create the Kafka producer", metadata: ["error": "\(error)"])
    exit(2)
}
let client = ClickHouseClient(hosts: [configuration.clickHouse], logger: Logger(label: "clickhouse"))
let repository = EventRepository(client: client, database: configuration.clickHouseDatabase)
let api = EventAPI(sink: KafkaEventSink(producer: producer, topic: configuration.kafkaTopic), repository: repository,
                   metrics: APIMetrics(), options: .init(maximumBodyBytes: configuration.apiMaxBodyBytes, apiKeys: configuration.apiKeys,
                                 idleTimeout: .milliseconds(configuration.apiIdleTimeoutMilliseconds)),
                   openAPIDocument: PackageResources.openapi_yaml, logger: logger)
let app = Application(responder: api, server: api.httpServer(serverName: "event-api"),
                      configuration: .init(address: .hostname("0.0.0.0", port: configuration.apiPort), serverName: "event-api"), logger: logger)

/// Runs until shutdown, then flushes the producer: the group stops services in reverse order, so
/// this runs after the HTTP server has finished its in-flight requests.
struct ProducerFlush: Service {
    let producer: KafkaProducer
    let client: ClickHouseClient
    func run() async throws {
        try? await gracefulShutdown()
        producer.close(timeoutMilliseconds: 10_000)
        await client.shutdown()
    }
}

/// Ends the process (through a graceful shutdown, then exit 1) once the producer hit a fatal error:
/// it can never send again, and a restarted process gets a new one. `/health` stays 200 until then.
struct ProducerWatch: Service {
    let producer: KafkaProducer
    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            if let reason = producer.fatalError { throw KafkaError.fatal("Kafka producer: \(reason)") }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }
}

/// Creates the schema when ClickHouse is reachable, so reads work before the consumer ever ran.
struct Migration: Service {
    let repository: EventRepository
    let logger: Logger
    func run() async throws {
        _ = await repository.schema.migrateWhenReachable(repository.client, logger: logger)
        // Then it stays until the group's shutdown reaches it: the group shuts its services down
        // one by one, the HTTP server first, and a service that ends meanwhile (ClickHouse coming
        // back while the last requests are answered) counts as an unexpected exit, which cancels
        // those requests and makes the process exit 1.
        try? await gracefulShutdown()
    }
}

logger.info("starting", metadata: [
    "port": "\(configuration.apiPort)", "librdkafka": "\(KafkaLibrary.version)", "brokers": "\(configuration.kafkaBrokers)",
    "clickhouse": "\(configuration.clickHouseHost):\(configuration.clickHousePort)", "auth": "\(configuration.apiKeys.isEmpty ? "off" : "on")",
])
let group = ServiceGroup(
    configuration: .init(
        services: [
            .init(service: ProducerFlush(producer: producer, client: client)),
            .init(service: Migration(repository: repository, logger: logger), successTerminationBehavior: .ignore),
            .init(service: ProducerWatch(producer: producer), successTerminationBehavior: .ignore,
                  failureTerminationBehavior: .gracefullyShutdownGroup),
            .init(service: app),
        ],
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger))
do {
    try await PipelineProcess.run(group)
} catch {
    logger.critical("stopped with an error", metadata: ["error": "\(error)"])
    exit(1)
}
