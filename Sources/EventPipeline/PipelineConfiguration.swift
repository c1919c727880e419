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
    public var consumerFlushIntervalMilliseconds: Int

    public init(environment: [String: String]) throws(ConfigurationError) {
        let reader = EnvironmentReader(environment)
        apiPort = try reader.integer("API_PORT", default: 8080, in: 1...65535)
        clickHouseHost = try reader.string("CLICKHOUSE_HOST", default: "localhost")
        clickHousePort = try reader.integer("CLICKHOUSE_PORT", default: 9000, in: 1...65535)
        clickHouseDatabase = try reader.identifier("CLICKHOUSE_DATABASE", default: "event_analytics")
        clickHouseUser = try reader.string("CLICKHOUSE_USER", default: "default")
        clickHousePassword = reader.optionalString("CLICKHOUSE_PASSWORD") ?? ""
        kafkaBrokers = try reader.string("KAFKA_BROKERS", default: "localhost:9092")
        kafkaTopic = try reader.string("KAFKA_TOPIC", default: "events")
        kafkaGroupID = try reader.string("KAFKA_GROUP_ID", default: "event-consumer-group")
        consumerBatchSize = try reader.integer("CONSUMER_BATCH_SIZE", default: 500, in: 1...1_000_000)
        consumerFlushIntervalMilliseconds = try reader.integer("CONSUMER_FLUSH_INTERVAL_MS", default: 200, in: 1...3_600_000)
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
