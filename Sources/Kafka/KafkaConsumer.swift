import CRdKafka
import Foundation
import Logging
import Synchronization

/// A partition of a topic.
public struct TopicPartition: Hashable, Sendable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }
    public var description: String { "\(topic)[\(partition)]" }
}

/// A consumed message, copied out of librdkafka's buffers.
public struct KafkaMessage: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]
    public var topicPartition: TopicPartition { TopicPartition(topic: topic, partition: partition) }
}

/// What the application does when partitions come and go. Both run on the thread calling
/// ``KafkaConsumer/poll(timeoutMilliseconds:)``, inside librdkafka's rebalance callback: on
/// revoke, finish and commit the work of those partitions before returning, because afterwards
/// another consumer owns them.
public struct KafkaRebalanceHandler: Sendable {
    public var assigned: @Sendable ([TopicPartition]) -> Void
    public var revoked: @Sendable ([TopicPartition]) -> Void
    public init(assigned: @escaping @Sendable ([TopicPartition]) -> Void = { _ in },
                revoked: @escaping @Sendable ([TopicPartition]) -> Void = { _ in }) {
        self.assigned = assigned
        self.revoked = revoked
    }
}

/// A consumer-group member with manual offset commits. Not for use from several threads at once:
/// one loop polls, processes and commits (librdkafka's callbacks run inside `poll`).
public final class KafkaConsumer: @unchecked Sendable {
    public static let defaultProperties: [String: String] = [
        "enable.auto.commit": "false",
        "enable.auto.offset.store": "false",
        "auto.offset.reset": "earliest",
        // A new group member gets its partitions in seconds instead of ~23 s on Tansu.
        "session.timeout.ms": "6000",
        "heartbeat.interval.ms": "1000",
        // Pre-fetched messages held locally (librdkafka's default is 64 MiB): batches are small.
        "queued.max.messages.kbytes": "32768",
        // While messages wait locally, the next fetch of that partition waits 500 ms: a consumer
        // that keeps up fetches about twice a second instead of back to back. Each fetch costs
        // the local broker (Tansu, in-memory) time in proportion to the batches stored in the
        // partition; unthrottled, its fetches took 0.6-0.8 of a core in `event-bench pipeline`,
        // at 250 ms 19 s of CPU over a default run, at 500 ms 9 s. The delay is part of the time
        // until a write is visible (about 1 s at 500 ms; the target is 2 s). Fetches of up to
        // 16 MiB per partition keep a backlog draining at full speed.
        "queued.min.messages": "1",
        "fetch.queue.backoff.ms": "500",
        "max.partition.fetch.bytes": "16777216",
        "log_level": "2",  // errors come through the (throttled) error callback instead
    ]

    private let handle: OpaquePointer
    private let callbacks: ConsumerCallbacks
    private let logger: Logger
    private var closed = false

    public init(configuration: KafkaConfiguration, groupID: String, topics: [String],
                rebalance: KafkaRebalanceHandler = KafkaRebalanceHandler(),
                logger: Logger = Logger(label: "kafka.consumer")) throws {
        try KafkaLibrary.requireSupported()
        var merged = configuration
        merged["group.id"] = groupID
        for (key, value) in Self.defaultProperties where merged[key] == nil { merged[key] = value }
        let conf = try merged.makeNativeConfiguration()
        let callbacks = ConsumerCallbacks(handler: rebalance, logger: logger)
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(callbacks).toOpaque())
        rd_kafka_conf_set_rebalance_cb(conf, consumerRebalanceCallback)
        rd_kafka_conf_set_error_cb(conf, consumerErrorCallback)
        rd_kafka_conf_set_offset_commit_cb(conf, consumerCommitCallback)
        var errorText = [CChar](repeating: 0, count: 512)
        guard let handle = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &errorText, errorText.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(code: -1, message: "cannot create Kafka consumer: \(cString(errorText))")
        }
        self.handle = handle
        self.callbacks = callbacks
        self.logger = logger
        rd_kafka_poll_set_consumer(handle)
        let list = rd_kafka_topic_partition_list_new(Int32(topics.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for topic in topics { rd_kafka_topic_partition_list_add(list, topic, -1) }
        let error = rd_kafka_subscribe(handle, list)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
            // deinit still runs for an instance whose init throws once every property is set:
            // marked closed, it does not destroy the handle a second time.
            closed = true
            rd_kafka_destroy(handle)
            throw KafkaError(error, context: "cannot subscribe to \(topics.joined(separator: ", "))")
        }
        logger.info("Kafka consumer started", metadata: [
            "librdkafka": "\(KafkaLibrary.version)", "group": "\(groupID)", "topics": "\(topics.joined(separator: ","))",
            "brokers": "\(merged["bootstrap.servers"] ?? "")",
        ])
    }

    deinit { close() }

    /// The next message, or nil when none arrived within the timeout. Rebalance handlers run
    /// inside this call. Broker-side problems that librdkafka retries by itself are logged, not thrown.
    public func poll(timeoutMilliseconds: Int32) throws -> KafkaMessage? {
        guard let raw = rd_kafka_consumer_poll(handle, timeoutMilliseconds) else { return nil }
        defer { rd_kafka_message_destroy(raw) }
        let message = raw.pointee
        if message.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            if message.err == RD_KAFKA_RESP_ERR__PARTITION_EOF { return nil }
            let error = KafkaError(message.err, context: "consume failed")
            // Unknown topic/partition and authorization failures cannot heal by waiting.
            if [RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
                RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR__FATAL].contains(message.err) {
                throw error
            }
            logger.warning("Kafka consumer error", metadata: ["error": "\(error)"])
            return nil
        }
        let topic = String(cString: rd_kafka_topic_name(message.rkt))
        let value = message.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: message.len)) } ?? []
        let key = message.key.map { Array(UnsafeRawBufferPointer(start: $0, count: message.key_len)) }
        return KafkaMessage(topic: topic, partition: message.partition, offset: message.offset, key: key, value: value)
    }

    /// Commits that failed, as librdkafka reported them to its commit callback (for an
    /// asynchronous commit, during a later poll); each is also logged. A failed synchronous commit
    /// counts here too, besides throwing.
    public var commitFailures: Int { callbacks.commitFailures.withLock { $0 } }

    /// Commits `offsets` (for each partition, the offset of the next message to consume).
    /// Synchronously it throws when the broker refused (e.g. the partition was reassigned);
    /// asynchronously it returns at once and a failure only means those messages come again.
    public func commit(_ offsets: [TopicPartition: Int64], synchronously: Bool = true) throws {
        guard !offsets.isEmpty else { return }
        let list = makeList(offsets.keys.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for index in 0..<Int(list.pointee.cnt) {
            let element = list.pointee.elems[index]
            let key = TopicPartition(topic: String(cString: element.topic), partition: element.partition)
            list.pointee.elems[index].offset = offsets[key] ?? -1001
        }
        let error = rd_kafka_commit(handle, list, synchronously ? 0 : 1)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(error, context: "offset commit failed") }
    }

    /// The committed offsets of `partitions` (-1001 for none), asked of the group coordinator.
    public func committed(_ partitions: [TopicPartition], timeoutMilliseconds: Int32 = 5000) throws -> [TopicPartition: Int64] {
        let list = makeList(partitions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let error = rd_kafka_committed(handle, list, timeoutMilliseconds)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(error, context: "committed offsets request failed") }
        return entries(list)
    }

    /// Stops fetching from `partitions` (backpressure); `poll` must still be called to stay in the group.
    public func pause(_ partitions: [TopicPartition]) {
        guard !partitions.isEmpty else { return }
        let list = makeList(partitions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        rd_kafka_pause_partitions(handle, list)
    }

    public func resume(_ partitions: [TopicPartition]) {
        guard !partitions.isEmpty else { return }
        let list = makeList(partitions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        rd_kafka_resume_partitions(handle, list)
    }

    /// The partitions currently assigned to this member.
    public var assignment: [TopicPartition] {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(handle, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return [] }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        return Array(entries(list).keys)
    }

    /// Messages in the assigned partitions not yet consumed: the cached high watermark minus the
    /// consume position, summed (no broker round trip; the watermarks refresh with each fetch, so
    /// they stand still for a paused partition). A partition with no position yet (nothing
    /// consumed from it since it was assigned) counts 0: its start is the committed offset, which
    /// only the broker knows, not the start of the log.
    public var lag: Int64 {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(handle, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return 0 }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        rd_kafka_position(handle, list)
        var total: Int64 = 0
        for index in 0..<Int(list.pointee.cnt) {
            let element = list.pointee.elems[index]
            var low: Int64 = 0
            var high: Int64 = 0
            guard rd_kafka_get_watermark_offsets(handle, element.topic, element.partition, &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR,
                  high >= 0 else { continue }
            guard element.offset >= 0 else { continue }
            total += max(0, high - element.offset)
        }
        return total
    }

    /// Leaves the group (the revoke handler runs for the partitions held) and frees everything.
    public func close() {
        guard !closed else { return }
        closed = true
        let error = rd_kafka_consumer_close(handle)
        if error != RD_KAFKA_RESP_ERR_NO_ERROR {
            logger.warning("Kafka consumer close", metadata: ["error": "\(KafkaError(error, context: "close"))"])
        }
        rd_kafka_destroy(handle)
    }

    private func makeList(_ partitions: [TopicPartition]) -> UnsafeMutablePointer<rd_kafka_topic_partition_list_t> {
        let list = rd_kafka_topic_partition_list_new(Int32(max(1, partitions.count)))!
        for partition in partitions { rd_kafka_topic_partition_list_add(list, partition.topic, partition.partition) }
        return list
    }
}

func entries(_ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> [TopicPartition: Int64] {
    var result: [TopicPartition: Int64] = [:]
    for index in 0..<Int(list.pointee.cnt) {
        let element = list.pointee.elems[index]
        result[TopicPartition(topic: String(cString: element.topic), partition: element.partition)] = element.offset
    }
    return result
}

final class ConsumerCallbacks: @unchecked Sendable {
    let handler: KafkaRebalanceHandler
    let logger: Logger
    let throttle = LogThrottle()
    /// Failed commits, counted on librdkafka's callback thread.
    let commitFailures = Mutex(0)
    init(handler: KafkaRebalanceHandler, logger: Logger) {
        self.handler = handler
        self.logger = logger
    }
}

private func consumerRebalanceCallback(_ handle: OpaquePointer?, _ error: rd_kafka_resp_err_t,
                                       _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
                                       _ opaque: UnsafeMutableRawPointer?) {
    guard let handle, let opaque, let partitions else { return }
    let callbacks = Unmanaged<ConsumerCallbacks>.fromOpaque(opaque).takeUnretainedValue()
    let list = Array(entries(partitions).keys).sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
    let cooperative = rd_kafka_rebalance_protocol(handle).map { String(cString: $0) } == "COOPERATIVE"
    // The protocol in the log: under the cooperative one a revoke takes only the partitions that move.
    let protocolName: Logger.MetadataValue = cooperative ? "cooperative" : "eager"
    switch error {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
        callbacks.logger.info("partitions assigned", metadata: ["partitions": "\(list)", "protocol": protocolName])
        if cooperative {
            rd_kafka_error_destroy(rd_kafka_incremental_assign(handle, partitions))
        } else {
            rd_kafka_assign(handle, partitions)
        }
        callbacks.handler.assigned(list)
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
        // "Lost": the group went on without this member (its session expired), so another may
        // own them already; the commit in the handler then fails, and their next owner redoes it.
        callbacks.logger.info("partitions revoked", metadata: ["partitions": "\(list)", "protocol": protocolName,
                                                               "lost": rd_kafka_assignment_lost(handle) != 0 ? "true" : "false"])
        // Still the owner here: the handler flushes and commits before the partitions go.
        callbacks.handler.revoked(list)
        if cooperative {
            rd_kafka_error_destroy(rd_kafka_incremental_unassign(handle, partitions))
        } else {
            rd_kafka_assign(handle, nil)
        }
    default:
        callbacks.logger.error("rebalance failed", metadata: ["error": "\(KafkaError(error, context: "rebalance"))"])
        // The partitions held go as in a revoke, through the handler, so that what the application
        // keeps for them (a batch in hand, a row cache) goes too.
        var held: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        if rd_kafka_assignment(handle, &held) == RD_KAFKA_RESP_ERR_NO_ERROR, let held {
            let owned = Array(entries(held).keys)
            rd_kafka_topic_partition_list_destroy(held)
            if !owned.isEmpty { callbacks.handler.revoked(owned) }
        }
        rd_kafka_assign(handle, nil)
    }
}

/// The outcome of every commit, asynchronous ones included (served by the next poll): without it
/// a failed asynchronous commit went unnoticed.
private func consumerCommitCallback(_ handle: OpaquePointer?, _ error: rd_kafka_resp_err_t,
                                   _ offsets: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
                                   _ opaque: UnsafeMutableRawPointer?) {
    guard let opaque, error != RD_KAFKA_RESP_ERR__NO_OFFSET else { return }  // nothing was to be committed
    var failed: [String] = []
    if let offsets {
        for index in 0..<Int(offsets.pointee.cnt) {
            let entry = offsets.pointee.elems[index]
            if entry.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                failed.append("\(String(cString: entry.topic))[\(entry.partition)]: \(String(cString: rd_kafka_err2str(entry.err)))")
            }
        }
    }
    guard error != RD_KAFKA_RESP_ERR_NO_ERROR || !failed.isEmpty else { return }
    let callbacks = Unmanaged<ConsumerCallbacks>.fromOpaque(opaque).takeUnretainedValue()
    callbacks.commitFailures.withLock { $0 += 1 }
    let partitions = failed.joined(separator: "; ")
    let text = error != RD_KAFKA_RESP_ERR_NO_ERROR ? String(cString: rd_kafka_err2str(error)) : partitions
    guard callbacks.throttle.allows("commit: " + text) else { return }
    callbacks.logger.warning("Kafka offset commit failed; the messages will be consumed again, without effect",
                             metadata: ["error": "\(text)", "partitions": "\(partitions)"])
}

private func consumerErrorCallback(_ handle: OpaquePointer?, _ code: Int32, _ reason: UnsafePointer<CChar>?,
                                   _ opaque: UnsafeMutableRawPointer?) {
    guard let opaque else { return }
    let callbacks = Unmanaged<ConsumerCallbacks>.fromOpaque(opaque).takeUnretainedValue()
    let text = reason.map { String(cString: $0) } ?? "unknown"
    guard callbacks.throttle.allows(text) else { return }
    callbacks.logger.warning("Kafka consumer error", metadata: ["code": "\(code)", "reason": "\(text)"])
}
