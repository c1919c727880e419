import Foundation
import Testing
@testable import Kafka

/// Talks to the real broker that `scripts/services start` runs (KAFKA_BROKERS, default localhost:9092).
@Suite struct KafkaBrokerTests {
    static let brokers = ProcessInfo.processInfo.environment["KAFKA_BROKERS"] ?? "localhost:9092"
    static let topic = ProcessInfo.processInfo.environment["KAFKA_TOPIC"] ?? "events"

    @Test func loadedLibrdkafkaIsRecentEnough() {
        // scripts/setup puts a librdkafka >= 2.2 on LD_LIBRARY_PATH when the system one is older.
        #expect(KafkaLibrary.isSupported, "librdkafka \(KafkaLibrary.version) is loaded")
    }

    @Test func metadataListsTheEventTopics() async throws {
        let metadata = try await onOwnThread { try KafkaClusterMetadata.fetch(configuration: KafkaConfiguration(brokers: Self.brokers)) }
        #expect(metadata.brokerCount >= 1)
        let events = try #require(metadata.topic(named: Self.topic))
        #expect(events.partitionCount >= 1)
        #expect(metadata.topic(named: Self.topic + ".dlq") != nil)
    }

    @Test func unreachableBrokerIsAnError() async {
        // Port 1 on loopback: nothing listens there.
        let configuration = KafkaConfiguration(brokers: "127.0.0.1:1", ["log_level": "0"])
        await #expect(throws: KafkaError(code: -195, message: "metadata request to 127.0.0.1:1 failed: Local: Broker transport failure")) {
            try await onOwnThread { try KafkaClusterMetadata.fetch(configuration: configuration, timeoutMilliseconds: 500) }
        }
    }

    /// The property's name, never its value: found in review, a property librdkafka refuses (the
    /// Java client's `sasl.jaas.config`, say) put its password into a critical log line.
    @Test func invalidPropertyNamesThePropertyButNotItsValue() async {
        let configuration = KafkaConfiguration(brokers: Self.brokers, ["sasl.jaas.config": "PlainLoginModule required password=\"s3cret\";"])
        await #expect(throws: KafkaError(code: -1, message: "invalid Kafka property sasl.jaas.config: Java JAAS configuration is not supported, see https://github.com/confluentinc/librdkafka/wiki/Using-SASL-with-librdkafka for more information.")) {
            try await onOwnThread { try KafkaClusterMetadata.fetch(configuration: configuration) }
        }
    }

    /// A subscription librdkafka refuses (a leading ^ makes the name a regular expression, and
    /// this one does not compile): a clean error, and the handle is freed once (the instance's
    /// deinit runs too when its init throws).
    @Test func refusedSubscriptionIsAnError() {
        let configuration = KafkaConfiguration(brokers: Self.brokers, ["log_level": "0"])
        #expect(throws: KafkaError(code: -186, message: "cannot subscribe to ^events(: Local: Invalid argument or configuration")) {
            _ = try KafkaConsumer(configuration: configuration, groupID: "refused-subscription", topics: ["^events("])
        }
    }

    @Test func propertiesFromEnvironment() {
        let properties = KafkaConfiguration.properties(fromEnvironment: [
            "KAFKA_PROPERTY_session.timeout.ms": "6000", "KAFKA_BROKERS": "x", "KAFKA_PROPERTY_": "ignored",
        ])
        #expect(properties == ["session.timeout.ms": "6000"])
    }
}
