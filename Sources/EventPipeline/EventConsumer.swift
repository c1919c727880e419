import ClickHouseNative
import Foundation
import Kafka
import Logging
import ServiceLifecycle

/// Moves events from Kafka into ClickHouse: batches of up to `CONSUMER_BATCH_SIZE` messages (or
/// whatever arrived within `CONSUMER_FLUSH_INTERVAL_MS`), one INSERT per batch, offsets committed
/// only after the INSERT succeeded. At-least-once delivery; replays write identical rows or
/// nothing (see ``BatchPlanner``), so no duplicate is ever visible.
///
/// The loop runs on a thread of its own: librdkafka calls the rebalance handler inside `poll`,
/// and on revoke the batch in hand must be written and committed before the partitions go, which
/// means waiting there for ClickHouse.
public final class EventConsumer: Service, @unchecked Sendable {
    public struct Options: Sendable {
        public var batchSize: Int
        /// Batches grow to this many messages only from messages already waiting (see ``takeFromOverflow()``).
        public var maximumBatchSize: Int
        /// The most bytes of messages a batch takes from those already waiting, and the most
        /// polled ahead while an INSERT runs.
        public var maximumBatchBytes = 64 << 20
        /// The most bytes of rows (as ``RowCache/size(_:)`` counts them) a batch grown behind a
        /// backlog reads and writes: small updates of large stored events would otherwise bring
        /// whole rows by the thousand into one lookup and one INSERT.
        public var maximumBatchRowBytes = 256 << 20
        public var flushInterval: Duration
        public var cacheBytes: Int
        public var topic: String
        public var deadLetterTopic: String
        public var groupID: String
        /// Longest wait between two attempts of a failing INSERT.
        public var maximumBackoff: Duration = .seconds(5)
        /// How long a revoke or shutdown keeps trying to write the batch in hand; after that its
        /// offsets stay uncommitted and the next owner of the partitions consumes it again.
        public var finalFlushTimeout: Duration = .seconds(20)

        public init(_ configuration: PipelineConfiguration) {
            batchSize = configuration.consumerBatchSize
            maximumBatchSize = configuration.consumerMaximumBatchSize
            flushInterval = .milliseconds(configuration.consumerFlushIntervalMilliseconds)
            cacheBytes = configuration.consumerCacheBytes
            maximumBatchRowBytes = configuration.consumerMaximumBatchRowBytes
            topic = configuration.kafkaTopic
            deadLetterTopic = configuration.kafkaDeadLetterTopic
            groupID = configuration.kafkaGroupID
        }
    }

    let options: Options
    let kafkaConfiguration: KafkaConfiguration
    let repository: EventRepository
    let metrics: ConsumerMetrics
    let logger: Logger
    private let stopLock = NSLock()
    private var stopRequested = false

    // State of the loop thread (only touched there, including inside rebalance callbacks).
    private var consumer: KafkaConsumer?
    private var deadLetters: KafkaProducer?
    private var batch: [InHand] = []
    private var batchStarted: ContinuousClock.Instant?
    /// Messages polled while a batch was being written (ahead of the INSERT's end, or during its
    /// retries), in poll order; they start the next batch.
    private var overflow: [InHand] = []
    private var overflowBytes = 0
    /// A fatal consume error met while polling ahead; the loop throws it once the batch is written.
    private var pollFailure: Error?
    private var stopDeadline: ContinuousClock.Instant?
    private var cache: RowCache
    private var flushing = false
    private var revokedWhileFlushing = Set<TopicPartition>()
    /// The consumer's failed commits already added to `metrics.commitFailures`.
    private var commitFailuresCounted = 0

    public init(options: Options, kafka: KafkaConfiguration, repository: EventRepository, metrics: ConsumerMetrics, logger: Logger) {
        self.options = options
        self.kafkaConfiguration = kafka
        self.repository = repository
        self.metrics = metrics
        self.logger = logger
        self.cache = RowCache(capacityBytes: options.cacheBytes)
    }

    private var isStopping: Bool { stopLock.withLock { stopRequested } }

    /// A polled message with its envelope, decoded as it arrives: messages polled ahead are decoded
    /// while ClickHouse works on the INSERT of the batch before them.
    private struct InHand {
        var message: KafkaMessage
        var event: ConsumedEvent
        /// Counted in `messagesConsumed` already (a message put back from a cut batch).
        var counted = false

        init(_ message: KafkaMessage) {
            self.message = message
            event = ConsumedEvent(partition: message.partition, offset: message.offset,
                                  envelope: Result { () throws(EnvelopeError) -> EventEnvelope in try EventEnvelope.decode(message.value) })
        }
    }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            // Stopped before the schema was there: nothing is in hand, so the process just ends.
            guard await repository.schema.migrateWhenReachable(repository.client, logger: logger, maximumBackoff: options.maximumBackoff) else { return }
            // Cancellation (the service group cancels its services when one of them fails, such as
            // a metrics port already taken) stops the loop as a shutdown does: the loop's thread
            // does not see task cancellation, and the group would wait for it for ever.
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                    let thread = Thread { [self] in
                        do {
                            try loop()
                            continuation.resume()
                        } catch {
                            logger.critical("consumer loop failed", metadata: ["error": "\(error)"])
                            continuation.resume(throwing: error)
                        }
                    }
                    thread.name = "event-consumer"
                    thread.start()
                }
            } onCancel: { [self] in
                stopLock.withLock { stopRequested = true }
            }
        } onGracefulShutdown: { [self] in
            logger.info("shutting down: stop fetching, flush, commit")
            stopLock.withLock { stopRequested = true }
        }
    }

    /// Refuses to start when the broker answers and has no dead-letter topic (a typo in
    /// KAFKA_DLQ_TOPIC, a cluster without it): the first message the consumer cannot apply would
    /// otherwise hold every partition, its batch retried for ever. A broker that does not answer
    /// yet is no reason to stop; the consumer waits for it as it would anyway.
    private func requireDeadLetterTopic() throws {
        let metadata: KafkaClusterMetadata
        do {
            metadata = try KafkaClusterMetadata.fetch(configuration: kafkaConfiguration, timeoutMilliseconds: 10_000)
        } catch {
            logger.warning("cannot check the dead-letter topic yet", metadata: ["topic": "\(options.deadLetterTopic)", "error": "\(error)"])
            return
        }
        guard metadata.topic(named: options.deadLetterTopic) != nil else {
            throw KafkaError(code: -1, message: "the dead-letter topic \(options.deadLetterTopic) does not exist: create it or set KAFKA_DLQ_TOPIC"
                             + " (without it, the first message that cannot be applied would stop every partition)")
        }
    }

    // MARK: The loop (consumer thread)

    private func loop() throws {
        if isStopping { return }  // stopped as the schema was created: nothing to join a group for
        try requireDeadLetterTopic()
        let consumer = try KafkaConsumer(
            configuration: kafkaConfiguration, groupID: options.groupID, topics: [options.topic],
            rebalance: KafkaRebalanceHandler(
                // After the assignment changed (the cooperative protocol hands over only the added partitions).
                assigned: { [weak self] partitions in
                    self?.metrics.assignedPartitions.set(to: Double(self?.consumer?.assignment.count ?? partitions.count))
                },
                revoked: { [weak self] partitions in self?.partitionsRevoked(partitions) }),
            logger: logger)
        let deadLetters = try KafkaProducer(configuration: kafkaConfiguration, logger: logger)
        self.consumer = consumer
        self.deadLetters = deadLetters
        var lastLagUpdate = ContinuousClock.now
        while !isStopping {
            if !overflow.isEmpty {
                // Older than anything a poll would return now, so they go first.
                takeFromOverflow()
            } else if let message = try consumer.poll(timeoutMilliseconds: pollTimeout()) {
                take(message)
            }
            if batch.count >= options.batchSize {
                try takeWaitingMessages(consumer)
                flush(deadline: nil)
            } else if batchStarted.map({ .now - $0 >= options.flushInterval }) ?? false {
                flush(deadline: nil)
            }
            if let pollFailure { throw pollFailure }
            if ContinuousClock.now - lastLagUpdate > .seconds(1) {
                metrics.lag.set(to: Double(consumer.lag))
                let failures = consumer.commitFailures
                if failures > commitFailuresCounted {
                    metrics.commitFailures.increment(by: Int64(failures - commitFailuresCounted))
                    commitFailuresCounted = failures
                }
                lastLagUpdate = .now
            }
        }
        // Graceful shutdown: write and commit what is in hand (messages polled ahead included),
        // then leave the group. What misses the deadline stays uncommitted and comes again.
        let finalDeadline = shutdownDeadline()
        while true {
            takeFromOverflow()
            guard !batch.isEmpty else { break }
            flush(deadline: finalDeadline)
            if !batch.isEmpty { break }
        }
        consumer.close()
        deadLetters.close(timeoutMilliseconds: 10_000)
        self.consumer = nil
        self.deadLetters = nil
        logger.info("consumer stopped")
    }

    /// The end of the time the shutdown gives to writing what is in hand, fixed when the shutdown
    /// is first noticed (a retry under way, or the loop's end), so the two do not add up.
    private func shutdownDeadline() -> ContinuousClock.Instant {
        if let stopDeadline { return stopDeadline }
        let deadline = ContinuousClock.now + options.finalFlushTimeout
        stopDeadline = deadline
        return deadline
    }

    /// Moves the oldest messages polled ahead into the batch. They were waiting already, so a
    /// batch may take up to `maximumBatchSize` of them: behind a backlog the consumer writes fewer,
    /// larger INSERTs (ClickHouse pays per INSERT, and small ones pile up parts) instead of falling
    /// further behind; when it keeps up, batches stay at `batchSize` or the flush interval.
    private func takeFromOverflow() {
        let taken = min(overflow.count, max(0, options.maximumBatchSize - batch.count))
        guard taken > 0 else { return }
        if batch.isEmpty { batchStarted = .now }
        batch.append(contentsOf: overflow[..<taken])
        overflowBytes -= overflow[..<taken].reduce(0) { $0 + $1.message.value.count }
        metrics.messagesConsumed.increment(by: Int64(overflow[..<taken].count { !$0.counted }))
        overflow.removeFirst(taken)
    }

    /// A full batch also takes the messages librdkafka already holds (polls that do not wait), up
    /// to `maximumBatchSize`: behind a backlog the consumer writes fewer, larger INSERTs, which is
    /// what ClickHouse needs to keep up (it pays per INSERT, and its merges pay per small part).
    /// When the consumer keeps up, nothing is waiting and the batch goes as it is.
    private func takeWaitingMessages(_ consumer: KafkaConsumer) throws {
        var bytes = batch.reduce(0) { $0 + $1.message.value.count }
        while batch.count < options.maximumBatchSize, bytes < options.maximumBatchBytes, overflow.isEmpty,
              let message = try consumer.poll(timeoutMilliseconds: 0) {
            bytes += message.value.count
            take(message)
        }
    }

    /// A polled message joins the batch, unless messages wait in `overflow`: a revoke handled
    /// inside that poll may have written part of the batch and put the rest back there, and those
    /// are older than this one, so it goes behind them (in front, a batch would be planned before
    /// the updates and deletes it must follow).
    private func take(_ message: KafkaMessage) {
        guard overflow.isEmpty else {
            appendToOverflow(message)
            metrics.messagesConsumed.increment()
            overflow[overflow.count - 1].counted = true
            return
        }
        if batch.isEmpty { batchStarted = .now }
        batch.append(InHand(message))
        metrics.messagesConsumed.increment()
    }

    private func appendToOverflow(_ message: KafkaMessage) {
        overflow.append(InHand(message))
        overflowBytes += message.value.count
    }

    private func pollTimeout() -> Int32 {
        guard let started = batchStarted else { return 100 }
        let remaining = options.flushInterval - (.now - started)
        let milliseconds = remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000
        return Int32(max(0, min(100, milliseconds)))
    }

    /// Revoke: write and commit the batch in hand while the partitions are still ours.
    private func partitionsRevoked(_ partitions: [TopicPartition]) {
        // Called while they are still assigned; the cooperative protocol may revoke only some.
        let kept = Set(consumer?.assignment ?? []).subtracting(partitions)
        metrics.assignedPartitions.set(to: Double(kept.count))
        if flushing {
            // Called from a poll while the batch is being written (polling ahead of its INSERT, or
            // inside a retry): finish it, but do not commit the revoked partitions (their next
            // owner starts from the last commit and writes identical rows).
            revokedWhileFlushing.formUnion(partitions)
        } else if !isStopping {
            // (At shutdown the loop already made its final attempt before leaving the group.)
            flush(deadline: .now + options.finalFlushTimeout, polling: false)
        }
        let revoked = Set(partitions)
        batch.removeAll { revoked.contains($0.message.topicPartition) }
        overflow.removeAll { revoked.contains($0.message.topicPartition) }
        overflowBytes = overflow.reduce(0) { $0 + $1.message.value.count }
        if batch.isEmpty { batchStarted = nil }
        cache.forget(partitions: Set(partitions.map(\.partition)))
    }

    /// Writes the batch: plan, dead letters, one INSERT, commit. Retries failures with capped
    /// backoff (pausing the partitions) until it succeeds or `deadline` passes.
    private func flush(deadline initialDeadline: ContinuousClock.Instant?, polling: Bool = true) {
        guard !batch.isEmpty, let consumer else {
            batchStarted = nil
            return
        }
        flushing = true
        defer {
            flushing = false
            revokedWhileFlushing.removeAll()
        }
        var messages = batch  // (a copy-on-write reference: the batch may change during polls below)
        var events = batch.map(\.event)
        // Only batches grown behind a backlog can hold enough events for their rows to matter.
        var withinRowBudget = batch.count <= options.batchSize
        var deadline = initialDeadline
        // Everything paused by any attempt: a partition revoked during the retries and assigned
        // again keeps librdkafka's pause flag, so it must be resumed too or it never delivers again.
        var paused: Set<TopicPartition> = []
        func pauseAssigned() {
            let assigned = consumer.assignment
            paused.formUnion(assigned)
            consumer.pause(assigned)
        }
        var attempt = 0
        let started = ContinuousClock.now
        // Dead letters already in the topic: a retry plans the batch again (and finds the same
        // ones), but sends only those not yet acknowledged, so an outage of ClickHouse does not
        // write each of them once per attempt.
        var deadLettersSent: Set<MessagePosition> = []
        defer { consumer.resume(Array(paused)) }
        while true {
            if let deadline, ContinuousClock.now >= deadline {
                // (A shutdown's final flush after a retry that already used the time up.)
                logger.error("batch not written before the deadline; its offsets stay uncommitted", metadata: ["messages": "\(messages.count)"])
                return
            }
            do {
                if !withinRowBudget {
                    // Before anything of the batch is written, so the cut part is not half done.
                    try cutToRowBudget()
                    withinRowBudget = true
                    messages = batch
                    events = batch.map(\.event)
                }
                let plan = try planBatch(events)
                try sendDeadLetters(plan.deadLetters.filter { !deadLettersSent.contains(MessagePosition($0)) },
                                    messages: messages, sent: &deadLettersSent)
                let insertStarted = ContinuousClock.now
                // The loop's own batches poll ahead while the INSERT runs; a revoke or the shutdown
                // (a deadline) only finishes what is in hand.
                try blocking(pollingAhead: polling && deadline == nil && !isStopping) { [repository] in try await repository.insert(plan.rows) }
                metrics.insertDuration.record(ContinuousClock.now - insertStarted)
                metrics.rowsInserted.increment(by: Int64(plan.rows.count))
                metrics.batchSize.record(Double(messages.count))
                metrics.replays.increment(by: Int64(plan.replays))
                metrics.duplicateCreates.increment(by: Int64(plan.duplicateCreates))
                recordDelays(plan.appliedReceivedAtMilliseconds)
                for (row, partition) in zip(plan.rows, plan.rowPartitions) {
                    // Rows of partitions revoked meanwhile must not be cached: another consumer owns them now.
                    guard revokedWhileFlushing.isEmpty || !revokedWhileFlushing.contains(TopicPartition(topic: options.topic, partition: partition)) else { continue }
                    cache.store(row, partition: partition)
                }
                // The loop's own batches commit asynchronously: the rows are written, so a lost
                // commit only brings the messages again (and they change nothing). Before partitions
                // go (revoke, shutdown) the commit must have landed.
                commit(events, consumer: consumer, synchronously: deadline != nil)
                logger.debug("batch written", metadata: ["messages": "\(messages.count)", "rows": "\(plan.rows.count)",
                                                          "dead_letters": "\(plan.deadLetters.count)", "ms": "\(ContinuousClock.now - started)"])
                break
            } catch {
                if let reason = deadLetters?.fatalError {
                    // The dead-letter producer can never send again: end the loop (the batch stays
                    // uncommitted) so the process exits and a restarted one gets a new producer.
                    if pollFailure == nil {
                        pollFailure = KafkaError.fatal("dead-letter producer: \(reason)")
                    }
                    return
                }
                attempt += 1
                metrics.insertRetries.increment()
                let backoff = min(Duration.milliseconds(100) * (1 << min(attempt, 10)), options.maximumBackoff)
                if let deadline, ContinuousClock.now + backoff > deadline {
                    // Keep the batch: the caller drops only the messages of partitions it gives up
                    // (their next owner reads them again); those of partitions it keeps stay in hand,
                    // or a later commit of higher offsets would skip them.
                    logger.error("batch not written before the deadline; its offsets stay uncommitted",
                                 metadata: ["error": "\(error)", "messages": "\(messages.count)"])
                    return
                }
                if (error is ServerException || error is ClickHouseConnectionError || error is ClickHouseClientError) && !TransientErrors.contains(error) {
                    // Retried all the same (the batch is never dropped), but this one does not pass
                    // by itself: someone has to fix the table or the server.
                    logger.error("batch write refused by ClickHouse, and it will be until the table or the server is fixed; retrying",
                                 metadata: ["error": "\(error)", "attempt": "\(attempt)", "retry_in": "\(backoff)"])
                } else {
                    logger.warning("batch write failed; retrying", metadata: ["error": "\(error)", "attempt": "\(attempt)", "retry_in": "\(backoff)"])
                }
                // Pause whatever is assigned now (partitions can arrive during the retries).
                pauseAssigned()
                if polling {
                    // Keep polling so the group does not evict us; whatever still arrives waits.
                    // A message comes only from a partition assigned since the pause: pausing it
                    // too keeps what piles up here to a message or so per partition.
                    let waitUntil = ContinuousClock.now + backoff
                    while ContinuousClock.now < waitUntil {
                        do {
                            if let message = try consumer.poll(timeoutMilliseconds: 100) {
                                appendToOverflow(message)
                                pauseAssigned()
                            }
                        } catch {
                            // Thrown by the loop once this batch is written (as after a poll ahead).
                            if pollFailure == nil { pollFailure = error }
                        }
                    }
                } else {
                    Thread.sleep(forTimeInterval: Double(backoff.components.seconds) + Double(backoff.components.attoseconds) / 1e18)
                }
                if isStopping && deadline == nil {
                    // Shutdown while ClickHouse is down: the batch gets the final-flush time, no more.
                    deadline = shutdownDeadline()
                }
            }
        }
        batch.removeAll()
        batchStarted = nil
    }

    /// How long the writes the batch applied waited, from the API's acceptance (in each envelope)
    /// to now: the freshness a reader sees. Replays, ignored duplicates and dead letters changed
    /// nothing, and a redelivered message would count hours. Clocks of two hosts: a negative
    /// difference counts as 0. (Acceptance times lie in 1970-2105: the envelope decoder refuses
    /// others, so the difference cannot overflow.)
    private func recordDelays(_ acceptedAt: [Int64]) {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        for milliseconds in acceptedAt {
            metrics.eventDelay.record(Double(max(0, now - milliseconds)) / 1000)
        }
    }

    /// Cuts the batch before the message that would take its rows over `maximumBatchRowBytes`
    /// (sizes from the cache, else from a query of sizes alone); the rest goes back in front of
    /// the messages polled ahead, for the next batch.
    private func cutToRowBudget() throws {
        let events = batch.map(\.event)
        // Rows of new events come from their messages, which `maximumBatchBytes` bounds already;
        // only stored rows can be large beyond that (and a backlog of creates pays nothing here).
        let readsStoredRows = events.contains { message in
            guard case let .success(envelope) = message.envelope else { return false }
            if case let .create(_, supplied) = envelope.operation { return supplied }
            return true
        }
        guard readsStoredRows else { return }
        var sizes: [UUID: Int] = [:]
        var missing: [UUID] = []
        for id in BatchPlanner.idsToLookUp(events) {
            if let row = cache.row(id) { sizes[id] = RowCache.stringBytes(row.fields) } else { missing.append(id) }
        }
        if !missing.isEmpty {
            let lookup = missing
            sizes.merge(try blocking { [repository] in try await repository.storedRowSizes(lookup) }) { $1 }
        }
        let kept = BatchPlanner.prefixWithinRowBudget(events, storedStringBytes: sizes, budget: options.maximumBatchRowBytes)
        guard kept < batch.count else { return }
        var rest = Array(batch[kept...])
        for index in rest.indices { rest[index].counted = true }
        overflowBytes += rest.reduce(0) { $0 + $1.message.value.count }
        overflow.insert(contentsOf: rest, at: 0)
        batch.removeSubrange(kept...)
        metrics.batchesCut.increment()
        logger.info("batch cut: its rows would exceed the row budget", metadata: [
            "kept": "\(kept)", "put_back": "\(rest.count)", "budget_bytes": "\(options.maximumBatchRowBytes)"])
    }

    /// Looks up the stored rows the batch needs (cache first, then one query) and plans it.
    private func planBatch(_ events: [ConsumedEvent]) throws -> BatchPlan {
        let needed = BatchPlanner.idsToLookUp(events)
        var current: [UUID: EventRow] = [:]
        var missing: [UUID] = []
        for id in needed {
            if let row = cache.row(id) { current[id] = row } else { missing.append(id) }
        }
        if !missing.isEmpty {
            let lookup = missing
            let fetched = try blocking { [repository] in try await repository.currentRows(lookup) }
            metrics.lookups.increment(by: Int64(missing.count))
            current.merge(fetched) { $1 }
        }
        return BatchPlanner.plan(events, current: current)
    }

    /// A message's place in the topic (the loop consumes one topic).
    private struct MessagePosition: Hashable {
        var partition: Int32
        var offset: Int64
        init(partition: Int32, offset: Int64) { self.partition = partition; self.offset = offset }
        init(_ letter: DeadLetter) { self.init(partition: letter.partition, offset: letter.offset) }
    }

    /// Sends the dead letters and adds each one the broker acknowledged to `sent`, also when
    /// another of them failed (the error is thrown after all sends ended), so that the retry
    /// sends only the rest.
    private func sendDeadLetters(_ letters: [DeadLetter], messages: [InHand], sent: inout Set<MessagePosition>) throws {
        guard !letters.isEmpty, let deadLetters else { return }
        let topic = options.deadLetterTopic
        let sourceTopic = options.topic
        // Looked up by position, not searched for: a grown batch can hold thousands of each.
        var byPosition: [MessagePosition: Int] = [:]
        byPosition.reserveCapacity(messages.count)
        for (index, inHand) in messages.enumerated() { byPosition[MessagePosition(partition: inHand.event.partition, offset: inHand.event.offset)] = index }
        let payloads = letters.map { letter in
            let original = byPosition[MessagePosition(letter)].map { messages[$0].message }
            return letter.record(sourceTopic: sourceTopic, originalKey: original?.key, originalValue: original?.value)
        }
        let failures = try blocking {
            await withTaskGroup(of: (Int, (any Error)?).self) { group in
                for (index, payload) in payloads.enumerated() {
                    group.addTask {
                        do {
                            _ = try await deadLetters.send(topic: topic, key: payload.key, value: payload.value)
                            return (index, nil)
                        } catch {
                            return (index, error)
                        }
                    }
                }
                var failures: [Int: any Error] = [:]
                for await (index, error) in group { if let error { failures[index] = error } }
                return failures
            }
        }
        for (index, letter) in letters.enumerated() where failures[index] == nil {
            sent.insert(MessagePosition(letter))
            logger.warning("message sent to the dead-letter topic", metadata: [
                "partition": "\(letter.partition)", "offset": "\(letter.offset)", "reason": "\(letter.boundedReason)"])
        }
        metrics.deadLetters.increment(by: Int64(letters.count - failures.count))
        if let first = failures.min(by: { $0.key < $1.key }) { throw first.value }
    }

    private func commit(_ events: [ConsumedEvent], consumer: KafkaConsumer, synchronously: Bool) {
        // Per partition, the offset after its last message (hashing partition numbers, not
        // topic names, per message); the loop consumes one topic.
        var next: [Int32: Int64] = [:]
        for index in events.indices {
            let partition = events[index].partition
            next[partition] = max(next[partition] ?? 0, events[index].offset + 1)
        }
        var offsets: [TopicPartition: Int64] = [:]
        for (partition, offset) in next {
            let topicPartition = TopicPartition(topic: options.topic, partition: partition)
            if !revokedWhileFlushing.contains(topicPartition) { offsets[topicPartition] = offset }
        }
        do {
            try consumer.commit(offsets, synchronously: synchronously)
        } catch {
            // The rows are written; a failed commit only means these messages come again and change nothing.
            logger.warning("offset commit failed; the batch will be consumed again", metadata: ["error": "\(error)"])
        }
    }

    /// Runs async work from the consumer thread and waits for it. `pollingAhead`: meanwhile the
    /// thread polls (and decodes) up to a largest batch of the next messages into `overflow`, so the
    /// fetching and decoding of the next batch overlap ClickHouse's work on this one. Order and
    /// commits are unchanged: those messages are planned only after this INSERT succeeded, and a
    /// revoke during such a poll is handled as during a retry (``partitionsRevoked(_:)``).
    private func blocking<T: Sendable>(pollingAhead: Bool = false, _ operation: @escaping @Sendable () async throws -> T) throws -> T {
        let semaphore = DispatchSemaphore(value: 0)
        let box = ResultBox<T>()
        Task {
            do { box.result = .success(try await operation()) } catch { box.result = .failure(error) }
            semaphore.signal()
        }
        if pollingAhead, let consumer {
            while semaphore.wait(timeout: .now()) == .timedOut {
                guard overflow.count < options.maximumBatchSize, overflowBytes < options.maximumBatchBytes, pollFailure == nil else {
                    semaphore.wait()
                    break
                }
                do {
                    if let message = try consumer.poll(timeoutMilliseconds: 2) { appendToOverflow(message) }
                } catch {
                    pollFailure = error
                }
            }
        } else {
            semaphore.wait()
        }
        return try box.result!.get()
    }
}

private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, Error>?
}

/// The latest row of recently written events, per Kafka partition, so updates and deletes of
/// them need no ClickHouse lookup. Valid while this consumer owns the partition (no one else
/// writes those events then); entries of a revoked partition are dropped. Bounded in bytes
/// (`CONSUMER_CACHE_MB`) with two generations: when the newer one holds half the budget it becomes
/// the older one and the previous older one goes, so the most recent events always stay.
struct RowCache {
    typealias Entry = (row: EventRow, partition: Int32)
    let capacityBytes: Int
    private var newer: [UUID: Entry] = [:]
    private var older: [UUID: Entry] = [:]
    private var newerBytes = 0

    init(capacityBytes: Int) {
        self.capacityBytes = capacityBytes
        // Sized for a generation of event-sized rows up front, so the first one is not rehashed
        // ~18 times as it grows (the table's pages are touched only as it fills).
        newer.reserveCapacity(min(capacityBytes / 2 / 400, 1 << 22))
    }

    /// The fixed fields, string objects and dictionary overhead of a cached row (from the peak
    /// RSS of `event-bench drain` over 1M rows).
    static let overheadBytes = 300

    /// The bytes of a row's strings.
    static func stringBytes(_ fields: EventFields) -> Int {
        fields.conversationID.utf8.count + fields.eventName.utf8.count + fields.input.utf8.count + fields.output.utf8.count
    }

    /// Rough memory of a cached row: its strings plus the overhead.
    static func size(_ row: EventRow) -> Int { overheadBytes + stringBytes(row.fields) }

    func row(_ id: UUID) -> EventRow? { newer[id]?.row ?? older[id]?.row }

    mutating func store(_ row: EventRow, partition: Int32?) {
        guard capacityBytes > 0 else { return }
        let size = Self.size(row)
        guard let partition, size <= capacityBytes / 4 else {
            // Not kept (a huge row would flush everything else). An older copy of the event must not
            // stay either: the next update would be applied to it and undo this version.
            remove(row.id)
            return
        }
        if newerBytes + size > capacityBytes / 2 {
            older = newer
            newer = [:]
            newer.reserveCapacity(older.count)
            newerBytes = 0
        }
        // (A stale copy in `older` is harmless: lookups try `newer` first.)
        newer[row.id] = (row, partition)
        newerBytes += size
    }

    mutating func remove(_ id: UUID) {
        if let entry = newer.removeValue(forKey: id) { newerBytes -= Self.size(entry.row) }
        older.removeValue(forKey: id)
    }

    mutating func forget(partitions: Set<Int32>) {
        newer = newer.filter { !partitions.contains($0.value.partition) }
        older = older.filter { !partitions.contains($0.value.partition) }
        newerBytes = newer.values.reduce(0) { $0 + Self.size($1.row) }
    }
}

extension DeadLetter {
    /// Every dead letter must fit the broker's message limit, or its send fails and the batch is
    /// retried for ever with every partition paused. The reason can quote the message (an unknown
    /// `op`, an unknown field's name) and the key is the original's, both as long as a foreign
    /// writer made them: they are cut, like the original message.
    static let maximumReasonBytes = 4 << 10
    static let maximumKeyBytes = 1 << 10
    static let maximumMessageBytes = 64 << 10

    /// The reason, cut at a character boundary to ``maximumReasonBytes`` of UTF-8 (the cut says so).
    var boundedReason: String {
        let bytes = Array(reason.utf8)
        guard bytes.count > Self.maximumReasonBytes, let (kept, text) = Self.textPrefix(bytes, within: Self.maximumReasonBytes) else { return reason }
        return text + "… (\(bytes.count - kept) more bytes cut)"
    }

    /// The longest prefix of `bytes` within `limit` that is UTF-8 text, and its length: at most
    /// three bytes shorter than the limit (a character cut in two), nil when not text.
    static func textPrefix(_ bytes: [UInt8], within limit: Int) -> (count: Int, text: String)? {
        var count = min(limit, bytes.count)
        while true {
            if let text = String(validating: bytes[..<count], as: UTF8.self) { return (count, text) }
            guard count < bytes.count, limit - count < 3, count > 0 else { return nil }
            count -= 1
        }
    }

    /// The dead-letter topic's record: the original key (cut to ``maximumKeyBytes``) and a JSON
    /// object with the reason, where the message was, and the message itself (cut to
    /// ``maximumMessageBytes``; base64 when it is not UTF-8).
    func record(sourceTopic: String, originalKey: [UInt8]?, originalValue: [UInt8]?) -> (key: [UInt8], value: [UInt8]) {
        var json = JSONWriter()
        json.bytes.append(UInt8(ascii: "{"))
        json.key("reason", first: true)
        json.string(boundedReason)
        json.key("topic")
        json.string(sourceTopic)
        json.key("partition")
        json.integer(partition)
        json.key("offset")
        json.integer(offset)
        json.key("event_id")
        if let eventID { json.string(eventID.lowercasedString) } else { json.null() }
        let value = originalValue ?? []
        // A UTF-8 message cut inside a character stays text (without that character's first
        // bytes) rather than turning base64.
        let text = Self.textPrefix(value, within: Self.maximumMessageBytes)
        let kept = text?.count ?? min(value.count, Self.maximumMessageBytes)
        json.key("message_truncated")
        json.bool(kept < value.count)
        json.key("message")
        if let text {
            json.string(text.text)
        } else {
            json.string(Data(value.prefix(kept)).base64EncodedString())
            json.key("message_encoding")
            json.string("base64")
        }
        json.bytes.append(UInt8(ascii: "}"))
        return (Array((originalKey ?? []).prefix(Self.maximumKeyBytes)), json.bytes)
    }
}
