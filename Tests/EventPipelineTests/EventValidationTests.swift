import Foundation
import Testing
@testable import EventPipeline

@Suite struct EventValidationTests {
    static let receivedAt: Int64 = 1_795_773_600_456  // 2026-11-27T10:00:00.456Z
    static let clientID = "0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d"

    static func body(_ text: String) throws -> JSONValue { try JSONParser.parse(Array(text.utf8)) }

    static func create(_ text: String) throws -> EventCreate {
        try EventValidation.create(body(text), receivedAtMilliseconds: receivedAt)
    }

    static func expectCreateError(_ text: String, _ message: String, field: String?, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: EventValidationError(message, field: field), sourceLocation: sourceLocation) {
            try create(text)
        }
    }

    static func expectPatchError(_ text: String, _ message: String, field: String?, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: EventValidationError(message, field: field), sourceLocation: sourceLocation) {
            try EventValidation.patch(body(text))
        }
    }

    /// The validation error `body` throws, nil if it throws none (or another kind).
    // MARK: Create

    @Test func createWithAllFields() throws {
        let create = try Self.create(#"""
            {"conversation_id":"conv-1","event_name":"llm_call","input":"hello","output":"world","latency":12.5,
             "error":true,"event_id":"0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d","timestamp":"2026-11-27T10:00:00.123Z"}
            """#)
        #expect(create == EventCreate(
            id: UUID(high: 0x0192_F8A4_8F1E_7C3A, low: 0x9B2D_4E5F_6A7B_8C9D),
            idSuppliedByClient: true,
            fields: EventFields(conversationID: "conv-1", eventName: "llm_call", input: "hello", output: "world", latency: 12.5,
                                error: true, timestampMilliseconds: 1_795_773_600_123)))
        #expect(create.id.lowercasedString == Self.clientID)
    }

    @Test func createDefaults() throws {
        let create = try Self.create(#"{"conversation_id":"c","event_name":"e"}"#)
        #expect(create.fields == EventFields(conversationID: "c", eventName: "e", input: "", output: "", latency: 0, error: false,
                                             timestampMilliseconds: Self.receivedAt))
        #expect(create.fields.timestampMilliseconds == 1_795_773_600_456)
        #expect(create.idSuppliedByClient == false)
    }

    @Test func createAcceptsFieldsInAnyOrderAndUnicodeNames() throws {
        let create = try Self.create(#"{"error":false,"event_name":"日本 😀","latency":0.25,"conversation_id":"é"}"#)
        #expect(create.fields == EventFields(conversationID: "é", eventName: "日本 😀", latency: 0.25, timestampMilliseconds: Self.receivedAt))
    }

    @Test func suppliedEventIDSetsIdSuppliedByClient() throws {
        let upper = try Self.create(#"{"conversation_id":"c","event_name":"e","event_id":"0192F8A4-8F1E-7C3A-9B2D-4E5F6A7B8C9D"}"#)
        #expect(upper.idSuppliedByClient)
        #expect(upper.id.lowercasedString == Self.clientID)
        let lower = try Self.create(#"{"conversation_id":"c","event_name":"e","event_id":"0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d"}"#)
        #expect(lower.idSuppliedByClient)
        #expect(lower.id == upper.id)
    }

    @Test func generatedIDsAreVersion7WithTheReceivedTime() throws {
        let first = try Self.create(#"{"conversation_id":"c","event_name":"e"}"#)
        let second = try Self.create(#"{"conversation_id":"c","event_name":"e"}"#)
        #expect(first.idSuppliedByClient == false)
        for id in [first.id, second.id] {
            let halves = id.halves
            #expect(halves.high >> 16 == UInt64(Self.receivedAt))
            #expect((halves.high >> 12) & 0xF == 7)
            #expect(halves.low >> 62 == 0b10)
            // 1_795_773_600_456 is 0x1a21c7292c8: the text starts with the 48-bit time, then the version.
            #expect(id.lowercasedString.hasPrefix("01a21c72-92c8-7"))
        }
        #expect(first.id != second.id)
    }

    @Test func bodyMustBeAnObject() {
        for text in ["[]", "null", "\"text\"", "12", "true", #"[{"conversation_id":"c","event_name":"e"}]"#] {
            Self.expectCreateError(text, "request body must be a JSON object", field: nil)
            Self.expectPatchError(text, "request body must be a JSON object", field: nil)
        }
    }

    @Test func unknownField() {
        Self.expectCreateError(#"{"conversation_id":"c","event_name":"e","extra":1}"#, "unknown field", field: "extra")
        Self.expectCreateError(#"{"conversation_id":"c","event_name":"e","timestamp_ms":1}"#, "unknown field", field: "timestamp_ms")
        Self.expectCreateError(#"{"conversation_id":"c","event_name":"e","Input":"x"}"#, "unknown field", field: "Input")
        // Unknown fields are reported before missing ones.
        Self.expectCreateError(#"{"bogus":true}"#, "unknown field", field: "bogus")
    }

    @Test func requiredFields() {
        Self.expectCreateError(#"{"event_name":"e"}"#, "field is required", field: "conversation_id")
        Self.expectCreateError(#"{"conversation_id":"c"}"#, "field is required", field: "event_name")
        Self.expectCreateError("{}", "field is required", field: "conversation_id")
    }

    @Test func wrongTypes() {
        Self.expectCreateError(#"{"conversation_id":5,"event_name":"e"}"#, "must be a string", field: "conversation_id")
        Self.expectCreateError(#"{"conversation_id":"c","event_name":null}"#, "must be a string", field: "event_name")
        Self.expectCreateError(#"{"conversation_id":"c","event_name":"e","input":1}"#, "must be a string", field: "input")
        Self.expectCreateError(#"{"conversation_id":"c","event_name":"e","output":null}"#, "must be a string", field: "output")
        Self.expectCreateError(#"{"conversation_id":"c","event_name":"e","output":["x"]}"#, "must be a string", field: "output")
        Self.expectCreateError(#"{"conversation_id":"c","event_name":"e","latency":"12"}"#, "must be a number", field: "latency")
        Self.expectCreateError(#"{"conversation_id":"c","event_name":"e","latency":true}"#, "must be a number", field: "latency")
        Self.expectCreateError(#"{"conversation_id":"c","event_name":"e","error":"true"}"#, "must be a boolean", field: "error")
        Self.expectCreateError(#"{"conversation_id":"c","event_name":"e","error":0}"#, "must be a boolean", field: "error")
        Self.expectCreateError(#"{"conversation_id":"c","event_name":"e","event_id":5}"#, "must be a string", field: "event_id")
        Self.expectCreateError(#"{"conversation_id":"c","event_name":"e","timestamp":1795773600000}"#, "must be a string", field: "timestamp")
    }

    @Test func nameLength() throws {
        Self.expectCreateError(#"{"conversation_id":"","event_name":"e"}"#, "must be 1 to 256 characters", field: "conversation_id")
        Self.expectCreateError(#"{"conversation_id":"c","event_name":""}"#, "must be 1 to 256 characters", field: "event_name")

        let long = String(repeating: "a", count: 257)
        #expect(throws: EventValidationError("must be 1 to 256 characters", field: "conversation_id")) {
            try EventValidation.create(.object([("conversation_id", .string(long)), ("event_name", .string("e"))]), receivedAtMilliseconds: 0)
        }
        #expect(throws: EventValidationError("must be 1 to 256 characters", field: "event_name")) {
            try EventValidation.create(.object([("conversation_id", .string("c")), ("event_name", .string(long))]), receivedAtMilliseconds: 0)
        }

        // 256 characters are fine, also when they take more than 256 bytes.
        let longest = String(repeating: "é", count: 256)
        let create = try EventValidation.create(.object([("conversation_id", .string(longest)), ("event_name", .string(longest))]),
                                                receivedAtMilliseconds: 0)
        #expect(create.fields.conversationID == longest)
        #expect(create.fields.eventName.count == 256)
        #expect(EventValidation.maximumNameLength == 256)
    }

    @Test func negativeLatency() throws {
        Self.expectCreateError(#"{"conversation_id":"c","event_name":"e","latency":-1}"#, "must be a non-negative number", field: "latency")
        Self.expectCreateError(#"{"conversation_id":"c","event_name":"e","latency":-0.001}"#, "must be a non-negative number", field: "latency")
        #expect(try Self.create(#"{"conversation_id":"c","event_name":"e","latency":0}"#).fields.latency == 0)
    }

    @Test func badEventID() {
        Self.expectCreateError(#"{"conversation_id":"c","event_name":"e","event_id":"not-a-uuid"}"#, "must be a UUID", field: "event_id")
        Self.expectCreateError(#"{"conversation_id":"c","event_name":"e","event_id":""}"#, "must be a UUID", field: "event_id")
        Self.expectCreateError(#"{"conversation_id":"c","event_name":"e","event_id":"0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9"}"#,
                               "must be a UUID", field: "event_id")
    }

    @Test func badTimestamp() {
        for raw in ["yesterday", "2026-11-27", "2026-11-27T10:00:00", "2026-13-01T00:00:00Z", "1795773600000"] {
            Self.expectCreateError(#"{"conversation_id":"c","event_name":"e","timestamp":"\#(raw)"}"#,
                                   "must be an RFC 3339 date-time, e.g. 2026-11-27T10:00:00.123Z", field: "timestamp")
        }
        Self.expectCreateError(#"{"conversation_id":"c","event_name":"e","timestamp":"nope"}"#,
                               "must be an RFC 3339 date-time, e.g. 2026-11-27T10:00:00.123Z", field: "timestamp")
    }

    @Test func timestampOutOfRange() throws {
        for raw in ["2200-01-01T00:00:00Z", "2106-01-01T00:00:00Z", "1969-12-31T23:59:59.999Z", "1970-01-01T00:00:00+00:01"] {
            Self.expectCreateError(#"{"conversation_id":"c","event_name":"e","timestamp":"\#(raw)"}"#,
                                   "must be from 1970-01-01 to 2105-12-31", field: "timestamp")
        }
        let first = try Self.create(#"{"conversation_id":"c","event_name":"e","timestamp":"1970-01-01T00:00:00Z"}"#)
        #expect(first.fields.timestampMilliseconds == 0)
        let last = try Self.create(#"{"conversation_id":"c","event_name":"e","timestamp":"2105-12-31T23:59:59.999Z"}"#)
        #expect(last.fields.timestampMilliseconds == 4_291_747_199_999)
    }

    @Test func errorDescription() {
        #expect(EventValidationError("must be a string", field: "input").description == "input: must be a string")
        #expect(EventValidationError("no fields to update").description == "no fields to update")
    }

    // MARK: Patch

    @Test func patchOfASubset() throws {
        #expect(try EventValidation.patch(Self.body(#"{"latency":3.5}"#)) == EventPatch(latency: 3.5))
        #expect(try EventValidation.patch(Self.body(#"{"output":"done","error":true}"#)) == EventPatch(output: "done", error: true))
        #expect(try EventValidation.patch(Self.body(#"{"error":false}"#)) == EventPatch(error: false))
        #expect(try EventValidation.patch(Self.body(#"{"input":""}"#)) == EventPatch(input: ""))
        #expect(try EventValidation.patch(Self.body(#"{"event_name":"renamed","input":"i","output":"o","latency":0,"error":true}"#))
            == EventPatch(eventName: "renamed", input: "i", output: "o", latency: 0, error: true))
    }

    @Test func emptyPatch() {
        Self.expectPatchError("{}", "no fields to update", field: nil)
    }

    @Test func immutableFields() {
        for field in ["conversation_id", "timestamp", "event_id"] {
            Self.expectPatchError(#"{"latency":1,"\#(field)":"x"}"#, "field cannot be updated", field: field)
        }
    }

    @Test func patchUnknownField() {
        Self.expectPatchError(#"{"extra":1}"#, "unknown field", field: "extra")
        Self.expectPatchError(#"{"latency":1,"timestamp_ms":1}"#, "unknown field", field: "timestamp_ms")
    }

    @Test func patchFieldErrors() {
        Self.expectPatchError(#"{"event_name":""}"#, "must be 1 to 256 characters", field: "event_name")
        Self.expectPatchError(#"{"event_name":null}"#, "must be a string", field: "event_name")
        Self.expectPatchError(#"{"input":null}"#, "must be a string", field: "input")
        Self.expectPatchError(#"{"latency":-2}"#, "must be a non-negative number", field: "latency")
        Self.expectPatchError(#"{"latency":"2"}"#, "must be a number", field: "latency")
        Self.expectPatchError(#"{"error":1}"#, "must be a boolean", field: "error")
    }

    @Test func patchApplied() {
        let fields = EventFields(conversationID: "c", eventName: "e", input: "in", output: "out", latency: 1, error: false,
                                 timestampMilliseconds: 42)
        #expect(EventPatch().isEmpty)
        #expect(!EventPatch(error: false).isEmpty)
        #expect(EventPatch().applied(to: fields) == fields)
        #expect(EventPatch(output: "new", latency: 9.5).applied(to: fields)
            == EventFields(conversationID: "c", eventName: "e", input: "in", output: "new", latency: 9.5, error: false, timestampMilliseconds: 42))
        #expect(EventPatch(eventName: "n", input: "", error: true).applied(to: fields)
            == EventFields(conversationID: "c", eventName: "n", input: "", output: "out", latency: 1, error: true, timestampMilliseconds: 42))
    }
}

@Suite struct EventIdentifierTests {
    @Test func uuidFromHalves() {
        let id = UUID(high: 0x0192_F8A4_8F1E_7C3A, low: 0x9B2D_4E5F_6A7B_8C9D)
        #expect(id.lowercasedString == "0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d")
        #expect(id.uuidString == "0192F8A4-8F1E-7C3A-9B2D-4E5F6A7B8C9D")
        #expect(id.halves.high == 0x0192_F8A4_8F1E_7C3A)
        #expect(id.halves.low == 0x9B2D_4E5F_6A7B_8C9D)
        #expect(UUID(high: 0, low: 0).lowercasedString == "00000000-0000-0000-0000-000000000000")
        #expect(UUID(high: .max, low: 1).lowercasedString == "ffffffff-ffff-ffff-0000-000000000001")
    }

    @Test func halvesRoundTrip() throws {
        let parsed = try #require(UUID(uuidString: "F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6"))
        let halves = parsed.halves
        #expect(halves.high == 0xF81D_4FAE_7DEC_11D0)
        #expect(halves.low == 0xA765_00A0_C91E_6BF6)
        #expect(UUID(high: halves.high, low: halves.low) == parsed)
    }

    @Test func version7Layout() {
        let id = UUID.v7(milliseconds: 1_795_773_600_123)
        #expect(id.halves.high >> 16 == 1_795_773_600_123)
        #expect((id.halves.high >> 12) & 0xF == 7)
        #expect(id.halves.low >> 62 == 0b10)
        #expect(id.lowercasedString.hasPrefix("01a21c72-917b-7"))
        // Negative times clamp to zero; times past 48 bits wrap.
        #expect(UUID.v7(milliseconds: -5).halves.high >> 16 == 0)
        #expect(UUID.v7(milliseconds: 0x1_0000_0000_0001).halves.high >> 16 == 1)
    }

    @Test func version7IDsSortByTime() {
        let earlier = UUID.v7(milliseconds: 1_795_773_600_123)
        let later = UUID.v7(milliseconds: 1_795_773_600_124)
        #expect(earlier.lowercasedString < later.lowercasedString)
        #expect(earlier.halves.high < later.halves.high)
    }
}
