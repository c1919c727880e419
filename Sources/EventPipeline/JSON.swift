import Foundation

/// A parsed JSON value. Objects keep their keys in order (duplicates are refused by the parser).
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.number(a), .number(b)): return a == b
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.object(a), .object(b)): return a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// The JSON type name, for error messages.
    var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .number: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }

    public subscript(key: String) -> JSONValue? {
        guard case let .object(pairs) = self else { return nil }
        return pairs.first { $0.0 == key }?.1
    }
}

/// Why a body is not acceptable JSON: a message for people and the byte offset.
public struct JSONParseError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public var offset: Int
    public var description: String { "\(message) at byte \(offset)" }
}

/// A strict JSON parser (RFC 8259): UTF-8 is validated, duplicate keys and nesting deeper than
/// `maximumDepth` are refused, numbers must be finite doubles. Written for request bodies and
/// Kafka envelopes, where exact error positions matter and Foundation's parser would be slower.
public struct JSONParser {
    public static func parse(_ bytes: [UInt8], maximumDepth: Int = 64) throws(JSONParseError) -> JSONValue {
        try bytes.withUnsafeBufferPointer { buffer throws(JSONParseError) in
            var parser = JSONParser(buffer: buffer, maximumDepth: maximumDepth)
            let value = try parser.value(depth: 0)
            parser.skipWhitespace()
            guard parser.position == buffer.count else { throw parser.error("unexpected data after the JSON value") }
            return value
        }
    }

    let buffer: UnsafeBufferPointer<UInt8>
    let maximumDepth: Int
    var position = 0

    init(buffer: UnsafeBufferPointer<UInt8>, maximumDepth: Int) {
        self.buffer = buffer
        self.maximumDepth = maximumDepth
    }

    func error(_ message: String) -> JSONParseError { JSONParseError(message: message, offset: position) }

    mutating func skipWhitespace() {
        while position < buffer.count {
            switch buffer[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    mutating func value(depth: Int) throws(JSONParseError) -> JSONValue {
        skipWhitespace()
        guard position < buffer.count else { throw error("unexpected end of JSON") }
        switch buffer[position] {
        case UInt8(ascii: "{"):
            guard depth < maximumDepth else { throw error("JSON nested too deeply") }
            position += 1
            var pairs: [(String, JSONValue)] = []
            var keys = Set<String>()  // duplicate detection in constant time per key, even for huge objects
            skipWhitespace()
            if position < buffer.count, buffer[position] == UInt8(ascii: "}") {
                position += 1
                return .object(pairs)
            }
            while true {
                skipWhitespace()
                guard position < buffer.count, buffer[position] == UInt8(ascii: "\"") else { throw error("expected a string key") }
                let keyOffset = position
                let key = try string()
                // Small objects (all requests) scan; large ones switch to a set.
                let duplicate = pairs.count < 16 ? pairs.contains { $0.0 == key } : !keys.insert(key).inserted
                if pairs.count == 15 {
                    keys = Set(pairs.map(\.0))
                    keys.insert(key)
                }
                if duplicate {
                    throw JSONParseError(message: "duplicate key \"\(key)\"", offset: keyOffset)
                }
                skipWhitespace()
                guard position < buffer.count, buffer[position] == UInt8(ascii: ":") else { throw error("expected ':'") }
                position += 1
                pairs.append((key, try value(depth: depth + 1)))
                skipWhitespace()
                guard position < buffer.count else { throw error("unexpected end of JSON") }
                let next = buffer[position]
                position += 1
                if next == UInt8(ascii: ",") { continue }
                guard next == UInt8(ascii: "}") else {
                    position -= 1
                    throw error("expected ',' or '}'")
                }
                return .object(pairs)
            }
        case UInt8(ascii: "["):
            guard depth < maximumDepth else { throw error("JSON nested too deeply") }
            position += 1
            var items: [JSONValue] = []
            skipWhitespace()
            if position < buffer.count, buffer[position] == UInt8(ascii: "]") {
                position += 1
                return .array(items)
            }
            while true {
                items.append(try value(depth: depth + 1))
                skipWhitespace()
                guard position < buffer.count else { throw error("unexpected end of JSON") }
                let next = buffer[position]
                position += 1
                if next == UInt8(ascii: ",") { continue }
                guard next == UInt8(ascii: "]") else {
                    position -= 1
                    throw error("expected ',' or ']'")
                }
                return .array(items)
            }
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        default:
            return .number(try number())
        }
    }

    mutating func literal(_ text: StaticString, _ value: JSONValue) throws(JSONParseError) -> JSONValue {
        let count = text.utf8CodeUnitCount
        guard position + count <= buffer.count,
              memcmp(buffer.baseAddress! + position, text.utf8Start, count) == 0 else { throw error("invalid literal") }
        position += count
        return value
    }

    mutating func number() throws(JSONParseError) -> Double {
        let start = position
        if position < buffer.count, buffer[position] == UInt8(ascii: "-") { position += 1 }
        let integerStart = position
        while position < buffer.count, buffer[position] >= 0x30, buffer[position] <= 0x39 { position += 1 }
        let integerDigits = position - integerStart
        guard integerDigits > 0 else {
            position = start
            throw error("invalid value")
        }
        if integerDigits > 1, buffer[integerStart] == 0x30 { throw JSONParseError(message: "leading zero in a number", offset: integerStart) }
        if position < buffer.count, buffer[position] == UInt8(ascii: ".") {
            position += 1
            let fractionStart = position
            while position < buffer.count, buffer[position] >= 0x30, buffer[position] <= 0x39 { position += 1 }
            guard position > fractionStart else { throw error("digits expected after '.'") }
        }
        if position < buffer.count, buffer[position] == UInt8(ascii: "e") || buffer[position] == UInt8(ascii: "E") {
            position += 1
            if position < buffer.count, buffer[position] == UInt8(ascii: "+") || buffer[position] == UInt8(ascii: "-") { position += 1 }
            let exponentStart = position
            while position < buffer.count, buffer[position] >= 0x30, buffer[position] <= 0x39 { position += 1 }
            guard position > exponentStart else { throw error("digits expected in the exponent") }
        }
        if let exact = Self.exactDecimal(UnsafeBufferPointer(rebasing: buffer[start..<position])) { return exact }
        let text = String(decoding: UnsafeBufferPointer(rebasing: buffer[start..<position]), as: UTF8.self)
        guard let value = Double(text), value.isFinite else { throw JSONParseError(message: "number out of range", offset: start) }
        return value
    }

    /// Clinger's fast path for a well-formed number without exponent: with at most 15 significant
    /// digits the digits are an exact Double and so is 10^k for k <= 22, so one division gives the
    /// correctly rounded value, the same one strtod gives. Anything longer goes to strtod.
    static func exactDecimal(_ token: UnsafeBufferPointer<UInt8>) -> Double? {
        var index = 0
        let negative = token.first == UInt8(ascii: "-")
        if negative { index = 1 }
        var mantissa: UInt64 = 0
        var digits = 0
        var fractionDigits = 0
        var inFraction = false
        while index < token.count {
            let byte = token[index]
            if byte == UInt8(ascii: ".") {
                inFraction = true
            } else if byte >= 0x30 && byte <= 0x39 {
                mantissa = mantissa &* 10 &+ UInt64(byte &- 0x30)
                digits += 1
                if inFraction { fractionDigits += 1 }
                if digits > 15 { return nil }
            } else {
                return nil  // an exponent
            }
            index += 1
        }
        var divisor = 1.0
        for _ in 0..<fractionDigits { divisor *= 10 }  // exact: every 10^k up to 10^22 is a Double
        let magnitude = Double(mantissa) / divisor
        return negative ? -magnitude : magnitude
    }

    /// A string starting at the opening quote; escapes decoded, UTF-8 validated.
    mutating func string() throws(JSONParseError) -> String {
        position += 1
        let start = position
        // Fast path: no escapes, ASCII or valid UTF-8 up to the closing quote.
        var hasEscape = false
        var nonASCII: UInt8 = 0
        var end = position
        while end < buffer.count {
            let byte = buffer[end]
            nonASCII |= byte & 0x80
            if byte == UInt8(ascii: "\"") { break }
            if byte == 0x5C {
                hasEscape = true
                break
            }
            if byte < 0x20 {
                position = end
                throw error("control character in a string")
            }
            end += 1
        }
        if !hasEscape {
            guard end < buffer.count else {
                position = end
                throw error("unterminated string")
            }
            let slice = UnsafeBufferPointer(rebasing: buffer[start..<end])
            // ASCII needs no validation (and the generic validating initializer costs more than the copy).
            if nonASCII == 0 {
                position = end + 1
                return String(decoding: slice, as: UTF8.self)
            }
            guard let text = String(validating: slice, as: UTF8.self) else {
                position = start
                throw error("invalid UTF-8 in a string")
            }
            position = end + 1
            return text
        }
        var bytes: [UInt8] = Array(UnsafeBufferPointer(rebasing: buffer[start..<end]))
        position = end
        while position < buffer.count {
            let byte = buffer[position]
            switch byte {
            case UInt8(ascii: "\""):
                position += 1
                guard let text = String(validating: bytes, as: UTF8.self) else {
                    position = start
                    throw error("invalid UTF-8 in a string")
                }
                return text
            case 0x5C:
                guard position + 1 < buffer.count else { throw error("unterminated string") }
                let escape = buffer[position + 1]
                position += 2
                switch escape {
                case UInt8(ascii: "\""): bytes.append(0x22)
                case 0x5C: bytes.append(0x5C)
                case UInt8(ascii: "/"): bytes.append(0x2F)
                case UInt8(ascii: "b"): bytes.append(0x08)
                case UInt8(ascii: "f"): bytes.append(0x0C)
                case UInt8(ascii: "n"): bytes.append(0x0A)
                case UInt8(ascii: "r"): bytes.append(0x0D)
                case UInt8(ascii: "t"): bytes.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard position + 1 < buffer.count, buffer[position] == 0x5C, buffer[position + 1] == UInt8(ascii: "u") else {
                            throw error("unpaired surrogate in a string")
                        }
                        position += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate in a string") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw error("unpaired surrogate in a string")
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                    bytes.append(contentsOf: String(unicode).utf8)
                default:
                    position -= 2
                    throw error("invalid escape in a string")
                }
            default:
                if byte < 0x20 { throw error("control character in a string") }
                bytes.append(byte)
                position += 1
            }
        }
        throw error("unterminated string")
    }

    mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard position + 4 <= buffer.count else { throw error("invalid \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = buffer[position]
            let digit: UInt8
            switch byte {
            case 0x30...0x39: digit = byte - 0x30
            case 0x41...0x46: digit = byte - 0x41 + 10
            case 0x61...0x66: digit = byte - 0x61 + 10
            default: throw error("invalid \\u escape")
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }
}

/// Appends JSON text to a byte buffer; the one encoder of the request path.
public struct JSONWriter {
    public var bytes: [UInt8] = []

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    public mutating func raw(_ text: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    public mutating func string(_ value: String) {
        bytes.append(0x22)
        var value = value
        value.withUTF8 { utf8 in
            var runStart = 0
            for index in 0..<utf8.count {
                let byte = utf8[index]
                guard byte < 0x20 || byte == 0x22 || byte == 0x5C else { continue }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
                switch byte {
                case 0x22: bytes += [0x5C, 0x22]
                case 0x5C: bytes += [0x5C, 0x5C]
                case 0x0A: bytes += [0x5C, UInt8(ascii: "n")]
                case 0x0D: bytes += [0x5C, UInt8(ascii: "r")]
                case 0x09: bytes += [0x5C, UInt8(ascii: "t")]
                // Short forms wherever JSON has them: a string is never written longer than the
                // request spelled it, so an envelope never outgrows its request body.
                case 0x08: bytes += [0x5C, UInt8(ascii: "b")]
                case 0x0C: bytes += [0x5C, UInt8(ascii: "f")]
                default:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    bytes += [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
                }
                runStart = index + 1
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<utf8.count]))
        }
        bytes.append(0x22)
    }

    public mutating func number(_ value: Double) {
        guard value.isFinite else { return null() }  // JSON has no NaN or infinity
        if value == value.rounded(), abs(value) < 1e15 {
            integer(Int64(value))
        } else {
            bytes.append(contentsOf: value.description.utf8)
        }
    }

    public mutating func integer<T: BinaryInteger>(_ value: T) { bytes.append(contentsOf: String(value).utf8) }

    public mutating func bool(_ value: Bool) {
        if value { raw("true") } else { raw("false") }
    }

    public mutating func null() { raw("null") }

    /// `[` the elements, each written by `element`, comma-separated, `]`.
    public mutating func array<Elements: Sequence>(_ elements: Elements, _ element: (inout JSONWriter, Elements.Element) -> Void) {
        bytes.append(UInt8(ascii: "["))
        var first = true
        for value in elements {
            if !first { bytes.append(UInt8(ascii: ",")) }
            first = false
            element(&self, value)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    /// `"key":` (with a leading comma unless `first`).
    public mutating func key(_ key: StaticString, first: Bool = false) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        bytes.append(0x22)
        raw(key)
        bytes += [0x22, UInt8(ascii: ":")]
    }
}

// MARK: Reading without a tree (the envelope decoder's hot path)

extension JSONParser {
    /// Reads the object at the current position, calling `member` with each key and the parser
    /// positioned at its value, which the callee reads. False when the object is malformed or
    /// `member` returns false; nothing is thrown, the caller falls back to the general path.
    mutating func members(_ member: (String, inout JSONParser) -> Bool) -> Bool {
        skipWhitespace()
        guard position < buffer.count, buffer[position] == UInt8(ascii: "{") else { return false }
        position += 1
        skipWhitespace()
        if position < buffer.count, buffer[position] == UInt8(ascii: "}") {
            position += 1
            return true
        }
        while true {
            skipWhitespace()
            var key: String?
            guard directString(&key), let key else { return false }
            skipWhitespace()
            guard position < buffer.count, buffer[position] == UInt8(ascii: ":") else { return false }
            position += 1
            skipWhitespace()
            guard member(key, &self) else { return false }
            skipWhitespace()
            guard position < buffer.count else { return false }
            switch buffer[position] {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"):
                position += 1
                return true
            default: return false
            }
        }
    }

    /// A string value into `value`; false when there is none here.
    mutating func directString(_ value: inout String?) -> Bool {
        guard position < buffer.count, buffer[position] == UInt8(ascii: "\""), let text = try? string() else { return false }
        value = text
        return true
    }

    /// A number value into `value`; false when there is none here.
    mutating func directNumber(_ value: inout Double?) -> Bool {
        guard position < buffer.count, buffer[position] == UInt8(ascii: "-") || (buffer[position] >= 0x30 && buffer[position] <= 0x39),
              let number = try? number() else { return false }
        value = number
        return true
    }

    /// `true` or `false` into `value`; false when there is neither here.
    mutating func directBool(_ value: inout Bool?) -> Bool {
        guard position < buffer.count else { return false }
        switch buffer[position] {
        case UInt8(ascii: "t"): guard (try? literal("true", .bool(true))) != nil else { return false }
            value = true
        case UInt8(ascii: "f"): guard (try? literal("false", .bool(false))) != nil else { return false }
            value = false
        default: return false
        }
        return true
    }
}
