import Foundation
import Testing
@testable import EventPipeline

@Suite struct BatchPlannerTests {
    static let a = UUID(high: 0x0192_F8A4_8F1E_7C3A, low: 0x9B2D_4E5F_6A7B_8C9D)
    static let b = UUID(high: 0x0192_F8A4_8F1E_7C3B, low: 0x8000_0000_0000_0002)
    static let c = UUID(high: 0x0192_F8A4_8F1E_7C3C, low: 0x8000_0000_0000_0003)
    static let d = UUID(high: 0x0192_F8A4_8F1E_7C3D, low: 0x8000_0000_0000_0004)

    static let fields = EventFields(conversationID: "conv-1", eventName: "llm_call", input: "in", output: "out", latency: 10,
                                    error: false, timestampMilliseconds: 1_795_773_600_000)

    static func message(_ offset: Int64, _ id: UUID, _ operation: EventOperation, partition: Int32 = 0,
                        receivedAt: Int64 = 1_795_773_600_000) -> ConsumedEvent {
        ConsumedEvent(partition: partition, offset: offset,
                      envelope: .success(EventEnvelope(eventID: id, operation: operation, receivedAtMilliseconds: receivedAt)))
    }

    static func row(_ id: UUID, version: UInt64, isDeleted: Bool = false, fields: EventFields = BatchPlannerTests.fields,
                    receivedAt: Int64 = 1_795_773_590_000) -> EventRow {
        EventRow(id: id, fields: fields, receivedAtMilliseconds: receivedAt, version: version, isDeleted: isDeleted)
    }

    static func create(_ supplied: Bool = false) -> EventOperation { .create(Self.fields, idSuppliedByClient: supplied) }

    // MARK: plan

    @Test func createThenTwoUpdatesMakeOneRow() {
        let batch = [
            Self.message(10, Self.a, Self.create(), receivedAt: 1000),
            Self.message(11, Self.a, .update(EventPatch(latency: 25.5)), receivedAt: 2000),
            Self.message(12, Self.a, .update(EventPatch(output: "final", error: true)), receivedAt: 3000),
        ]
        let plan = BatchPlanner.plan(batch, current: [:])
        var merged = Self.fields
        merged.latency = 25.5
        merged.output = "final"
        merged.error = true
        #expect(plan == BatchPlan(rows: [EventRow(id: Self.a, fields: merged, receivedAtMilliseconds: 3000, version: 12)], rowPartitions: [0],
                                  deadLetters: [], replays: 0, duplicateCreates: 0, appliedReceivedAtMilliseconds: [1000, 2000, 3000]))
    }

    @Test func createAloneKeepsItsFieldsAndOffset() {
        let plan = BatchPlanner.plan([Self.message(0, Self.a, Self.create(true), receivedAt: 77)], current: [:])
        #expect(plan.rows == [EventRow(id: Self.a, fields: Self.fields, receivedAtMilliseconds: 77, version: 0)])
        #expect(plan.deadLetters.isEmpty)
    }

    @Test func updateMergesOntoTheStoredRow() {
        let stored = Self.row(Self.a, version: 5)
        let plan = BatchPlanner.plan([Self.message(6, Self.a, .update(EventPatch(eventName: "renamed", input: "")), receivedAt: 9000)],
                                     current: [Self.a: stored])
        var merged = Self.fields
        merged.eventName = "renamed"
        merged.input = ""
        #expect(plan == BatchPlan(rows: [EventRow(id: Self.a, fields: merged, receivedAtMilliseconds: 9000, version: 6)], rowPartitions: [0],
                                  appliedReceivedAtMilliseconds: [9000]))
        // Conversation and time are never touched by an update.
        #expect(plan.rows.first?.fields.conversationID == "conv-1")
        #expect(plan.rows.first?.fields.timestampMilliseconds == 1_795_773_600_000)
    }

    @Test func messagesNotAboveTheStoredVersionAreReplays() {
        let stored = Self.row(Self.a, version: 5)
        let batch = [
            Self.message(3, Self.a, .update(EventPatch(latency: 1))),
            Self.message(5, Self.a, .update(EventPatch(latency: 2))),
            Self.message(4, Self.a, .delete),
            Self.message(2, Self.a, Self.create()),
        ]
        let plan = BatchPlanner.plan(batch, current: [Self.a: stored])
        #expect(plan == BatchPlan(rows: [], deadLetters: [], replays: 4, duplicateCreates: 0))
    }

    @Test func replaysAndNewMessagesMix() {
        let stored = Self.row(Self.a, version: 5)
        let batch = [
            Self.message(5, Self.a, .update(EventPatch(latency: 2))),
            Self.message(6, Self.a, .update(EventPatch(latency: 3)), receivedAt: 6000),
        ]
        let plan = BatchPlanner.plan(batch, current: [Self.a: stored])
        var merged = Self.fields
        merged.latency = 3
        // The replay is not a write applied: only the new message counts for freshness.
        #expect(plan == BatchPlan(rows: [EventRow(id: Self.a, fields: merged, receivedAtMilliseconds: 6000, version: 6)], rowPartitions: [0], replays: 1,
                                  appliedReceivedAtMilliseconds: [6000]))
    }

    @Test func deleteThenUpdateGoesToTheDeadLetters() {
        let stored = Self.row(Self.a, version: 5)
        let batch = [
            Self.message(6, Self.a, .delete, partition: 2, receivedAt: 6000),
            Self.message(7, Self.a, .update(EventPatch(error: true)), partition: 2, receivedAt: 7000),
        ]
        let plan = BatchPlanner.plan(batch, current: [Self.a: stored])
        #expect(plan == BatchPlan(
            rows: [EventRow(id: Self.a, fields: Self.fields, receivedAtMilliseconds: 6000, version: 6, isDeleted: true)], rowPartitions: [2],
            deadLetters: [DeadLetter(partition: 2, offset: 7, eventID: Self.a,
                                     reason: "update of deleted event 0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d")],
            appliedReceivedAtMilliseconds: [6000]))
    }

    @Test func updateOfAStoredDeletedEventGoesToTheDeadLetters() {
        let stored = Self.row(Self.a, version: 5, isDeleted: true)
        let plan = BatchPlanner.plan([Self.message(6, Self.a, .update(EventPatch(latency: 1)))], current: [Self.a: stored])
        #expect(plan == BatchPlan(deadLetters: [DeadLetter(partition: 0, offset: 6, eventID: Self.a,
                                                           reason: "update of deleted event \(Self.a.lowercasedString)")]))
    }

    @Test func deletingADeletedEventIsAReplay() {
        let stored = Self.row(Self.a, version: 5, isDeleted: true)
        let plan = BatchPlanner.plan([Self.message(6, Self.a, .delete)], current: [Self.a: stored])
        #expect(plan == BatchPlan(replays: 1))
    }

    @Test func createDeleteUpdateInOneBatch() {
        let batch = [
            Self.message(1, Self.a, Self.create(), receivedAt: 1000),
            Self.message(2, Self.a, .delete, receivedAt: 2000),
            Self.message(3, Self.a, .update(EventPatch(latency: 1)), receivedAt: 3000),
            Self.message(4, Self.a, .delete, receivedAt: 4000),
        ]
        let plan = BatchPlanner.plan(batch, current: [:])
        #expect(plan == BatchPlan(
            rows: [EventRow(id: Self.a, fields: Self.fields, receivedAtMilliseconds: 2000, version: 2, isDeleted: true)], rowPartitions: [0],
            deadLetters: [DeadLetter(partition: 0, offset: 3, eventID: Self.a, reason: "update of deleted event \(Self.a.lowercasedString)")],
            replays: 1, appliedReceivedAtMilliseconds: [1000, 2000]))
    }

    @Test func updateAndDeleteOfUnknownEvents() {
        let batch = [
            Self.message(20, Self.b, .update(EventPatch(latency: 1)), partition: 1),
            Self.message(21, Self.c, .delete, partition: 1),
        ]
        let plan = BatchPlanner.plan(batch, current: [:])
        #expect(plan == BatchPlan(deadLetters: [
            DeadLetter(partition: 1, offset: 20, eventID: Self.b, reason: "update of unknown event 0192f8a4-8f1e-7c3b-8000-000000000002"),
            DeadLetter(partition: 1, offset: 21, eventID: Self.c, reason: "delete of unknown event 0192f8a4-8f1e-7c3c-8000-000000000003"),
        ]))
    }

    @Test func undecodableMessagesGoToTheDeadLettersWithTheirReason() {
        let decoded = Result { () throws(EnvelopeError) -> EventEnvelope in try EventEnvelope.decode(Array("{".utf8)) }
        let batch = [
            ConsumedEvent(partition: 3, offset: 42, envelope: decoded),
            ConsumedEvent(partition: 3, offset: 43, envelope: .failure(EnvelopeError("unknown op upsert"))),
            Self.message(44, Self.a, Self.create(), partition: 3),
        ]
        let plan = BatchPlanner.plan(batch, current: [:])
        #expect(plan.deadLetters == [
            DeadLetter(partition: 3, offset: 42, eventID: nil, reason: "not JSON: expected a string key at byte 1"),
            DeadLetter(partition: 3, offset: 43, eventID: nil, reason: "unknown op upsert"),
        ])
        #expect(plan.rows.map(\.id) == [Self.a])
        #expect(plan.replays == 0)
        #expect(BatchPlanner.idsToLookUp(batch) == [])
    }

    @Test func duplicateCreateOfAStoredEventIsIgnored() {
        let stored = Self.row(Self.a, version: 5)
        var other = Self.fields
        other.eventName = "retried"
        let plan = BatchPlanner.plan([Self.message(8, Self.a, .create(other, idSuppliedByClient: true))], current: [Self.a: stored])
        #expect(plan == BatchPlan(rows: [], deadLetters: [], replays: 0, duplicateCreates: 1))
    }

    @Test func duplicateCreateInOneBatchKeepsTheFirst() {
        var other = Self.fields
        other.eventName = "retried"
        let batch = [
            Self.message(1, Self.a, Self.create(true), receivedAt: 1000),
            Self.message(2, Self.a, .create(other, idSuppliedByClient: true), receivedAt: 2000),
        ]
        let plan = BatchPlanner.plan(batch, current: [:])
        #expect(plan == BatchPlan(rows: [EventRow(id: Self.a, fields: Self.fields, receivedAtMilliseconds: 1000, version: 1)], rowPartitions: [0],
                                  duplicateCreates: 1, appliedReceivedAtMilliseconds: [1000]))
    }

    @Test func rowsComeInTheOrderEventsWereFirstChanged() {
        let batch = [
            Self.message(1, Self.b, Self.create(), partition: 1),
            Self.message(2, Self.a, Self.create()),
            Self.message(3, Self.b, .update(EventPatch(latency: 4)), partition: 1),
            Self.message(4, Self.c, .update(EventPatch(latency: 5)), partition: 2),
        ]
        let plan = BatchPlanner.plan(batch, current: [Self.c: Self.row(Self.c, version: 0)])
        #expect(plan.rows.map(\.id) == [Self.b, Self.a, Self.c])
        #expect(plan.rowPartitions == [1, 0, 2])
        #expect(plan.rows.map(\.version) == [3, 2, 4])
        #expect(plan.rows.map(\.fields.latency) == [4, 10, 5])
    }

    @Test func negativeOffsetsBecomeVersionZero() {
        let plan = BatchPlanner.plan([Self.message(-1, Self.a, Self.create())], current: [:])
        #expect(plan.rows.map(\.version) == [0])
    }

    @Test func replayingABatchOverItsOwnRowsChangesNothing() throws {
        let batch = [
            Self.message(1, Self.a, Self.create()),
            Self.message(2, Self.a, .update(EventPatch(output: "o2"))),
            Self.message(3, Self.b, Self.create(true)),
            Self.message(4, Self.b, .update(EventPatch(error: true))),
            Self.message(5, Self.b, .delete),
            Self.message(6, Self.c, .update(EventPatch(eventName: "changed"))),
            Self.message(7, Self.d, Self.create()),
            Self.message(8, Self.d, .delete),
            Self.message(9, Self.a, .update(EventPatch(latency: 99))),
        ]
        let current = [Self.c: Self.row(Self.c, version: 0)]
        let first = BatchPlanner.plan(batch, current: current)
        #expect(first.deadLetters.isEmpty)
        #expect(first.replays == 0)
        #expect(first.rows.map(\.id) == [Self.a, Self.b, Self.c, Self.d])
        #expect(first.rows.map(\.version) == [9, 5, 6, 8])
        #expect(first.rows.map(\.isDeleted) == [false, true, false, true])

        var stored = current
        for row in first.rows { stored[row.id] = row }
        let second = BatchPlanner.plan(batch, current: stored)
        #expect(second == BatchPlan(rows: [], deadLetters: [], replays: batch.count, duplicateCreates: 0))

        // A redelivery with new messages behind the old ones applies only the new ones.
        let extended = batch + [Self.message(10, Self.a, .update(EventPatch(input: "new")), receivedAt: 10_000)]
        let third = BatchPlanner.plan(extended, current: stored)
        var expected = try #require(stored[Self.a])
        expected.fields.input = "new"
        expected.version = 10
        expected.receivedAtMilliseconds = 10_000
        #expect(third.rows == [expected])
        #expect(third.replays == batch.count)
    }

    // MARK: idsToLookUp

    @Test func serverGeneratedCreateThenUpdateNeedsNoLookUp() {
        let batch = [
            Self.message(1, Self.a, Self.create(false)),
            Self.message(2, Self.a, .update(EventPatch(latency: 1))),
            Self.message(3, Self.a, .delete),
        ]
        #expect(BatchPlanner.idsToLookUp(batch) == [])
    }

    @Test func updateOrDeleteAloneNeedsALookUp() {
        #expect(BatchPlanner.idsToLookUp([Self.message(1, Self.a, .update(EventPatch(latency: 1)))]) == [Self.a])
        #expect(BatchPlanner.idsToLookUp([Self.message(1, Self.a, .delete)]) == [Self.a])
    }

    @Test func clientSuppliedCreateNeedsALookUp() {
        #expect(BatchPlanner.idsToLookUp([Self.message(1, Self.a, Self.create(true))]) == [Self.a])
        #expect(BatchPlanner.idsToLookUp([Self.message(1, Self.a, Self.create(true)), Self.message(2, Self.a, .delete)]) == [Self.a])
    }

    @Test func updateBeforeACreateNeedsALookUp() {
        #expect(BatchPlanner.idsToLookUp([Self.message(1, Self.a, .update(EventPatch(latency: 1))), Self.message(2, Self.a, Self.create())])
            == [Self.a])
    }

    @Test func lookUpsKeepFirstSeenOrderWithoutDuplicates() {
        let batch = [
            Self.message(1, Self.c, .update(EventPatch(latency: 1))),
            Self.message(2, Self.a, .delete),
            Self.message(3, Self.d, Self.create(false)),
            Self.message(4, Self.c, .update(EventPatch(latency: 2))),
            Self.message(5, Self.b, Self.create(true)),
            Self.message(6, Self.a, .update(EventPatch(latency: 3))),
            Self.message(7, Self.d, .update(EventPatch(latency: 4))),
            Self.message(8, Self.b, .update(EventPatch(latency: 5))),
            ConsumedEvent(partition: 0, offset: 9, envelope: .failure(EnvelopeError("op missing"))),
        ]
        #expect(BatchPlanner.idsToLookUp(batch) == [Self.c, Self.a, Self.b])
    }
}

@Suite struct EventRowBlockTests {
    static let rows = [
        EventRow(id: UUID(high: 0x0192_F8A4_8F1E_7C3A, low: 0x9B2D_4E5F_6A7B_8C9D),
                 fields: EventFields(conversationID: "conv-1", eventName: "llm_call", input: "héllo \"q\"\n日本 😀", output: "",
                                     latency: 12.5, error: true, timestampMilliseconds: 1_795_773_600_123),
                 receivedAtMilliseconds: 1_795_773_601_000, version: 42),
        EventRow(id: UUID(high: .max, low: 0x8000_0000_0000_0001),
                 fields: EventFields(conversationID: "c", eventName: "e", input: "", output: "out", latency: 0, error: false,
                                     timestampMilliseconds: 0),
                 receivedAtMilliseconds: 0, version: .max, isDeleted: true),
        EventRow(id: UUID(high: 0, low: 0),
                 fields: EventFields(conversationID: "conv-2", eventName: "tool_call", input: "x", output: "y", latency: 0.001,
                                     error: true, timestampMilliseconds: 4_291_747_199_999),
                 receivedAtMilliseconds: 4_291_747_199_000, version: 0, isDeleted: false),
    ]

    @Test func blockThenRowsRoundTrips() throws {
        #expect(try EventRow.rows(EventRow.block(Self.rows)) == Self.rows)
        for row in Self.rows {
            #expect(try EventRow.rows(EventRow.block([row])) == [row])
        }
    }

    @Test func emptyBlock() throws {
        #expect(try EventRow.rows(EventRow.block([])) == [])
    }

    @Test func receivedAtIsStoredInWholeSeconds() throws {
        var row = Self.rows[0]
        row.receivedAtMilliseconds = 1_795_773_601_999
        let back = try EventRow.rows(EventRow.block([row]))
        #expect(back.map(\.receivedAtMilliseconds) == [1_795_773_601_000])
        // The event time keeps its milliseconds (timestamp_ms).
        #expect(back.map(\.fields.timestampMilliseconds) == [1_795_773_600_123])
    }
}

extension BatchPlannerTests {
    static func created(_ output: String) -> EventOperation {
        var fields = Self.fields
        fields.output = output
        return .create(fields, idSuppliedByClient: false)
    }

    /// 300 bytes per event plus its strings: "conv-1" + "llm_call" + "in" = 16, plus the output.
    @Test func rowBudgetCountsEachEventOnceAtItsRowSize() {
        let batch = [
            Self.message(1, Self.a, .update(EventPatch(error: true))),  // stored: 10 000 bytes of strings
            Self.message(2, Self.a, .update(EventPatch(latency: 1))),   // the same event: not again
            Self.message(3, Self.b, Self.created(String(repeating: "x", count: 684))),  // 300 + 700
            Self.message(4, Self.b, .delete),                          // created in the batch: not again
            Self.message(5, Self.c, .delete),                          // unknown: 300
            Self.message(6, Self.d, .update(EventPatch(error: false))),  // stored: 5 000
        ]
        let stored = [Self.a: 10_000, Self.d: 5_000]
        #expect(BatchPlanner.prefixWithinRowBudget(batch, storedStringBytes: stored, budget: 1_000_000) == 6)
        #expect(BatchPlanner.prefixWithinRowBudget(batch, storedStringBytes: stored, budget: 10_300 + 1_000 + 300 + 5_300) == 6)
        #expect(BatchPlanner.prefixWithinRowBudget(batch, storedStringBytes: stored, budget: 10_300 + 1_000 + 300 + 5_299) == 5)
        #expect(BatchPlanner.prefixWithinRowBudget(batch, storedStringBytes: stored, budget: 10_300 + 999) == 2)
        // The first message always goes, however large its row: a batch must make progress.
        #expect(BatchPlanner.prefixWithinRowBudget(batch, storedStringBytes: stored, budget: 100) == 1)
    }
}

/// The dead-letter topic's records (`EventConsumer`'s sends build them with `DeadLetter.record`).
@Suite struct DeadLetterRecordTests {
    static func object(_ value: [UInt8]) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(value)) as? [String: Any])
    }

    @Test func aLetterCarriesItsReasonPositionAndOriginal() throws {
        let letter = DeadLetter(partition: 1, offset: 42, eventID: BatchPlannerTests.a, reason: "update of deleted event x")
        let record = letter.record(sourceTopic: "events", originalKey: Array("k".utf8), originalValue: Array(#"{"v":1}"#.utf8))
        #expect(record.key == Array("k".utf8))
        #expect(String(decoding: record.value, as: UTF8.self) == """
            {"reason":"update of deleted event x","topic":"events","partition":1,"offset":42,\
            "event_id":"0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d","message_truncated":false,"message":"{\\"v\\":1}"}
            """)
        let binary = DeadLetter(partition: 0, offset: 1, eventID: nil, reason: "not JSON").record(
            sourceTopic: "events", originalKey: nil, originalValue: [0xFF, 0xFE, 0x00, 0x01])
        #expect(try Self.object(binary.value)["message"] as? String == "//4AAQ==")
        #expect(try Self.object(binary.value)["message_encoding"] as? String == "base64")
        #expect(binary.key == [])
    }

    /// Found in review: the reason quotes the message (an unknown op, a field's name) and the key
    /// is the original's. A foreign writer's 3 MiB `op` made a dead letter over the broker's 2 MiB
    /// limit; its send failed, and the consumer retried that batch for ever, every partition paused.
    @Test func aLetterStaysSmallWhateverTheMessageHeld() throws {
        let op = String(repeating: "é", count: 1_500_000)  // 3 MB of UTF-8, two bytes a character
        let letter = DeadLetter(partition: 0, offset: 9, eventID: BatchPlannerTests.a, reason: "unknown op " + op)
        let record = letter.record(sourceTopic: "events", originalKey: Array(repeating: 0x6B, count: 2 << 20),
                                   originalValue: Array(repeating: 0x01, count: 3 << 20))
        #expect(record.key.count == DeadLetter.maximumKeyBytes)
        // The 64 KiB of the message written as \u0001 escapes (six bytes each) is the largest part.
        #expect(record.value.count < 400 << 10, "\(record.value.count) bytes")
        let json = try Self.object(record.value)
        let reason = try #require(json["reason"] as? String)
        let keptCharacters = (DeadLetter.maximumReasonBytes - "unknown op ".utf8.count) / 2
        #expect(reason == "unknown op " + String(repeating: "é", count: keptCharacters)
                + "… (\(letter.reason.utf8.count - "unknown op ".utf8.count - 2 * keptCharacters) more bytes cut)")
        #expect(json["message_truncated"] as? Bool == true)
        #expect((json["message"] as? String)?.utf8.count == DeadLetter.maximumMessageBytes)
        // A UTF-8 message cut inside a character stays text (found in review: it turned base64).
        let accented = Array(("x" + String(repeating: "é", count: 40_000)).utf8)  // 80 001 bytes: 65 536 falls inside an "é"
        let cut = try Self.object(DeadLetter(partition: 0, offset: 1, eventID: nil, reason: "r")
            .record(sourceTopic: "events", originalKey: nil, originalValue: accented).value)
        #expect(cut["message_encoding"] == nil)
        #expect((cut["message"] as? String)?.utf8.count == DeadLetter.maximumMessageBytes - 1)
        #expect(cut["message_truncated"] as? Bool == true)
        // A short reason is kept whole.
        #expect(DeadLetter(partition: 0, offset: 0, eventID: nil, reason: "op missing").boundedReason == "op missing")
    }
}
