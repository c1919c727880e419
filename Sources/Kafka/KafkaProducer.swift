import CRdKafka
import Foundation
import Logging

/// Where the broker stored an acknowledged message.
public struct KafkaDeliveryReport: Sendable, Equatable {
    public var partition: Int32
    public var offset: Int64
}

/// An idempotent producer (`enable.idempotence=true`, `acks=all`, LZ4) whose `send` returns once the
/// broker acknowledged the message.
///
/// librdkafka serves delivery reports from `rd_kafka_poll`, which a dedicated thread calls; each
/// pending `send` holds a retained box that the report resumes. While every broker is down, `send`
/// fails at once rather than queueing messages that would only time out later.
public final class KafkaProducer: @unchecked Sendable {
    /// Defaults applied unless the configuration names the property itself.
    public static let defaultProperties: [String: String] = [
        "enable.idempotence": "true",
        "acks": "all",
        "compression.codec": "lz4",
        // Every `send` waits for its batch's acknowledgement, so the batching delay is latency and,
        // at a fixed number of concurrent requests, throughput: 2 ms instead of librdkafka's 5
        // (`event-bench pipeline`: single-event inserts 12 400 -> 19 000-23 000/s here).
        "linger.ms": "2",
        // A message not acknowledged within this time fails, so an API request never waits long.
        "message.timeout.ms": "10000",
        "queue.buffering.max.messages": "100000",
        // Errors reach the error callback (logged through swift-log, throttled); librdkafka's own
        // stderr lines would repeat each of them every reconnect attempt.
        "log_level": "2",
    ]

    private let handle: OpaquePointer
    let state: ProducerState  // internal for tests
    private let logger: Logger
    private let topicsLock = NSLock()
    private var topicHandles: [String: OpaquePointer] = [:]
    private let pollThread: Thread
    private var closed = false

    public init(configuration: KafkaConfiguration, logger: Logger = Logger(label: "kafka.producer")) throws {
        try KafkaLibrary.requireSupported()
        var merged = configuration
        for (key, value) in Self.defaultProperties where merged[key] == nil { merged[key] = value }
        let conf = try merged.makeNativeConfiguration()
        let state = ProducerState(logger: logger, brokers: merged["bootstrap.servers"] ?? "")
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(state).toOpaque())
        rd_kafka_conf_set_dr_msg_cb(conf, producerDeliveryCallback)
        rd_kafka_conf_set_error_cb(conf, producerErrorCallback)
        var errorText = [CChar](repeating: 0, count: 512)
        guard let handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errorText, errorText.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(code: -1, message: "cannot create Kafka producer: \(cString(errorText))")
        }
        self.handle = handle
        self.state = state
        self.logger = logger
        // The thread holds only the handle and the state, never self, so deinit can still run.
        let pollable = UncheckedHandle(handle)
        pollThread = Thread { [state] in
            while !state.isStopping {
                rd_kafka_poll(pollable.pointer, 100)
                state.probeBrokersIfDown(pollable.pointer)
            }
        }
        pollThread.name = "kafka-producer-poll"
        pollThread.start()
        logger.info("Kafka producer started", metadata: ["librdkafka": "\(KafkaLibrary.version)",
                                                          "brokers": "\(merged["bootstrap.servers"] ?? "")"])
    }

    deinit {
        close(timeoutMilliseconds: 0)
    }

    /// Why sends fail at once right now (every broker down, fatal producer error), or nil.
    public var unavailableReason: String? { state.unavailableReason }

    /// librdkafka's fatal error (an idempotent producer that lost its message sequence), or nil.
    /// Once set, every send fails for the life of this producer: librdkafka's advice is to flush
    /// and end the process, so that a new producer takes over.
    public var fatalError: String? { state.fatal }

    /// Raises a fatal error as librdkafka would (its own test hook), for tests.
    func simulateFatalError(_ reason: String) {
        rd_kafka_test_fatal_error(handle, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, reason)
    }

    /// Sends `value` with `key` (messages with equal keys keep their order in one partition) and
    /// returns when the broker acknowledged it. Fails at once when the local queue is full or no
    /// broker is reachable, and after `message.timeout.ms` when the broker never acknowledges.
    public func send(topic: String, key: [UInt8], value: [UInt8]) async throws -> KafkaDeliveryReport {
        try await withCheckedThrowingContinuation { continuation in
            send(topic: topic, key: key, value: value) { continuation.resume(with: $0.mapError { $0 }) }
        }
    }

    /// `send` for callers outside Swift concurrency (the API's write path inside NIO's channel
    /// pipeline): `completion` runs once, on librdkafka's delivery thread, or at once on this thread
    /// when the message is refused before it is queued. It must not block.
    public func send(topic: String, key: [UInt8], value: [UInt8],
                     completion: @escaping @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void) {
        if let reason = state.unavailableReason {
            return completion(.failure(.unavailable(reason)))
        }
        let topicHandle: OpaquePointer
        do { topicHandle = try beginEnqueue(topic) } catch {
            return completion(.failure(error as? KafkaError ?? KafkaError(code: -1, message: "\(error)")))
        }
        enqueue(topicHandle, topic, key: key, value: value, reportingTo: DeliveryCallback(completion))
        endEnqueue()
    }

    /// Sends several messages and returns when each was acknowledged or failed, one result per
    /// message in the given order. One suspension for the whole set instead of one per message:
    /// `POST /events/batch` sends 100 at a time.
    public func sendAll(topic: String, messages: [(key: [UInt8], value: [UInt8])]) async -> [Result<KafkaDeliveryReport, KafkaError>] {
        if messages.isEmpty { return [] }
        if let reason = state.unavailableReason {
            let error = KafkaError.unavailable(reason)
            return Array(repeating: .failure(error), count: messages.count)
        }
        let topicHandle: OpaquePointer
        do { topicHandle = try beginEnqueue(topic) } catch {
            let failure = error as? KafkaError ?? KafkaError(code: -1, message: "\(error)")
            return Array(repeating: .failure(failure), count: messages.count)
        }
        return await withCheckedContinuation { continuation in
            let batch = BatchDelivery(count: messages.count, continuation: continuation)
            for (index, message) in messages.enumerated() {
                enqueue(topicHandle, topic, key: message.key, value: message.value, reportingTo: BatchSlot(batch, index))
            }
            endEnqueue()
        }
    }

    /// Hands one message to librdkafka with `target` as its opaque; the delivery callback reports to
    /// it, or this does at once when librdkafka refuses the message (full queue, ...).
    private func enqueue(_ topicHandle: OpaquePointer, _ topic: String, key: [UInt8], value: [UInt8], reportingTo target: DeliveryTarget) {
        let opaque = Unmanaged.passRetained(target).toOpaque()
        let result = value.withUnsafeBytes { payload in
            key.withUnsafeBytes { keyBytes in
                // RD_KAFKA_MSG_F_COPY (0x2): librdkafka copies the bytes, so ours can go at once.
                rd_kafka_produce(topicHandle, -1, 0x2, UnsafeMutableRawPointer(mutating: payload.baseAddress), payload.count,
                                 keyBytes.baseAddress, keyBytes.count, opaque)
            }
        }
        if result != 0 {
            let error = rd_kafka_last_error()
            Unmanaged<DeliveryTarget>.fromOpaque(opaque).release()
            target.deliver(.failure(KafkaError(error, context: "cannot queue a message for \(topic)")))
        }
    }

    /// Waits until every queued message was delivered or failed; false on timeout.
    @discardableResult
    public func flush(timeoutMilliseconds: Int32) -> Bool {
        rd_kafka_flush(handle, timeoutMilliseconds) == RD_KAFKA_RESP_ERR_NO_ERROR
    }

    /// Messages queued locally or in flight.
    public var outstandingMessages: Int { Int(rd_kafka_outq_len(handle)) }

    /// Asks the brokers for metadata (readiness checks); throws when none answers in time.
    public func checkBrokers(timeoutMilliseconds: Int32 = 2000) throws {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let error = rd_kafka_metadata(handle, 0, nil, &metadata, timeoutMilliseconds)
        if let metadata { rd_kafka_metadata_destroy(metadata) }
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(error, context: "Kafka metadata request failed") }
        state.markAvailable()
    }

    /// Asks the brokers for the topic's metadata as a send would (a broker that creates topics on
    /// first use creates it now); throws when no broker answers in time, or when the topic does not
    /// exist (a broker that does not create topics, or a name mistyped): every send to it would
    /// wait out `message.timeout.ms` and fail.
    public func checkTopic(_ name: String, timeoutMilliseconds: Int32 = 2000) throws {
        let topic = try beginEnqueue(name)  // (`close` waits for the request to end)
        defer { endEnqueue() }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let error = rd_kafka_metadata(handle, 0, topic, &metadata, timeoutMilliseconds)
        defer { if let metadata { rd_kafka_metadata_destroy(metadata) } }
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else { throw KafkaError(error, context: "Kafka metadata request failed") }
        state.markAvailable()
        let topics = UnsafeBufferPointer(start: metadata.pointee.topics, count: Int(metadata.pointee.topic_cnt))
        // Listed with another error (just created, its leader not elected yet), it exists.
        if topics.contains(where: { String(cString: $0.topic) == name && $0.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART }) {
            throw KafkaError(code: Int32(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART.rawValue),
                             message: "topic \(name) does not exist, and the brokers do not create it on first use")
        }
    }

    /// Flushes what is queued (up to `timeoutMilliseconds`), then releases librdkafka's resources.
    /// Messages still undelivered then fail their `send` with a purge error.
    public func close(timeoutMilliseconds: Int32 = 10_000) {
        topicsLock.lock()
        guard !closed else {
            topicsLock.unlock()
            return
        }
        closed = true
        topicsLock.unlock()
        // A send that got its topic handle before `closed` was set finishes handing its messages
        // over first: they are then flushed or purged with the rest, and the handles it uses
        // stay alive until it is done.
        while topicsLock.withLock({ enqueuing }) > 0 { usleep(100) }
        if rd_kafka_flush(handle, timeoutMilliseconds) != RD_KAFKA_RESP_ERR_NO_ERROR {
            logger.warning("Kafka producer closing with undelivered messages", metadata: ["count": "\(outstandingMessages)"])
            rd_kafka_purge(handle, 0x1 | 0x2)  // RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT
            rd_kafka_poll(handle, 0)  // serve the purged messages' reports
        }
        state.stop()
        while !pollThread.isFinished { usleep(1000) }
        for (_, topic) in topicHandles { rd_kafka_topic_destroy(topic) }
        topicHandles.removeAll()
        rd_kafka_destroy(handle)
    }

    /// Sends under way between ``beginEnqueue(_:)`` and ``endEnqueue()`` (guarded by `topicsLock`).
    private var enqueuing = 0

    /// The topic's handle for a send about to hand messages to librdkafka; `close` waits for the
    /// matching ``endEnqueue()``.
    private func beginEnqueue(_ name: String) throws -> OpaquePointer {
        topicsLock.lock()
        defer { topicsLock.unlock() }
        guard !closed else { throw KafkaError(code: -1, message: "the Kafka producer is closed") }
        let handle = try topicHandleLocked(name)
        enqueuing += 1
        return handle
    }

    private func endEnqueue() {
        topicsLock.withLock { enqueuing -= 1 }
    }

    private func topicHandleLocked(_ name: String) throws -> OpaquePointer {
        if let existing = topicHandles[name] { return existing }
        guard let topic = rd_kafka_topic_new(handle, name, nil) else {
            throw KafkaError(rd_kafka_last_error(), context: "cannot open topic \(name)")
        }
        topicHandles[name] = topic
        return topic
    }
}

/// librdkafka handles are safe to use from any thread.
struct UncheckedHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
}

/// Who learns of a message's delivery: retained while librdkafka holds the message (its opaque).
class DeliveryTarget {
    func deliver(_ result: Result<KafkaDeliveryReport, KafkaError>) {}
}

/// The completion of one `send`.
final class DeliveryCallback: DeliveryTarget {
    let completion: @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void
    init(_ completion: @escaping @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void) { self.completion = completion }
    override func deliver(_ result: Result<KafkaDeliveryReport, KafkaError>) { completion(result) }
}

/// The results of one `sendAll`, resumed when the last message's report arrived.
final class BatchDelivery: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Result<KafkaDeliveryReport, KafkaError>?]
    private var remaining: Int
    private let continuation: CheckedContinuation<[Result<KafkaDeliveryReport, KafkaError>], Never>

    init(count: Int, continuation: CheckedContinuation<[Result<KafkaDeliveryReport, KafkaError>], Never>) {
        results = Array(repeating: nil, count: count)
        remaining = count
        self.continuation = continuation
    }

    func record(_ result: Result<KafkaDeliveryReport, KafkaError>, at index: Int) {
        lock.lock()
        results[index] = result
        remaining -= 1
        let done = remaining == 0
        lock.unlock()
        if done { continuation.resume(returning: results.map { $0! }) }
    }
}

/// One message of a `sendAll`.
final class BatchSlot: DeliveryTarget {
    let batch: BatchDelivery
    let index: Int
    init(_ batch: BatchDelivery, _ index: Int) { (self.batch, self.index) = (batch, index) }
    override func deliver(_ result: Result<KafkaDeliveryReport, KafkaError>) { batch.record(result, at: index) }
}

extension KafkaError {
    /// librdkafka's fatal error code with `message`.
    public static func fatal(_ message: String) -> KafkaError {
        KafkaError(code: RD_KAFKA_RESP_ERR__FATAL.rawValue, message: message)
    }

    /// A send refused because no broker is reachable (at the send, or purged from the queue once
    /// the outage was confirmed): "no broker answers", or a fatal error's text.
    public static func unavailable(_ reason: String) -> KafkaError {
        KafkaError(code: RD_KAFKA_RESP_ERR__TRANSPORT.rawValue, message: unavailablePrefix + reason)
    }

    /// Whether this is ``unavailable(_:)``'s error.
    public var isUnavailable: Bool { code == RD_KAFKA_RESP_ERR__TRANSPORT.rawValue && message.hasPrefix(Self.unavailablePrefix) }

    /// The message is over `message.max.bytes` (the producer's, found at the send) or the
    /// broker's or topic's limit: sending it again cannot help.
    public var isMessageTooLarge: Bool { code == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE.rawValue }

    private static let unavailablePrefix = "Kafka unavailable: "
}

/// Producer state shared with librdkafka's callbacks (through the configuration's opaque pointer).
final class ProducerState: @unchecked Sendable {
    private let lock = NSLock()
    /// The brokers are confirmed down (a metadata request failed after librdkafka said so).
    private var down = false
    /// librdkafka said every broker is down, not yet confirmed: sends still go (and queue).
    private var suspectReason: String?
    private var fatalReason: String?
    private var stopping = false
    private var lastProbe = ContinuousClock.now
    let logger: Logger
    let throttle = LogThrottle()

    /// `bootstrap.servers`, for the outage's log line.
    let brokers: String

    init(logger: Logger, brokers: String = "") {
        self.logger = logger
        self.brokers = brokers
    }

    var isStopping: Bool { lock.withLock { stopping } }
    func stop() { lock.withLock { stopping = true } }

    var unavailableReason: String? { lock.withLock { fatalReason ?? (down ? Self.downReason : nil) } }

    /// Not librdkafka's own text, which counts the brokers it lists at that moment: "0/2 brokers
    /// are down" while it lists the bootstrap entry twice reads as if none were. Nor the broker
    /// list: API clients see this reason; the log line names the brokers.
    static let downReason = "no broker answers"
    var fatal: String? { lock.withLock { fatalReason } }

    /// librdkafka's "all brokers are down" is checked before sends are refused: it also comes when
    /// one address of a broker refused the connection and the next has not been tried yet, as when
    /// `localhost` resolves to ::1 first and the broker listens on 127.0.0.1 only (Debian's
    /// /etc/hosts and the local broker; every write then answered 503 for a second after the API
    /// started). The poll thread asks for metadata at once and marks the brokers down only if that
    /// fails too; what was queued meanwhile is then purged, so it fails as promptly as a refused
    /// send, with the same reason, instead of after `message.timeout.ms`.
    func markSuspect(_ reason: String) {
        lock.withLock {
            guard !down else { return }
            suspectReason = reason
        }
    }

    /// Marks the brokers down; whether they were up before.
    private func changedToDown() -> Bool {
        lock.withLock { () -> Bool in
            defer { down = true }
            return !down
        }
    }

    func markAvailable() {
        let changed = lock.withLock { () -> Bool in
            defer { down = false; suspectReason = nil }
            return down
        }
        if changed { logger.info("Kafka brokers reachable again") }
    }

    func markFatal(_ reason: String) {
        lock.withLock { fatalReason = reason }
        logger.critical("fatal Kafka producer error", metadata: ["reason": "\(reason)"])
    }

    /// Confirms a suspected outage at once (``markSuspect(_:)``), and while the brokers are marked
    /// down asks for metadata once a second to notice their return.
    func probeBrokersIfDown(_ handle: OpaquePointer) {
        enum Probe { case confirm(suspectedBecause: String), recheckDown }
        let probe = lock.withLock { () -> Probe? in
            if let suspectReason, !down { return .confirm(suspectedBecause: suspectReason) }
            guard down, ContinuousClock.now - lastProbe > .seconds(1) else { return nil }
            lastProbe = ContinuousClock.now
            return .recheckDown
        }
        guard let probe else { return }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let answered = rd_kafka_metadata(handle, 0, nil, &metadata, 500) == RD_KAFKA_RESP_ERR_NO_ERROR
        if let metadata { rd_kafka_metadata_destroy(metadata) }
        if answered {
            markAvailable()
        } else if case let .confirm(suspectedBecause) = probe {
            lock.withLock { suspectReason = nil; lastProbe = ContinuousClock.now }
            if changedToDown() {
                logger.error("all Kafka brokers are down; sends fail until one answers",
                             metadata: ["brokers": "\(brokers)", "librdkafka": "\(suspectedBecause)"])
            }
            _ = rd_kafka_purge(handle, Int32(RD_KAFKA_PURGE_F_QUEUE))  // reported by the next poll
        }
    }
}

private func producerDeliveryCallback(_ handle: OpaquePointer?, _ message: UnsafePointer<rd_kafka_message_t>?,
                                      _ opaque: UnsafeMutableRawPointer?) {
    guard let message, let boxPointer = message.pointee._private else { return }
    let target = Unmanaged<DeliveryTarget>.fromOpaque(boxPointer).takeRetainedValue()
    let error = message.pointee.err
    if error == RD_KAFKA_RESP_ERR_NO_ERROR {
        if let opaque { Unmanaged<ProducerState>.fromOpaque(opaque).takeUnretainedValue().markAvailable() }
        target.deliver(.success(KafkaDeliveryReport(partition: message.pointee.partition, offset: message.pointee.offset)))
    } else if error == RD_KAFKA_RESP_ERR__PURGE_QUEUE, let opaque,
              rd_kafka_message_status(message) == RD_KAFKA_MSG_STATUS_NOT_PERSISTED,
              let reason = Unmanaged<ProducerState>.fromOpaque(opaque).takeUnretainedValue().unavailableReason {
        // Purged when a suspected outage was confirmed, never sent: the error a send refused at
        // once gets ("it cannot land"). One sent whose answer was lost (queued again for a retry,
        // possibly stored) gets the ordinary "not delivered" error below, which says it may land.
        target.deliver(.failure(.unavailable(reason)))
    } else {
        target.deliver(.failure(KafkaError(error, context: "message not delivered")))
    }
}

private func producerErrorCallback(_ handle: OpaquePointer?, _ code: Int32, _ reason: UnsafePointer<CChar>?,
                                   _ opaque: UnsafeMutableRawPointer?) {
    guard let opaque else { return }
    let state = Unmanaged<ProducerState>.fromOpaque(opaque).takeUnretainedValue()
    let text = reason.map { String(cString: $0) } ?? "unknown"
    if code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN.rawValue {
        state.markSuspect(text)
    } else if code == RD_KAFKA_RESP_ERR__FATAL.rawValue, let handle {
        var buffer = [CChar](repeating: 0, count: 512)
        let fatal = rd_kafka_fatal_error(handle, &buffer, buffer.count)
        state.markFatal("\(String(cString: rd_kafka_err2str(fatal))): \(cString(buffer))")
    } else if state.throttle.allows(text) {
        state.logger.warning("Kafka producer error", metadata: ["code": "\(code)", "reason": "\(text)"])
    }
}

func cString(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Lets a repeated message through once per interval (reconnect errors repeat many times a second).
final class LogThrottle: @unchecked Sendable {
    private let lock = NSLock()
    private var last: [String: ContinuousClock.Instant] = [:]
    private let interval: Duration

    init(interval: Duration = .seconds(10)) { self.interval = interval }

    func allows(_ message: String) -> Bool {
        lock.withLock {
            let now = ContinuousClock.now
            if let previous = last[message], now - previous < interval { return false }
            if last.count > 1000 { last.removeAll() }
            last[message] = now
            return true
        }
    }
}
