import Foundation

/// What happens to an event.
public enum EventOperation: Sendable, Equatable {
    case create(EventFields, idSuppliedByClient: Bool)
    case update(EventPatch)
    case delete

    var name: String {
        switch self {
        case .create: return "create"
        case .update: return "update"
        case .delete: return "delete"
        }
    }
}

/// The Kafka message of one accepted write: key = event id (so one event's messages stay in one
/// partition, in order), value = this envelope as JSON:
///
///     {"v":1,"op":"create","event_id":"…","received_at_ms":1764237600123,"id_supplied":false,
///      "fields":{"conversation_id":"…","event_name":"…","input":"…","output":"…","latency":12.5,
///                "error":false,"timestamp_ms":1764237600123}}
///
/// Updates carry only the changed fields; deletes carry none. See ARCHITECTURE.md.
public struct EventEnvelope: Sendable, Equatable {
    public static let version = 1

    public var eventID: UUID
    public var operation: EventOperation
    /// When the API accepted the request (Unix milliseconds). Informational: row versions come
    /// from Kafka order, never from clocks.
    public var receivedAtMilliseconds: Int64

    public init(eventID: UUID, operation: EventOperation, receivedAtMilliseconds: Int64) {
        self.eventID = eventID
        self.operation = operation
        self.receivedAtMilliseconds = receivedAtMilliseconds
    }

    /// The Kafka key: the event id's text.
    public var key: [UInt8] { Array(eventID.lowercasedString.utf8) }

    public func encoded() -> [UInt8] {
        var json = JSONWriter(capacity: 256)
        json.bytes.append(UInt8(ascii: "{"))
        json.key("v", first: true)
        json.integer(Self.version)
        json.key("op")
        json.string(operation.name)
        json.key("event_id")
        json.string(eventID.lowercasedString)
        json.key("received_at_ms")
        json.integer(receivedAtMilliseconds)
        switch operation {
        case let .create(fields, supplied):
            json.key("id_supplied")
            json.bool(supplied)
            json.key("fields")
            json.bytes.append(UInt8(ascii: "{"))
            json.key("conversation_id", first: true)
            json.string(fields.conversationID)
            json.key("event_name")
            json.string(fields.eventName)
            json.key("input")
            json.string(fields.input)
            json.key("output")
            json.string(fields.output)
            json.key("latency")
            json.number(fields.latency)
            json.key("error")
            json.bool(fields.error)
            json.key("timestamp_ms")
            json.integer(fields.timestampMilliseconds)
            json.bytes.append(UInt8(ascii: "}"))
        case let .update(patch):
            json.key("fields")
            json.bytes.append(UInt8(ascii: "{"))
            var first = true
            func next(_ key: StaticString) {
                json.key(key, first: first)
                first = false
            }
            if let value = patch.eventName { next("event_name"); json.string(value) }
            if let value = patch.input { next("input"); json.string(value) }
            if let value = patch.output { next("output"); json.string(value) }
            if let value = patch.latency { next("latency"); json.number(value) }
            if let value = patch.error { next("error"); json.bool(value) }
            json.bytes.append(UInt8(ascii: "}"))
        case .delete:
            break
        }
        json.bytes.append(UInt8(ascii: "}"))
        return json.bytes
    }

    /// Reads an envelope; the error says why a message cannot be used (it goes to the DLQ with it).
    public static func decode(_ bytes: [UInt8]) throws(EnvelopeError) -> EventEnvelope {
        if let envelope = decodeDirect(bytes) { return envelope }
        return try decodeGeneral(bytes)
    }

    /// The consumer's hot path: one pass over the bytes into the envelope, no JSON tree. It takes
    /// only what it can accept whole (the known keys, each once, of the right types, valid values)
    /// and returns nil for anything else, which ``decodeGeneral(_:)`` then reads or rejects with
    /// the exact reason. Both give the same envelope for every input this one accepts (tested).
    static func decodeDirect(_ bytes: [UInt8]) -> EventEnvelope? {
        bytes.withUnsafeBufferPointer { buffer -> EventEnvelope? in
            var parser = JSONParser(buffer: buffer, maximumDepth: 2)
            var version, received, timestamp, latency: Double?
            var op, conversationID, eventName, input, output: String?
            var id: UUID?
            var supplied, error: Bool?
            var hasFields = false
            let complete = parser.members { key, parser in
                switch key {
                case "v": return version == nil && parser.directNumber(&version)
                case "op": return op == nil && parser.directString(&op)
                case "event_id":
                    var text: String?
                    guard id == nil, parser.directString(&text), let text else { return false }
                    id = UUID(text: text)
                    return id != nil
                case "received_at_ms": return received == nil && parser.directNumber(&received)
                case "id_supplied": return supplied == nil && parser.directBool(&supplied)
                case "fields":
                    guard !hasFields else { return false }
                    hasFields = true
                    return parser.members { key, parser in
                        switch key {
                        case "conversation_id": return conversationID == nil && parser.directString(&conversationID)
                        case "event_name": return eventName == nil && parser.directString(&eventName)
                        case "input": return input == nil && parser.directString(&input)
                        case "output": return output == nil && parser.directString(&output)
                        case "latency": return latency == nil && parser.directNumber(&latency)
                        case "error": return error == nil && parser.directBool(&error)
                        case "timestamp_ms": return timestamp == nil && parser.directNumber(&timestamp)
                        default: return false
                        }
                    }
                default: return false
                }
            }
            parser.skipWhitespace()
            guard complete, parser.position == buffer.count, version == Double(Self.version), let id, let op,
                  let receivedNumber = received, let receivedAt = Int64(exactly: receivedNumber),
                  Timestamp.supportedRange.contains(receivedAt) else { return nil }
            if let latency, !(latency >= 0) { return nil }
            if let eventName, !EventValidation.isValidName(eventName) { return nil }
            let operation: EventOperation
            switch op {
            case "create":
                guard hasFields, let supplied, let conversationID, let eventName, EventValidation.isValidName(conversationID),
                      let timestamp, let milliseconds = Int64(exactly: timestamp), Timestamp.supportedRange.contains(milliseconds) else { return nil }
                operation = .create(EventFields(conversationID: conversationID, eventName: eventName, input: input ?? "", output: output ?? "",
                                                latency: latency ?? 0, error: error ?? false, timestampMilliseconds: milliseconds),
                                    idSuppliedByClient: supplied)
            case "update":
                guard conversationID == nil, timestamp == nil else { return nil }
                let patch = EventPatch(eventName: eventName, input: input, output: output, latency: latency, error: error)
                guard !patch.isEmpty else { return nil }
                operation = .update(patch)
            case "delete":
                operation = .delete
            default:
                return nil
            }
            return EventEnvelope(eventID: id, operation: operation, receivedAtMilliseconds: receivedAt)
        }
    }

    /// Reads any envelope through the general JSON parser and the API's validation.
    static func decodeGeneral(_ bytes: [UInt8]) throws(EnvelopeError) -> EventEnvelope {
        let json: JSONValue
        do {
            json = try JSONParser.parse(bytes)
        } catch {
            throw EnvelopeError("not JSON: \(error)")
        }
        guard case .number(let version)? = json["v"], version == Double(Self.version) else {
            let found: String
            switch json["v"] {
            case let .number(number)?: found = "\(number)"
            case let value?: found = "a \(value.typeName)"
            case nil: found = "none"
            }
            throw EnvelopeError("unsupported envelope version (\(found))")
        }
        guard case let .string(idText)? = json["event_id"], let id = UUID(text: idText) else {
            throw EnvelopeError("event_id missing or not a UUID")
        }
        guard case let .number(receivedNumber)? = json["received_at_ms"], let received = Int64(exactly: receivedNumber) else {
            throw EnvelopeError("received_at_ms missing or not an integer")
        }
        // The API's clock at acceptance; far outside it, the consumer's delay arithmetic overflows.
        guard Timestamp.supportedRange.contains(received) else {
            throw EnvelopeError("received_at_ms \(received) is outside 1970-01-01 to 2105-12-31")
        }
        guard case let .string(op)? = json["op"] else { throw EnvelopeError("op missing") }
        let fields = json["fields"] ?? .object([])
        let operation: EventOperation
        switch op {
        case "create":
            guard case let .number(timestampNumber)? = fields["timestamp_ms"], let timestamp = Int64(exactly: timestampNumber),
                  Timestamp.supportedRange.contains(timestamp) else {
                throw EnvelopeError("create without a valid timestamp_ms")
            }
            guard case let .bool(supplied)? = json["id_supplied"] else { throw EnvelopeError("id_supplied missing") }
            guard case let .object(pairs) = fields else { throw EnvelopeError("fields is not an object") }
            // The create's own fields only: the id and the time travel outside the request form.
            if let stray = pairs.first(where: { $0.0 == "timestamp" || $0.0 == "event_id" }) {
                throw EnvelopeError("invalid create: unexpected field \(stray.0)")
            }
            do {
                let create = try EventValidation.create(.object(pairs.filter { $0.0 != "timestamp_ms" }), receivedAtMilliseconds: timestamp)
                operation = .create(create.fields, idSuppliedByClient: supplied)
            } catch {
                throw EnvelopeError("invalid create: \(error)")
            }
        case "update":
            do {
                operation = .update(try EventValidation.patch(fields))
            } catch {
                throw EnvelopeError("invalid update: \(error)")
            }
        case "delete":
            operation = .delete
        default:
            throw EnvelopeError("unknown op \(op)")
        }
        return EventEnvelope(eventID: id, operation: operation, receivedAtMilliseconds: received)
    }
}

/// Why a Kafka message is not a usable envelope.
public struct EnvelopeError: Error, Equatable, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
