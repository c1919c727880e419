import Foundation
import Kafka

/// Exercises every owner of a librdkafka pointer (producer, consumer, metadata, topic handles,
/// partition lists, messages, delivery boxes) a few times and exits, so LeakSanitizer can report
/// anything left behind: `scripts/leak-check`.
let brokers = ProcessInfo.processInfo.environment["KAFKA_BROKERS"] ?? "localhost:9092"
let topic = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "events"

for round in 0..<3 {
    let producer = try KafkaProducer(configuration: KafkaConfiguration(brokers: brokers))
    for index in 0..<200 {
        _ = try await producer.send(topic: topic, key: Array("key-\(index % 7)".utf8), value: Array("round \(round) message \(index)".utf8))
    }
    try producer.checkBrokers()
    producer.close()

    let consumer = try KafkaConsumer(configuration: KafkaConfiguration(brokers: brokers), groupID: "leak-check-\(UUID().uuidString.prefix(8))",
                                     topics: [topic], rebalance: KafkaRebalanceHandler(assigned: { _ in }, revoked: { _ in }))
    var received = 0
    let deadline = Date().addingTimeInterval(30)
    var offsets: [TopicPartition: Int64] = [:]
    while received < 200 && Date() < deadline {
        if let message = try consumer.poll(timeoutMilliseconds: 100) {
            received += 1
            offsets[message.topicPartition] = message.offset + 1
        }
    }
    try consumer.commit(offsets)
    _ = try consumer.committed(Array(offsets.keys))
    consumer.pause(consumer.assignment)
    consumer.resume(consumer.assignment)
    _ = consumer.lag
    consumer.close()

    _ = try KafkaClusterMetadata.fetch(configuration: KafkaConfiguration(brokers: brokers))
    // Failure paths: a bad property, and a broker that is not there.
    _ = try? KafkaProducer(configuration: KafkaConfiguration(brokers: brokers, ["no.such.property": "1"]))
    let unreachable = try KafkaProducer(configuration: KafkaConfiguration(brokers: "127.0.0.1:1", ["message.timeout.ms": "500"]))
    _ = try? await unreachable.send(topic: topic, key: [], value: [1])
    unreachable.close(timeoutMilliseconds: 0)
    print("round \(round): sent 200, received \(received)")
}
