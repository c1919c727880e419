import Foundation

/// A consumed Kafka message as the planner sees it.
public struct ConsumedEvent: Sendable {
    public var partition: Int32
    public var offset: Int64
    public var envelope: Result<EventEnvelope, EnvelopeError>

    public init(partition: Int32, offset: Int64, envelope: Result<EventEnvelope, EnvelopeError>) {
        self.partition = partition
        self.offset = offset
        self.envelope = envelope
    }
}

/// A message the pipeline cannot apply, with the reason; it goes to the dead-letter topic.
public struct DeadLetter: Sendable, Equatable {
    public var partition: Int32
    public var offset: Int64
    public var eventID: UUID?
    public var reason: String
}

/// What one batch turns into: the rows to insert (the final state of each event it changed, one
/// row per event) and the messages for the dead-letter topic.
public struct BatchPlan: Sendable, Equatable {
    public var rows: [EventRow] = []
    /// The Kafka partition of each row's messages (parallel to `rows`).
    public var rowPartitions: [Int32] = []
    public var deadLetters: [DeadLetter] = []
    /// Messages already applied before (redelivery after a crash or rebalance): nothing to write.
    public var replays = 0
    /// Creates of an id that already exists (a client retrying with its own event_id): ignored.
    public var duplicateCreates = 0
    /// When the API accepted each message the plan applies (not replays, ignored duplicate creates
    /// or dead letters), for the consumer's freshness histogram.
    public var appliedReceivedAtMilliseconds: [Int64] = []
}

/// Applies a batch of messages onto the current rows of their events. Pure: the consumer fetches
/// the current rows (``idsToLookUp(_:)``), calls ``plan(_:current:)``, inserts and commits.
///
/// Versions are the messages' partition offsets: all messages of an event share a partition
/// (the event id is the key), so offsets order them as the API accepted them, whatever the
/// clocks of the API instances say. A message whose offset is not above the stored version was
/// applied already and is skipped, so redelivery after a crash changes nothing.
public enum BatchPlanner {
    /// How many messages, from the start of `batch`, keep the rows its plan reads and writes within
    /// `budget` bytes (at least one). Each event counts once, as ``RowCache/size(_:)`` counts a
    /// row: its overhead plus its strings, those of its create's fields when the batch creates it,
    /// else those of its stored row (`storedStringBytes`; an unknown event counts the overhead).
    public static func prefixWithinRowBudget(_ batch: [ConsumedEvent], storedStringBytes: [UUID: Int], budget: Int) -> Int {
        var counted = Set<UUID>()
        var total = 0
        for (index, message) in batch.enumerated() {
            guard case let .success(envelope) = message.envelope, counted.insert(envelope.eventID).inserted else { continue }
            let strings: Int
            switch envelope.operation {
            case let .create(fields, _): strings = RowCache.stringBytes(fields)
            case .update, .delete: strings = storedStringBytes[envelope.eventID] ?? 0
            }
            total += RowCache.overheadBytes + strings
            if total > budget { return max(1, index) }
        }
        return batch.count
    }

    /// Ids whose stored state the batch needs: every event touched by an update or delete before
    /// (or without) a create in this batch, and creates with client-chosen ids (they may exist).
    /// Creates with server-generated UUIDv7 ids are new by construction and need no lookup.
    public static func idsToLookUp(_ batch: [ConsumedEvent]) -> [UUID] {
        var createdInBatch = Set<UUID>(minimumCapacity: batch.count)  // (no rehashing as it grows)
        var needed = Set<UUID>()
        var ordered: [UUID] = []
        for message in batch {
            guard case let .success(envelope) = message.envelope else { continue }
            let id = envelope.eventID
            switch envelope.operation {
            case let .create(_, supplied):
                if supplied, !createdInBatch.contains(id), needed.insert(id).inserted { ordered.append(id) }
                createdInBatch.insert(id)
            case .update, .delete:
                if !createdInBatch.contains(id), needed.insert(id).inserted { ordered.append(id) }
            }
        }
        return ordered
    }

    public static func plan(_ batch: [ConsumedEvent], current: [UUID: EventRow]) -> BatchPlan {
        var plan = BatchPlan()
        plan.rows.reserveCapacity(batch.count)
        plan.rowPartitions.reserveCapacity(batch.count)
        // Where each event's row is in `plan.rows`: one hash lookup per message and one insert per
        // new event (the UUID hashing was a tenth of the consumer's CPU).
        var position = [UUID: Int](minimumCapacity: batch.count)
        for message in batch {
            let version = UInt64(max(0, message.offset))
            let envelope: EventEnvelope
            switch message.envelope {
            case let .failure(error):
                plan.deadLetters.append(DeadLetter(partition: message.partition, offset: message.offset, eventID: nil, reason: error.reason))
                continue
            case let .success(value):
                envelope = value
            }
            let id = envelope.eventID
            let slot = position[id]
            let existing = slot.map { plan.rows[$0] } ?? (current.isEmpty ? nil : current[id])
            func store(_ row: EventRow) {
                plan.appliedReceivedAtMilliseconds.append(envelope.receivedAtMilliseconds)
                if let slot {
                    plan.rows[slot] = row
                } else {
                    position[id] = plan.rows.count
                    plan.rows.append(row)
                    plan.rowPartitions.append(message.partition)
                }
            }
            if let existing, existing.version >= version {
                plan.replays += 1
                continue
            }
            func deadLetter(_ reason: String) {
                plan.deadLetters.append(DeadLetter(partition: message.partition, offset: message.offset, eventID: id, reason: reason))
            }
            switch envelope.operation {
            case let .create(fields, _):
                if existing != nil {
                    plan.duplicateCreates += 1
                    continue
                }
                store(EventRow(id: id, fields: fields, receivedAtMilliseconds: envelope.receivedAtMilliseconds, version: version))
            case let .update(patch):
                guard var row = existing else {
                    deadLetter("update of unknown event \(id.lowercasedString)")
                    continue
                }
                guard !row.isDeleted else {
                    deadLetter("update of deleted event \(id.lowercasedString)")
                    continue
                }
                row.fields = patch.applied(to: row.fields)
                row.version = version
                row.receivedAtMilliseconds = envelope.receivedAtMilliseconds
                store(row)
            case .delete:
                guard var row = existing else {
                    deadLetter("delete of unknown event \(id.lowercasedString)")
                    continue
                }
                guard !row.isDeleted else {
                    plan.replays += 1  // deleting twice changes nothing
                    continue
                }
                row.isDeleted = true
                row.version = version
                row.receivedAtMilliseconds = envelope.receivedAtMilliseconds
                store(row)
            }
        }
        return plan
    }
}
