import ClickHouseNative
import Foundation
import Synchronization

/// The fields of an event as a create sets them.
public struct EventFields: Sendable, Equatable {
    public var conversationID: String
    public var eventName: String
    public var input: String
    public var output: String
    /// Milliseconds; may be fractional.
    public var latency: Double
    public var error: Bool
    /// Event time, milliseconds since the Unix epoch (UTC).
    public var timestampMilliseconds: Int64

    public init(conversationID: String, eventName: String, input: String = "", output: String = "", latency: Double = 0,
                error: Bool = false, timestampMilliseconds: Int64) {
        self.conversationID = conversationID
        self.eventName = eventName
        self.input = input
        self.output = output
        self.latency = latency
        self.error = error
        self.timestampMilliseconds = timestampMilliseconds
    }
}

/// The fields a partial update changes (nil: unchanged). The conversation and the time are fixed
/// at create: they place the row in its partition and its conversation.
public struct EventPatch: Sendable, Equatable {
    public var eventName: String?
    public var input: String?
    public var output: String?
    public var latency: Double?
    public var error: Bool?

    public init(eventName: String? = nil, input: String? = nil, output: String? = nil, latency: Double? = nil, error: Bool? = nil) {
        self.eventName = eventName
        self.input = input
        self.output = output
        self.latency = latency
        self.error = error
    }

    public var isEmpty: Bool { eventName == nil && input == nil && output == nil && latency == nil && error == nil }

    public func applied(to fields: EventFields) -> EventFields {
        var result = fields
        if let eventName { result.eventName = eventName }
        if let input { result.input = input }
        if let output { result.output = output }
        if let latency { result.latency = latency }
        if let error { result.error = error }
        return result
    }
}

/// A request that cannot be accepted, naming the field at fault (nil for the body as a whole).
public struct EventValidationError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public var field: String?
    public init(_ message: String, field: String? = nil) {
        self.message = message
        self.field = field
    }
    public var description: String { field.map { "\($0): \(message)" } ?? message }
}

/// A validated create request.
public struct EventCreate: Sendable, Equatable {
    public var id: UUID
    /// True when the client chose the id (so it may exist already: a retried create).
    public var idSuppliedByClient: Bool
    public var fields: EventFields
}

/// Turns request JSON into creates and patches, with the exact error for each kind of bad input.
public enum EventValidation {
    public static let maximumNameLength = 256
    // Switches rather than sets: no hashing on the request path.
    static func isPatchField(_ key: String) -> Bool {
        switch key {
        case "event_name", "input", "output", "latency", "error": return true
        default: return false
        }
    }

    /// Patch fields plus the ones fixed at create (conversation_id, timestamp, event_id).
    static func isCreateField(_ key: String) -> Bool {
        switch key {
        case "conversation_id", "timestamp", "event_id": return true
        default: return isPatchField(key)
        }
    }

    public static func create(_ body: JSONValue, receivedAtMilliseconds: Int64) throws(EventValidationError) -> EventCreate {
        guard case let .object(pairs) = body else { throw EventValidationError("request body must be a JSON object") }
        for (key, _) in pairs where !isCreateField(key) { throw EventValidationError("unknown field", field: key) }
        let conversationID = try name(body, "conversation_id")
        let eventName = try name(body, "event_name")
        let input = try optionalString(body, "input") ?? ""
        let output = try optionalString(body, "output") ?? ""
        let latency = try optionalLatency(body) ?? 0
        let error = try optionalBool(body, "error") ?? false
        var suppliedID: UUID?
        if let raw = try optionalString(body, "event_id") {
            guard let parsed = UUID(text: raw) else { throw EventValidationError("must be a UUID", field: "event_id") }
            suppliedID = parsed
        }
        var timestamp = receivedAtMilliseconds
        if let raw = try optionalString(body, "timestamp") {
            guard let parsed = Timestamp.parse(raw) else {
                throw EventValidationError("must be an RFC 3339 date-time, e.g. 2026-11-27T10:00:00.123Z", field: "timestamp")
            }
            guard Timestamp.supportedRange.contains(parsed) else {
                throw EventValidationError("must be from 1970-01-01 to 2105-12-31", field: "timestamp")
            }
            timestamp = parsed
        }
        return EventCreate(id: suppliedID ?? UUID.v7(milliseconds: receivedAtMilliseconds), idSuppliedByClient: suppliedID != nil,
                           fields: EventFields(conversationID: conversationID, eventName: eventName, input: input, output: output,
                                               latency: latency, error: error, timestampMilliseconds: timestamp))
    }

    public static func patch(_ body: JSONValue) throws(EventValidationError) -> EventPatch {
        guard case let .object(pairs) = body else { throw EventValidationError("request body must be a JSON object") }
        for (key, _) in pairs where !isPatchField(key) {
            if isCreateField(key) { throw EventValidationError("field cannot be updated", field: key) }
            throw EventValidationError("unknown field", field: key)
        }
        var patch = EventPatch()
        if body["event_name"] != nil { patch.eventName = try name(body, "event_name") }
        patch.input = try optionalString(body, "input")
        patch.output = try optionalString(body, "output")
        patch.latency = try optionalLatency(body)
        patch.error = try optionalBool(body, "error")
        guard !patch.isEmpty else { throw EventValidationError("no fields to update") }
        return patch
    }

    static func name(_ body: JSONValue, _ field: String) throws(EventValidationError) -> String {
        guard let value = body[field] else { throw EventValidationError("field is required", field: field) }
        guard case let .string(text) = value else { throw EventValidationError("must be a string", field: field) }
        guard isValidName(text) else {
            throw EventValidationError("must be 1 to \(maximumNameLength) characters", field: field)
        }
        return text
    }

    /// 1 to 256 Unicode code points (what JSON Schema's maxLength counts), so the byte size is bounded too.
    static func isValidName(_ text: String) -> Bool {
        let count = text.utf8.count <= maximumNameLength ? text.utf8.count : text.unicodeScalars.count
        return count >= 1 && count <= maximumNameLength
    }

    static func optionalString(_ body: JSONValue, _ field: String) throws(EventValidationError) -> String? {
        guard let value = body[field] else { return nil }
        guard case let .string(text) = value else { throw EventValidationError("must be a string", field: field) }
        return text
    }

    static func optionalBool(_ body: JSONValue, _ field: String) throws(EventValidationError) -> Bool? {
        guard let value = body[field] else { return nil }
        guard case let .bool(flag) = value else { throw EventValidationError("must be a boolean", field: field) }
        return flag
    }

    static func optionalLatency(_ body: JSONValue) throws(EventValidationError) -> Double? {
        guard let value = body["latency"] else { return nil }
        guard case let .number(number) = value else { throw EventValidationError("must be a number", field: "latency") }
        guard number >= 0 else { throw EventValidationError("must be a non-negative number", field: "latency") }
        return number
    }
}

/// RFC 3339 timestamps with millisecond precision, in and out.
public enum Timestamp {
    /// What a ClickHouse `DateTime` holds on every server version (UInt32 seconds), in whole years.
    public static let supportedRange: ClosedRange<Int64> = 0...4_291_747_199_999  // through 2105-12-31T23:59:59.999Z

    /// `2026-11-27T10:00:00Z`, `2026-11-27T10:00:00.123456+01:00`, `2026-11-27 10:00:00z`, ... as Unix milliseconds.
    public static func parse(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        func digits(_ range: Range<Int>) -> Int64? {
            guard range.upperBound <= b.count else { return nil }
            var value: Int64 = 0
            for i in range {
                guard b[i] >= 0x30, b[i] <= 0x39 else { return nil }
                value = value * 10 + Int64(b[i] - 0x30)
            }
            return value
        }
        guard b.count >= 20, let year = digits(0..<4), b[4] == UInt8(ascii: "-"), let month = digits(5..<7), b[7] == UInt8(ascii: "-"),
              let day = digits(8..<10), [UInt8(ascii: "T"), UInt8(ascii: "t"), UInt8(ascii: " ")].contains(b[10]),
              let hour = digits(11..<13), b[13] == UInt8(ascii: ":"), let minute = digits(14..<16), b[16] == UInt8(ascii: ":"),
              let second = digits(17..<19) else { return nil }
        guard (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year), hour < 24, minute < 60, second < 61 else { return nil }
        var index = 19
        var milliseconds: Int64 = 0
        if b[index] == UInt8(ascii: ".") {
            index += 1
            let start = index
            while index < b.count, b[index] >= 0x30, b[index] <= 0x39 { index += 1 }
            guard index > start else { return nil }
            for (n, i) in (start..<min(index, start + 3)).enumerated() {
                milliseconds += Int64(b[i] - 0x30) * [100, 10, 1][n]
            }
        }
        guard index < b.count else { return nil }
        var offsetSeconds: Int64 = 0
        if b[index] == UInt8(ascii: "Z") || b[index] == UInt8(ascii: "z") {
            index += 1
        } else if b[index] == UInt8(ascii: "+") || b[index] == UInt8(ascii: "-") {
            guard let hours = digits(index + 1..<index + 3), index + 3 < b.count, b[index + 3] == UInt8(ascii: ":"),
                  let minutes = digits(index + 4..<index + 6), hours < 24, minutes < 60 else { return nil }
            offsetSeconds = (hours * 3600 + minutes * 60) * (b[index] == UInt8(ascii: "-") ? -1 : 1)
            index += 6
        } else {
            return nil
        }
        guard index == b.count else { return nil }
        let days = CivilDate.days(year: year, month: month, day: day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + min(second, 59) - offsetSeconds
        return seconds * 1000 + milliseconds
    }

    /// `2026-11-27T10:00:00.123Z`.
    public static func format(milliseconds: Int64) -> String {
        let seconds = milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000
        let millis = milliseconds - seconds * 1000
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let (y, m, d) = CivilDate.components(days: days)
        func pad(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(secondOfDay / 3600, 2)):\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2)).\(pad(millis, 3))Z"
    }

    /// `2026-11-27` of a day number (days since 1970-01-01).
    public static func formatDate(days: Int64) -> String {
        String(format(milliseconds: days * 86_400_000).prefix(10))
    }

    static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

}

extension UUID {
    /// A time-ordered UUID (RFC 9562 version 7): 48 bits of Unix milliseconds, then random bits.
    public static func v7(milliseconds: Int64) -> UUID {
        let (high, low) = FastRandom.next128()
        let ms = UInt64(max(0, milliseconds)) & 0xFFFF_FFFF_FFFF
        let first = ms << 16 | 0x7000 | (high & 0x0FFF)
        let second = 0x8000_0000_0000_0000 | (low & 0x3FFF_FFFF_FFFF_FFFF)
        return UUID(high: first, low: second)
    }

    /// Parses the canonical 36-character form (any case) without Foundation's `sscanf`-based parser,
    /// which showed in the consumer's profile.
    public init?(text: String) {
        var text = text
        let parsed: (UInt64, UInt64)? = text.withUTF8 { bytes in
            guard bytes.count == 36, bytes[8] == 0x2D, bytes[13] == 0x2D, bytes[18] == 0x2D, bytes[23] == 0x2D else { return nil }
            var high: UInt64 = 0
            var low: UInt64 = 0
            var digits = 0
            for index in 0..<36 where index != 8 && index != 13 && index != 18 && index != 23 {
                let byte = bytes[index]
                let value: UInt8
                switch byte {
                case 0x30...0x39: value = byte - 0x30
                case 0x41...0x46: value = byte - 0x41 + 10
                case 0x61...0x66: value = byte - 0x61 + 10
                default: return nil
                }
                if digits < 16 { high = high << 4 | UInt64(value) } else { low = low << 4 | UInt64(value) }
                digits += 1
            }
            return (high, low)
        }
        guard let (high, low) = parsed else { return nil }
        self.init(high: high, low: low)
    }

    /// The UUID whose 16 bytes are `high` then `low`, big-endian (its text order).
    public init(high: UInt64, low: UInt64) {
        let h = high.bigEndian
        let l = low.bigEndian
        var bytes: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &bytes) { buffer in
            withUnsafeBytes(of: h) { buffer.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: 8) }
            withUnsafeBytes(of: l) { (buffer.baseAddress! + 8).copyMemory(from: $0.baseAddress!, byteCount: 8) }
        }
        self.init(uuid: bytes)
    }

    /// The first and last 8 bytes as big-endian integers.
    public var halves: (high: UInt64, low: UInt64) {
        withUnsafeBytes(of: uuid) { buffer in
            (UInt64(bigEndian: buffer.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
             UInt64(bigEndian: buffer.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        }
    }

    /// Lower-case text, as the API and ClickHouse print it. (Foundation's `uuidString` goes through
    /// `sprintf` on Linux, which showed in request-path profiles.)
    public var lowercasedString: String {
        let digits: StaticString = "0123456789abcdef"
        return withUnsafeBytes(of: uuid) { bytes in
            String(unsafeUninitializedCapacity: 36) { out in
                var position = 0
                for index in 0..<16 {
                    if index == 4 || index == 6 || index == 8 || index == 10 {
                        out[position] = UInt8(ascii: "-")
                        position += 1
                    }
                    let byte = bytes[index]
                    out[position] = digits.utf8Start[Int(byte >> 4)]
                    out[position + 1] = digits.utf8Start[Int(byte & 0x0F)]
                    position += 2
                }
                return position
            }
        }
    }
}

/// Random bits for ids without a system call each: xoshiro256** seeded once from the system's
/// generator, behind a lock. (Two getrandom calls per event showed in request-path profiles.)
enum FastRandom {
    private static let state = Mutex<(UInt64, UInt64, UInt64, UInt64)>({
        var system = SystemRandomNumberGenerator()
        return (system.next(), system.next(), system.next(), system.next() | 1)
    }())

    static func next128() -> (UInt64, UInt64) {
        state.withLock { s in (step(&s), step(&s)) }
    }

    private static func step(_ s: inout (UInt64, UInt64, UInt64, UInt64)) -> UInt64 {
        let result = (s.1 &* 5).rotatedLeft(7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3.rotatedLeft(45)
        return result
    }
}

extension UInt64 {
    func rotatedLeft(_ count: UInt64) -> UInt64 { (self << count) | (self >> (64 - count)) }
}
