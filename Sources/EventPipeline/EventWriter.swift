import Foundation
import Kafka

/// Sends accepted writes to Kafka: one envelope per write, keyed by event id, returning once the
/// broker acknowledged it.
public protocol EventSink: Sendable {
    func send(_ envelope: EventEnvelope) async throws
    /// `send` for callers outside Swift concurrency: `completion` gets nil once the broker
    /// acknowledged the envelope, else its error; it runs once, on any thread, and must not block.
    func send(_ envelope: EventEnvelope, completion: @escaping @Sendable ((any Error)?) -> Void)
    /// Sends several envelopes at once: nil for each one the broker acknowledged, else its error.
    func sendAll(_ envelopes: [EventEnvelope]) async -> [(any Error)?]
    /// Why writes fail right now (no broker reachable, ...), or nil.
    var unavailableReason: String? { get }
    /// A round trip to the brokers that finds the topic, for readiness checks.
    func checkReachable() async throws
}

/// The Kafka implementation of ``EventSink``.
public final class KafkaEventSink: EventSink {
    public let producer: KafkaProducer
    public let topic: String
    /// Envelopes above this size are refused before they reach the broker (which would refuse them).
    public let maximumMessageBytes: Int

    public init(producer: KafkaProducer, topic: String, maximumMessageBytes: Int = PipelineConfiguration.kafkaMessageMaxBytes - 1024) {
        self.producer = producer
        self.topic = topic
        self.maximumMessageBytes = maximumMessageBytes
    }

    public func send(_ envelope: EventEnvelope) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            send(envelope) { error in continuation.resume(with: error.map { .failure($0) } ?? .success(())) }
        }
    }

    public func send(_ envelope: EventEnvelope, completion: @escaping @Sendable ((any Error)?) -> Void) {
        let value: [UInt8]
        do { value = try message(envelope) } catch { return completion(error) }
        producer.send(topic: topic, key: envelope.key, value: value) { result in
            if case let .failure(error) = result { completion(error) } else { completion(nil) }
        }
    }

    public func sendAll(_ envelopes: [EventEnvelope]) async -> [(any Error)?] {
        var errors = [(any Error)?](repeating: nil, count: envelopes.count)
        var messages: [(key: [UInt8], value: [UInt8])] = []
        var sent: [Int] = []
        messages.reserveCapacity(envelopes.count)
        sent.reserveCapacity(envelopes.count)
        for (index, envelope) in envelopes.enumerated() {
            do {
                messages.append((envelope.key, try message(envelope)))
                sent.append(index)
            } catch {
                errors[index] = error
            }
        }
        let results = await producer.sendAll(topic: topic, messages: messages)
        for (index, result) in zip(sent, results) {
            if case let .failure(error) = result { errors[index] = error }
        }
        return errors
    }

    /// The envelope as a Kafka message value, refused before the broker would refuse it.
    private func message(_ envelope: EventEnvelope) throws(EventTooLarge) -> [UInt8] {
        let value = envelope.encoded()
        guard value.count <= maximumMessageBytes else { throw EventTooLarge(bytes: value.count, limit: maximumMessageBytes) }
        return value
    }

    public var unavailableReason: String? { producer.unavailableReason }

    public func checkReachable() async throws {
        let (producer, topic) = (self.producer, self.topic)
        // rd_kafka_metadata blocks its thread; keep it off the cooperative pool.
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            DispatchQueue.global().async {
                do {
                    try producer.checkTopic(topic, timeoutMilliseconds: 2000)
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }
}

/// An event whose Kafka message would exceed the broker's size limit.
public struct EventTooLarge: Error, CustomStringConvertible {
    public var bytes: Int
    public var limit: Int
    public var description: String { "the event is \(bytes) bytes as a Kafka message, over the \(limit)-byte limit" }
}
