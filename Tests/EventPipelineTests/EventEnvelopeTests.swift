import Foundation
import Testing
@testable import EventPipeline

@Suite struct EventEnvelopeTests {
    static let id = UUID(high: 0x0192_F8A4_8F1E_7C3A, low: 0x9B2D_4E5F_6A7B_8C9D)
    static let idText = "0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d"
    static let fields = EventFields(conversationID: "conv-1", eventName: "llm_call", input: "hi \"there\"", output: "ok",
                                    latency: 12.5, error: false, timestampMilliseconds: 1_795_773_600_123)

    static func text(_ envelope: EventEnvelope) -> String { String(decoding: envelope.encoded(), as: UTF8.self) }

    static func expectDecodeError(_ text: String, _ reason: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: EnvelopeError(reason), sourceLocation: sourceLocation) {
            try EventEnvelope.decode(Array(text.utf8))
        }
    }

    // MARK: Encoding

    @Test func createEncodesToTheDocumentedForm() {
        let envelope = EventEnvelope(eventID: Self.id, operation: .create(Self.fields, idSuppliedByClient: false),
                                     receivedAtMilliseconds: 1_795_773_600_456)
        #expect(Self.text(envelope) == #"{"v":1,"op":"create","event_id":"0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d","received_at_ms":1795773600456,"id_supplied":false,"fields":{"conversation_id":"conv-1","event_name":"llm_call","input":"hi \"there\"","output":"ok","latency":12.5,"error":false,"timestamp_ms":1795773600123}}"#)
    }

    @Test func updateEncodesOnlyTheChangedFields() {
        let envelope = EventEnvelope(eventID: Self.id, operation: .update(EventPatch(eventName: "renamed", latency: 7, error: true)),
                                     receivedAtMilliseconds: 5)
        #expect(Self.text(envelope) == #"{"v":1,"op":"update","event_id":"0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d","received_at_ms":5,"fields":{"event_name":"renamed","latency":7,"error":true}}"#)
        let outputOnly = EventEnvelope(eventID: Self.id, operation: .update(EventPatch(output: "x\ny")), receivedAtMilliseconds: 6)
        #expect(Self.text(outputOnly) == #"{"v":1,"op":"update","event_id":"0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d","received_at_ms":6,"fields":{"output":"x\ny"}}"#)
    }

    @Test func deleteEncodesNoFields() {
        let envelope = EventEnvelope(eventID: Self.id, operation: .delete, receivedAtMilliseconds: 1_795_773_600_456)
        #expect(Self.text(envelope) == #"{"v":1,"op":"delete","event_id":"0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d","received_at_ms":1795773600456}"#)
    }

    @Test func keyIsTheLowercasedID() {
        let envelope = EventEnvelope(eventID: Self.id, operation: .delete, receivedAtMilliseconds: 0)
        #expect(envelope.key == Array(Self.idText.utf8))
        #expect(EventEnvelope.version == 1)
    }

    // MARK: Round trips

    @Test func createRoundTrips() throws {
        for supplied in [false, true] {
            let envelope = EventEnvelope(eventID: Self.id, operation: .create(Self.fields, idSuppliedByClient: supplied),
                                         receivedAtMilliseconds: 1_795_773_600_456)
            #expect(try EventEnvelope.decode(envelope.encoded()) == envelope)
        }
        let tricky = EventFields(conversationID: "é \"q\" \\ \u{1}", eventName: "日本 😀", input: "line\nnext\ttab", output: "",
                                 latency: 123_456.789, error: true, timestampMilliseconds: 0)
        let envelope = EventEnvelope(eventID: UUID(high: .max, low: 0), operation: .create(tricky, idSuppliedByClient: true),
                                     receivedAtMilliseconds: 4_291_747_199_999)
        #expect(try EventEnvelope.decode(envelope.encoded()) == envelope)
        let fractional = EventFields(conversationID: "c", eventName: "e", latency: 0.1, timestampMilliseconds: 4_291_747_199_999)
        let small = EventEnvelope(eventID: Self.id, operation: .create(fractional, idSuppliedByClient: false), receivedAtMilliseconds: 1)
        #expect(try EventEnvelope.decode(small.encoded()) == small)
    }

    @Test func updateRoundTrips() throws {
        let patches = [
            EventPatch(eventName: "renamed"),
            EventPatch(input: ""),
            EventPatch(output: "o \"quoted\""),
            EventPatch(latency: 0.25),
            EventPatch(error: false),
            EventPatch(eventName: "n", input: "i", output: "o", latency: 1e20, error: true),
        ]
        for patch in patches {
            let envelope = EventEnvelope(eventID: Self.id, operation: .update(patch), receivedAtMilliseconds: 1_795_773_600_456)
            #expect(try EventEnvelope.decode(envelope.encoded()) == envelope)
        }
    }

    @Test func deleteRoundTrips() throws {
        let envelope = EventEnvelope(eventID: Self.id, operation: .delete, receivedAtMilliseconds: 1_795_773_600_456)
        #expect(try EventEnvelope.decode(envelope.encoded()) == envelope)
        #expect(try EventEnvelope.decode(envelope.encoded()) != EventEnvelope(eventID: Self.id, operation: .delete, receivedAtMilliseconds: 0))
    }

    @Test func decodeReadsTheDocumentedForm() throws {
        let text = #"{"v":1,"op":"create","event_id":"0192F8A4-8F1E-7C3A-9B2D-4E5F6A7B8C9D","received_at_ms":1795773600456,"id_supplied":true,"fields":{"conversation_id":"conv-1","event_name":"llm_call","timestamp_ms":1795773600123}}"#
        let envelope = try EventEnvelope.decode(Array(text.utf8))
        #expect(envelope == EventEnvelope(
            eventID: Self.id,
            operation: .create(EventFields(conversationID: "conv-1", eventName: "llm_call", timestampMilliseconds: 1_795_773_600_123),
                               idSuppliedByClient: true),
            receivedAtMilliseconds: 1_795_773_600_456))
    }

    // MARK: Decode errors

    @Test func notJSON() {
        Self.expectDecodeError("nonsense", "not JSON: invalid literal at byte 0")
        Self.expectDecodeError("", "not JSON: unexpected end of JSON at byte 0")
        Self.expectDecodeError(#"{"v":1,"v":1}"#, #"not JSON: duplicate key "v" at byte 7"#)
    }

    @Test func unsupportedVersion() {
        Self.expectDecodeError(#"{"op":"delete","event_id":"0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d","received_at_ms":1}"#,
                               "unsupported envelope version (none)")
        for (version, text) in [("2", "(2.0)"), ("0", "(0.0)"), (#""1""#, "(a string)"), ("null", "(a null)")] {
            Self.expectDecodeError(#"{"v":\#(version),"op":"delete","event_id":"0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d","received_at_ms":1}"#,
                                   "unsupported envelope version " + text)
        }
        for (version, text) in [("2", "(2.0)"), (#""1""#, "(a string)"), ("null", "(a null)")] {
            Self.expectDecodeError(#"{"v":"# + version + #","op":"delete"}"#, "unsupported envelope version " + text)
        }
        // Not an object at all: no version either.
        Self.expectDecodeError("[1]", "unsupported envelope version (none)")
    }

    @Test func missingOrBadEventID() {
        Self.expectDecodeError(#"{"v":1,"op":"delete","received_at_ms":1}"#, "event_id missing or not a UUID")
        Self.expectDecodeError(#"{"v":1,"op":"delete","event_id":"nope","received_at_ms":1}"#, "event_id missing or not a UUID")
        Self.expectDecodeError(#"{"v":1,"op":"delete","event_id":7,"received_at_ms":1}"#, "event_id missing or not a UUID")
    }

    @Test func missingReceivedAtOrOp() {
        Self.expectDecodeError(#"{"v":1,"op":"delete","event_id":"0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d"}"#, "received_at_ms missing or not an integer")
        Self.expectDecodeError(#"{"v":1,"op":"delete","event_id":"0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d","received_at_ms":"1"}"#,
                               "received_at_ms missing or not an integer")
        // Numbers an Int64 cannot hold are refused (the message goes to the DLQ), never trapped on.
        Self.expectDecodeError(#"{"v":1,"op":"delete","event_id":"0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d","received_at_ms":1e19}"#,
                               "received_at_ms missing or not an integer")
        Self.expectDecodeError(#"{"v":1,"op":"delete","event_id":"0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d","received_at_ms":1.5}"#,
                               "received_at_ms missing or not an integer")
        Self.expectDecodeError(#"{"v":1,"op":"create","id_supplied":false,"event_id":"0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d","received_at_ms":1,"fields":{"conversation_id":"c","event_name":"e","timestamp_ms":1e300}}"#,
                               "create without a valid timestamp_ms")
        Self.expectDecodeError(#"{"v":1,"op":"create","id_supplied":false,"event_id":"0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d","received_at_ms":1,"fields":{"conversation_id":"c","event_name":"e","timestamp_ms":5,"timestamp":"2026-01-01T00:00:00Z"}}"#,
                               "invalid create: unexpected field timestamp")
        Self.expectDecodeError(#"{"v":1,"event_id":"0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d","received_at_ms":1}"#, "op missing")
    }

    /// Found in review: a create accepted "at" Int64.min, written by some other producer, trapped
    /// the consumer in its delay metric after the INSERT and before the commit, on every restart.
    @Test func receivedAtOutsideTheSupportedRange() throws {
        let create = #"{"v":1,"op":"create","id_supplied":false,"event_id":"0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d","received_at_ms":RECEIVED,"fields":{"conversation_id":"c","event_name":"e","timestamp_ms":5}}"#
        for received in ["-9223372036854775808", "-1", "4291747200000"] {
            let text = create.replacingOccurrences(of: "RECEIVED", with: received)
            #expect(EventEnvelope.decodeDirect(Array(text.utf8)) == nil)
            Self.expectDecodeError(text, "received_at_ms \(received) is outside 1970-01-01 to 2105-12-31")
        }
        let edge = create.replacingOccurrences(of: "RECEIVED", with: "4291747199999")
        #expect(try EventEnvelope.decode(Array(edge.utf8)).receivedAtMilliseconds == 4_291_747_199_999)
    }

    @Test func unknownOp() {
        Self.expectDecodeError(#"{"v":1,"op":"upsert","event_id":"0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d","received_at_ms":1}"#,
                               "unknown op upsert")
        Self.expectDecodeError(#"{"v":1,"op":"DELETE","event_id":"0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d","received_at_ms":1}"#,
                               "unknown op DELETE")
    }

    @Test func invalidUpdate() {
        Self.expectDecodeError(#"{"v":1,"op":"update","event_id":"0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d","received_at_ms":1,"fields":{}}"#,
                               "invalid update: no fields to update")
        Self.expectDecodeError(#"{"v":1,"op":"update","event_id":"0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d","received_at_ms":1}"#,
                               "invalid update: no fields to update")
        Self.expectDecodeError(
            #"{"v":1,"op":"update","event_id":"0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d","received_at_ms":1,"fields":{"conversation_id":"c"}}"#,
            "invalid update: conversation_id: field cannot be updated")
    }

    @Test func invalidCreate() {
        let prefix = #"{"v":1,"op":"create","event_id":"0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d","received_at_ms":1"#
        Self.expectDecodeError(prefix + #","id_supplied":false,"fields":{"conversation_id":"c","event_name":"e"}}"#,
                               "create without a valid timestamp_ms")
        Self.expectDecodeError(prefix + #","id_supplied":false,"fields":{"conversation_id":"c","event_name":"e","timestamp_ms":-1}}"#,
                               "create without a valid timestamp_ms")
        Self.expectDecodeError(prefix + #","id_supplied":false,"fields":{"conversation_id":"c","event_name":"e","timestamp_ms":"0"}}"#,
                               "create without a valid timestamp_ms")
        Self.expectDecodeError(prefix + #","fields":{"conversation_id":"c","event_name":"e","timestamp_ms":0}}"#,
                               "id_supplied missing")
        Self.expectDecodeError(prefix + #","id_supplied":false,"fields":{"conversation_id":"c","event_name":"","timestamp_ms":0}}"#,
                               "invalid create: event_name: must be 1 to 256 characters")
        Self.expectDecodeError(prefix + #","id_supplied":false,"fields":{"event_name":"e","timestamp_ms":0}}"#,
                               "invalid create: conversation_id: field is required")
    }

    @Test func errorDescription() {
        #expect(EnvelopeError("op missing").description == "op missing")
    }
}

@Suite struct ConversationCursorTests {
    static let id = UUID(high: 0x0192_F8A4_8F1E_7C3A, low: 0x9B2D_4E5F_6A7B_8C9D)

    static func base64URL(_ text: String) -> String {
        Data(text.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    @Test func encodedIsBase64URLOfTimeAndID() {
        let cursor = ConversationCursor(timestampMilliseconds: 1_795_773_600_123, eventID: Self.id)
        #expect(cursor.encoded == "MTc5NTc3MzYwMDEyMzowMTkyZjhhNC04ZjFlLTdjM2EtOWIyZC00ZTVmNmE3YjhjOWQ")
        #expect(ConversationCursor(timestampMilliseconds: 0, eventID: UUID(high: 0, low: 0)).encoded
            == "MDowMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA")
    }

    @Test func roundTrips() {
        let ids = [Self.id, UUID(high: 0, low: 0), UUID(high: .max, low: .max), UUID(high: 0xFBFF_FFFE_0000_0000, low: 0x3F3F_0000_FFFF_0001)]
        let times: [Int64] = [0, 1, 999, 1_795_773_600_123, 4_291_747_199_999, -5, .max, .min]
        for id in ids {
            for time in times {
                let cursor = ConversationCursor(timestampMilliseconds: time, eventID: id)
                let encoded = cursor.encoded
                #expect(ConversationCursor(encoded: encoded) == cursor, "\(time) \(id)")
                #expect(encoded.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }, "\(encoded)")
                #expect(encoded.count <= 128)
            }
        }
    }

    @Test func acceptsPaddedStandardBase64() {
        let padded = Data("1:\(Self.id.lowercasedString)".utf8).base64EncodedString()
        #expect(ConversationCursor(encoded: padded) == ConversationCursor(timestampMilliseconds: 1, eventID: Self.id))
    }

    @Test func garbageGivesNil() {
        let garbage = [
            "", "a", "!!!!", "not a cursor", "YWJj",  // "abc"
            "MTI6bm90YXV1aWQ",  // "12:notauuid"
            "eDowMTkyZjhhNC04ZjFlLTdjM2EtOWIyZC00ZTVmNmE3YjhjOWQ",  // "x:<uuid>"
            Self.base64URL(":\(Self.id.lowercasedString)"),
            Self.base64URL("1795773600123"),
            Self.base64URL("1795773600123:"),
            Self.base64URL("99999999999999999999:\(Self.id.lowercasedString)"),  // past Int64
            Self.base64URL("1.5:\(Self.id.lowercasedString)"),
            ConversationCursor(timestampMilliseconds: 1, eventID: Self.id).encoded + "!",
        ]
        for text in garbage {
            #expect(ConversationCursor(encoded: text) == nil, "\(text)")
        }
        // Invalid UTF-8 inside valid base64.
        let binary = Data([0xFF, 0xFE, 0x3A, 0x31]).base64EncodedString()
        #expect(ConversationCursor(encoded: binary) == nil)
    }

    @Test func overlongCursorsAreRefused() {
        // Leading zeros still make a valid number, so only the length limit refuses this one.
        let short = Self.base64URL("0001:\(Self.id.lowercasedString)")
        #expect(ConversationCursor(encoded: short) == ConversationCursor(timestampMilliseconds: 1, eventID: Self.id))
        let long = Self.base64URL(String(repeating: "0", count: 100) + "1:\(Self.id.lowercasedString)")
        #expect(long.count > 128)
        #expect(ConversationCursor(encoded: long) == nil)
    }
}

extension EventEnvelopeTests {
    // MARK: The direct decoder against the general one

    static func randomText(_ generator: inout some RandomNumberGenerator, maximum: Int) -> String {
        let alphabet: [String] = ["a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\u{1}", "\u{7f}", "é", "日", "😀", "\u{2028}", "-", ":", ","]
        return (0..<Int.random(in: 0...maximum, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }.joined()
    }

    static func randomEnvelope(_ generator: inout some RandomNumberGenerator) -> EventEnvelope {
        let id = UUID(high: generator.next(), low: generator.next())
        let received = Int64.random(in: 0...4_291_747_199_999, using: &generator)
        let latency = [0, 0.5, 12.25, 123_456.789, Double(Int.random(in: 0...100_000, using: &generator)) / 100, 1e-7, 3.5e20].randomElement(using: &generator)!
        switch Int.random(in: 0..<3, using: &generator) {
        case 0:
            let fields = EventFields(conversationID: "c" + randomText(&generator, maximum: 20), eventName: "e" + randomText(&generator, maximum: 20),
                                     input: randomText(&generator, maximum: 80), output: randomText(&generator, maximum: 80),
                                     latency: latency, error: Bool.random(using: &generator),
                                     timestampMilliseconds: Int64.random(in: 0...4_291_747_199_999, using: &generator))
            return EventEnvelope(eventID: id, operation: .create(fields, idSuppliedByClient: Bool.random(using: &generator)), receivedAtMilliseconds: received)
        case 1:
            var patch = EventPatch()
            while patch.isEmpty {
                if Bool.random(using: &generator) { patch.eventName = "n" + randomText(&generator, maximum: 10) }
                if Bool.random(using: &generator) { patch.input = randomText(&generator, maximum: 30) }
                if Bool.random(using: &generator) { patch.output = randomText(&generator, maximum: 30) }
                if Bool.random(using: &generator) { patch.latency = latency }
                if Bool.random(using: &generator) { patch.error = Bool.random(using: &generator) }
            }
            return EventEnvelope(eventID: id, operation: .update(patch), receivedAtMilliseconds: received)
        default:
            return EventEnvelope(eventID: id, operation: .delete, receivedAtMilliseconds: received)
        }
    }

    static func general(_ bytes: [UInt8]) -> EventEnvelope? { try? EventEnvelope.decodeGeneral(bytes) }

    /// Every envelope the API writes takes the direct path and decodes to itself.
    @Test func directDecoderReadsEveryEncodedEnvelope() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<3000 {
            let envelope = Self.randomEnvelope(&generator)
            let bytes = envelope.encoded()
            #expect(EventEnvelope.decodeDirect(bytes) == envelope, "\(String(decoding: bytes, as: UTF8.self))")
            #expect(Self.general(bytes) == envelope)
        }
    }

    /// On altered bytes the direct decoder either declines (nil) or agrees with the general path:
    /// it never accepts what the general path rejects, nor reads anything differently.
    @Test func directDecoderNeverDisagreesWithTheGeneralOne() {
        var generator = SystemRandomNumberGenerator()
        let edits: [(String, String)] = [
            (#""v":1"#, #""v":2"#), (#""v":1"#, #""v":1.0"#), (#""v":1"#, #""v":"1""#), (#","op""#, #", "op" "#),
            (#""op":"create""#, #""op":"update""#), (#""op":"update""#, #""op":"create""#), (#""op":"delete""#, #""op":"update""#),
            (#""id_supplied":false"#, #""id_supplied":0"#), (#""id_supplied":true,"#, ""), (#""latency":"#, #""latency":-"#),
            (#""latency":"#, #""latency":null,"x":"#), (#""error":false"#, #""error":null"#), (#""timestamp_ms":"#, #""timestamp_ms":-"#),
            (#""timestamp_ms":"#, #""timestamp_ms":9"#), (#""timestamp_ms":"#, #""timestamp":"#), (#""fields":{"#, #""fields":{"event_id":"x","#),
            (#""fields":{"#, #""fields":{"conversation_id":"c","#), (#""fields":{"#, #""fields":{"timestamp_ms":1,"#),
            (#""conversation_id":""#, #""conversation_id":"\u00e9"#), (#""event_name":""#, #""event_name":"\ud800"#),
            (#""event_name":""#, #""event_name":"" , "x":""#), (#"}"#, #"} "#), (#"}"#, #"}}"#), (#"{"#, #"{ "#),
            ("-", "_"), (#""received_at_ms":"#, #""received_at_ms":0.5,"r":"#), (#"""#, ""), (":", " : "),
            (#""event_id":""#, #""event_id":"x"#), (#""received_at_ms":"#, #""received_at_ms":1e3,"y":"#),
        ]
        var accepted = 0
        for _ in 0..<3000 {
            var text = String(decoding: Self.randomEnvelope(&generator).encoded(), as: UTF8.self)
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                let (from, to) = edits.randomElement(using: &generator)!
                if let range = text.range(of: from) { text.replaceSubrange(range, with: to) }
            }
            var bytes = Array(text.utf8)
            if Int.random(in: 0..<4, using: &generator) == 0, !bytes.isEmpty {
                bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            }
            if Int.random(in: 0..<8, using: &generator) == 0 { bytes.removeLast(Int.random(in: 0...bytes.count, using: &generator)) }
            guard let direct = EventEnvelope.decodeDirect(bytes) else { continue }
            accepted += 1
            #expect(Self.general(bytes) == direct, "\(String(decoding: bytes, as: UTF8.self))")
        }
        #expect(accepted > 100)  // the altered inputs still exercise the accepting side
    }

    @Test func directDecoderDeclinesWhatNeedsAnExactReason() {
        let valid = String(decoding: EventEnvelope(eventID: Self.id, operation: .create(Self.fields, idSuppliedByClient: false),
                                                   receivedAtMilliseconds: 1).encoded(), as: UTF8.self)
        let declined = [
            valid.replacingOccurrences(of: #""v":1"#, with: #""v":1,"v":1"#),
            valid.replacingOccurrences(of: #""latency":12.5"#, with: #""latency":-1"#),
            valid.replacingOccurrences(of: #""conversation_id":"conv-1""#, with: #""conversation_id":"""#),
            valid.replacingOccurrences(of: #""input":"#, with: #""colour":"red","input":"#),
            valid + " x",
        ]
        for text in declined {
            #expect(EventEnvelope.decodeDirect(Array(text.utf8)) == nil, "\(text)")
        }
        Self.expectDecodeError(declined[1], "invalid create: latency: must be a non-negative number")
        Self.expectDecodeError(declined[2], "invalid create: conversation_id: must be 1 to 256 characters")
    }
}
