import ClickHouseNative
import Foundation
import Kafka

/// Configuration of the pipeline's processes, read from environment variables.
///
/// Every variable has a default that works with `scripts/services` on one machine. Invalid values are
/// rejected at start with a message naming the variable, rather than falling back silently.
public struct PipelineConfiguration: Sendable, Equatable {
    public var apiPort: Int
    public var clickHouseHost: String
    public var clickHousePort: Int
    public var clickHouseDatabase: String
    public var clickHouseUser: String
    public var clickHousePassword: String
    public var kafkaBrokers: String
    public var kafkaTopic: String
    public var kafkaGroupID: String
    public var consumerBatchSize: Int
    /// The most messages one batch takes when they are already waiting (a backlog): the consumer
    /// then writes fewer, larger INSERTs instead of falling further behind.
    public var consumerMaximumBatchSize: Int
    public var consumerFlushIntervalMilliseconds: Int
    public var consumerMetricsPort: Int
    /// Memory for the latest rows of recent events, so updates need no ClickHouse lookup (bytes).
    public var consumerCacheBytes: Int
    /// The most bytes of stored rows a batch grown behind a backlog reads and rewrites.
    public var consumerMaximumBatchRowBytes: Int
    public var kafkaDeadLetterTopic: String
    /// Extra librdkafka properties from `KAFKA_PROPERTY_<name>` variables.
    public var kafkaProperties: [String: String]
    /// Largest accepted body of a single-event request; the Kafka message limit is set above it.
    public var apiMaxBodyBytes: Int
    /// Bearer tokens accepted by the API; empty: no authentication.
    public var apiKeys: [String]
    public var apiIdleTimeoutMilliseconds: Int
    /// How long a ClickHouse connection may stay silent during a request before it is given up.
    /// A running SELECT sends Progress every 100 ms (`interactive_delay`); an INSERT the server is
    /// still writing sends nothing, so this must exceed the slowest INSERT as well.
    public var clickHouseReadTimeoutMilliseconds: Int
    /// How log lines are written on stderr (`LOG_FORMAT`).
    public var logFormat: LogFormat

    public init(environment: [String: String]) throws(ConfigurationError) {
        let reader = EnvironmentReader(environment)
        let format = try reader.string("LOG_FORMAT", default: LogFormat.text.rawValue)
        guard let logFormat = LogFormat(rawValue: format) else {
            throw ConfigurationError(variable: "LOG_FORMAT", message: "must be text or json, got '\(format)'")
        }
        self.logFormat = logFormat
        apiPort = try reader.integer("API_PORT", default: 8080, in: 1...65535)
        clickHouseHost = try reader.string("CLICKHOUSE_HOST", default: "localhost")
        clickHousePort = try reader.integer("CLICKHOUSE_PORT", default: 9000, in: 1...65535)
        clickHouseDatabase = try reader.identifier("CLICKHOUSE_DATABASE", default: "event_analytics")
        clickHouseUser = try reader.string("CLICKHOUSE_USER", default: "default")
        clickHousePassword = reader.optionalString("CLICKHOUSE_PASSWORD") ?? ""
        clickHouseReadTimeoutMilliseconds = try reader.integer("CLICKHOUSE_READ_TIMEOUT_MS", default: 30_000, in: 1000...3_600_000)
        kafkaBrokers = try reader.string("KAFKA_BROKERS", default: "localhost:9092")
        kafkaTopic = try reader.string("KAFKA_TOPIC", default: "events")
        kafkaGroupID = try reader.string("KAFKA_GROUP_ID", default: "event-consumer-group")
        consumerBatchSize = try reader.integer("CONSUMER_BATCH_SIZE", default: 500, in: 1...1_000_000)
        consumerMaximumBatchSize = try reader.integer("CONSUMER_MAX_BATCH_SIZE", default: min(1_000_000, 20 * consumerBatchSize),
                                                      in: consumerBatchSize...1_000_000)
        consumerFlushIntervalMilliseconds = try reader.integer("CONSUMER_FLUSH_INTERVAL_MS", default: 200, in: 1...3_600_000)
        consumerMetricsPort = try reader.integer("CONSUMER_METRICS_PORT", default: 9464, in: 1...65535)
        consumerCacheBytes = try reader.integer("CONSUMER_CACHE_MB", default: 256, in: 0...65_536) << 20
        consumerMaximumBatchRowBytes = try reader.integer("CONSUMER_MAX_BATCH_ROWS_MB", default: 256, in: 1...65_536) << 20
        kafkaDeadLetterTopic = try reader.string("KAFKA_DLQ_TOPIC", default: kafkaTopic + ".dlq")
        let properties = KafkaConfiguration.properties(fromEnvironment: environment)
        kafkaProperties = properties
        // The consumer commits an offset only after its rows are in ClickHouse. With both of these
        // on, librdkafka would store every polled message's offset and commit it on its own, so a
        // crash would lose messages only polled. (Either alone changes nothing here.)
        let isOn = { (name: String) -> Bool in
            guard let value = properties[name] else { return false }
            return !["false", "f", "0"].contains(value.lowercased())  // librdkafka's spellings of false
        }
        if isOn("enable.auto.commit") && isOn("enable.auto.offset.store") {
            throw ConfigurationError(variable: "KAFKA_PROPERTY_enable.auto.commit",
                                     message: "must be false while enable.auto.offset.store is true (the consumer commits offsets itself, after the rows are stored)")
        }
        apiMaxBodyBytes = try reader.integer("API_MAX_BODY_BYTES", default: 1 << 20, in: 1024...(1 << 20))
        apiIdleTimeoutMilliseconds = try reader.integer("API_IDLE_TIMEOUT_MS", default: 60_000, in: 1000...3_600_000)
        // Line breaks trimmed too (a key read from a file); a value that lists no key is refused,
        // not taken as "authentication off", which only unset or empty means.
        let keysText = environment["API_KEYS"] ?? ""
        apiKeys = keysText.split(separator: ",").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
        if apiKeys.isEmpty, !keysText.isEmpty {
            throw ConfigurationError(variable: "API_KEYS", message: "lists no key; leave it unset or empty to turn authentication off")
        }
    }

    /// librdkafka properties: the brokers, a message size limit above the API's body limit
    /// (envelope overhead included) and whatever `KAFKA_PROPERTY_*` adds or overrides.
    public var kafka: KafkaConfiguration {
        var properties = ["message.max.bytes": String(Self.kafkaMessageMaxBytes)]
        properties.merge(kafkaProperties) { $1 }
        return KafkaConfiguration(brokers: kafkaBrokers, properties)
    }

    /// 2 MiB: an envelope is never longer than the request body plus a few hundred bytes (re-encoding
    /// a string never takes more bytes than its escaped form in the request), so 1 MiB bodies fit.
    public static let kafkaMessageMaxBytes = 2 << 20

    public var clickHouse: ClickHouseConfiguration {
        var configuration = ClickHouseConfiguration(host: clickHouseHost, port: clickHousePort, database: "", user: clickHouseUser,
                                                    password: clickHousePassword, compression: .lz4)
        configuration.readTimeout = .milliseconds(clickHouseReadTimeoutMilliseconds)
        return configuration
    }
}

/// A configuration variable with a value that cannot be used.
public struct ConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    public var variable: String
    public var message: String

    public var description: String { "\(variable): \(message)" }
}

struct EnvironmentReader {
    let environment: [String: String]

    init(_ environment: [String: String]) { self.environment = environment }

    func optionalString(_ name: String) -> String? { environment[name] }

    func string(_ name: String, default value: String) throws(ConfigurationError) -> String {
        guard let raw = environment[name] else { return value }
        guard !raw.isEmpty else { throw ConfigurationError(variable: name, message: "must not be empty") }
        return raw
    }

    func integer(_ name: String, default value: Int, in range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        guard let raw = environment[name] else { return value }
        guard let parsed = Int(raw), range.contains(parsed) else {
            throw ConfigurationError(
                variable: name,
                message: "must be an integer from \(range.lowerBound) to \(range.upperBound), got '\(raw)'")
        }
        return parsed
    }

    /// A database or table name that is safe to use unquoted in SQL.
    func identifier(_ name: String, default value: String) throws(ConfigurationError) -> String {
        let result = try string(name, default: value)
        let valid = result.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F
        } && !(result.utf8.first.map { $0 >= 0x30 && $0 <= 0x39 } ?? true)
        guard valid else {
            throw ConfigurationError(
                variable: name, message: "must be letters, digits and underscores, not starting with a digit, got '\(result)'")
        }
        return result
    }
}
