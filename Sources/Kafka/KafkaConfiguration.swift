import CRdKafka

/// librdkafka properties (`bootstrap.servers`, `session.timeout.ms`, ...), validated when applied.
public struct KafkaConfiguration: Sendable, Equatable {
    public var properties: [String: String]

    public init(_ properties: [String: String] = [:]) {
        self.properties = properties
    }

    public init(brokers: String, _ properties: [String: String] = [:]) {
        self.properties = properties
        self.properties["bootstrap.servers"] = brokers
    }

    public subscript(key: String) -> String? {
        get { properties[key] }
        set { properties[key] = newValue }
    }

    /// Properties given as environment variables `KAFKA_PROPERTY_<librdkafka name>`, for example
    /// `KAFKA_PROPERTY_session.timeout.ms=6000`.
    public static func properties(fromEnvironment environment: [String: String]) -> [String: String] {
        let prefix = "KAFKA_PROPERTY_"
        var result: [String: String] = [:]
        for (key, value) in environment where key.hasPrefix(prefix) && key.count > prefix.count {
            result[String(key.dropFirst(prefix.count))] = value
        }
        return result
    }

    /// A new `rd_kafka_conf_t` holding these properties; the caller owns it.
    func makeNativeConfiguration() throws -> OpaquePointer {
        let conf = rd_kafka_conf_new()!
        var errorText = [CChar](repeating: 0, count: 512)
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            let result = rd_kafka_conf_set(conf, key, value, &errorText, errorText.count)
            if result != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                let detail = String(decoding: errorText.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                // The name only: the value may be a secret (a password in a property librdkafka
                // does not know), and this message is logged.
                throw KafkaError(code: -1, message: "invalid Kafka property \(key): \(detail)")
            }
        }
        return conf
    }
}
