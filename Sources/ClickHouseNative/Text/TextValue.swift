/// A value read from a text format before it meets its column type: the text of a scalar, NULL,
/// or the parts of an array, tuple or map. The text formats parse into this tree; the typed
/// builders in ``TextColumnBuilder`` turn it into column values.
indirect enum TextValue: Sendable {
    case null
    /// Unescaped bytes of a scalar: a string's contents or a number's, date's, ... spelling.
    case text([UInt8])
    /// `[a, b]` (also a JSON array for a Tuple).
    case list([TextValue])
    /// `(a, b)`.
    case tuple([TextValue])
    /// `{k: v}` (a Map, or a JSON object for a named Tuple).
    case object([(key: TextValue, value: TextValue)])

    var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// Short description for error messages.
    var preview: String {
        switch self {
        case .null: return "NULL"
        case let .text(bytes):
            let text = String(decoding: bytes.prefix(40), as: UTF8.self)
            return "'" + text + (bytes.count > 40 ? "…" : "") + "'"
        case let .list(items): return "an array of \(items.count)"
        case let .tuple(items): return "a tuple of \(items.count)"
        case let .object(pairs): return "an object of \(pairs.count)"
        }
    }
}

/// Why text input could not be read: the format, the position and the reason.
public struct TextInputError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Parses ClickHouse's quoted value syntax, used for composite values inside TabSeparated fields
/// (`[1,2]`, `['a','b\'c']`, `(1,'x')`, `{'k':1}`, `NULL`).
struct QuotedValueParser {
    let bytes: [UInt8]
    /// Where the text being parsed starts (error messages count from here).
    let start: Int
    var position: Int

    init(_ bytes: [UInt8], position: Int = 0) {
        self.bytes = bytes
        self.start = position
        self.position = position
    }

    /// The whole input as one value; trailing characters are an error.
    static func parse(_ bytes: [UInt8]) throws -> TextValue {
        var parser = QuotedValueParser(bytes)
        let value = try parser.value()
        parser.skipSpaces()
        guard parser.position == bytes.count else { throw parser.error("unexpected text after the value") }
        return value
    }

    func error(_ reason: String) -> TextInputError {
        TextInputError("cannot parse \(String(decoding: bytes[start...].prefix(80), as: UTF8.self)) at offset \(position - start): \(reason)")
    }

    mutating func skipSpaces() {
        while position < bytes.count, bytes[position] == 0x20 || bytes[position] == 0x09 || bytes[position] == 0x0A || bytes[position] == 0x0D {
            position += 1
        }
    }

    mutating func value() throws -> TextValue {
        skipSpaces()
        guard position < bytes.count else { throw error("a value is missing") }
        switch bytes[position] {
        case UInt8(ascii: "'"): return .text(try quotedString())
        case UInt8(ascii: "["): return .list(try sequence(close: UInt8(ascii: "]")))
        case UInt8(ascii: "("): return .tuple(try sequence(close: UInt8(ascii: ")")))
        case UInt8(ascii: "{"):
            position += 1
            var pairs: [(key: TextValue, value: TextValue)] = []
            skipSpaces()
            if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
                position += 1
                return .object(pairs)
            }
            while true {
                let key = try value()
                skipSpaces()
                guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw error("':' expected in a map") }
                position += 1
                pairs.append((key, try value()))
                skipSpaces()
                guard position < bytes.count else { throw error("'}' expected") }
                if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
                guard bytes[position] == UInt8(ascii: "}") else { throw error("',' or '}' expected") }
                position += 1
                return .object(pairs)
            }
        default:
            let start = position
            while position < bytes.count, !Self.delimiters.contains(bytes[position]) { position += 1 }
            let token = Array(bytes[start..<position])
            guard !token.isEmpty else { throw error("a value is missing") }
            if token.count == 4, String(decoding: token, as: UTF8.self).uppercased() == "NULL" { return .null }
            return .text(token)
        }
    }

    static let delimiters: Set<UInt8> = [UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: ")"), UInt8(ascii: "}"),
                                         UInt8(ascii: ":"), 0x20, 0x09, 0x0A, 0x0D]

    mutating func sequence(close: UInt8) throws -> [TextValue] {
        position += 1
        var items: [TextValue] = []
        skipSpaces()
        if position < bytes.count, bytes[position] == close {
            position += 1
            return items
        }
        while true {
            items.append(try value())
            skipSpaces()
            guard position < bytes.count else { throw error("'\(Character(UnicodeScalar(close)))' expected") }
            if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
            guard bytes[position] == close else { throw error("',' or '\(Character(UnicodeScalar(close)))' expected") }
            position += 1
            return items
        }
    }

    /// A single-quoted string with ClickHouse's backslash escapes (and `''` for a quote).
    mutating func quotedString() throws -> [UInt8] {
        position += 1
        var out: [UInt8] = []
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "'") {
                if position + 1 < bytes.count, bytes[position + 1] == UInt8(ascii: "'") {
                    out.append(byte)
                    position += 2
                    continue
                }
                position += 1
                return out
            }
            if byte == 0x5C {
                guard let (decoded, next) = try Escapes.decode(bytes[...], after: position) else {
                    position = bytes.count  // the input ends inside the escape
                    break
                }
                out.append(contentsOf: decoded)
                position = next
                continue
            }
            out.append(byte)
            position += 1
        }
        throw error("the string is not closed")
    }
}

/// ClickHouse's backslash escapes in text formats, read as current servers read them
/// (`parseComplexEscapeSequence`): `\xHH` is a byte, `\N` inside a field stands for nothing, the
/// C escapes are their control characters, `\\ \' \" \` \/ \=` and a backslash before any control
/// character (a real newline or tab) give that character, and any other escape keeps its backslash
/// (`'100\%'` stays `100\%`, for LIKE patterns; servers before about 20.x dropped it).
enum Escapes {
    /// The bytes that the escape starting at `bytes[backslash]` stands for, and the index after it;
    /// nil when the input ends inside it (more may come); an error for a malformed `\x`.
    static func decode(_ bytes: ArraySlice<UInt8>, after backslash: Int) throws -> (bytes: [UInt8], next: Int)? {
        let index = backslash + 1
        guard index < bytes.endIndex else { return nil }
        let byte = bytes[index]
        switch byte {
        case UInt8(ascii: "x"):
            guard index + 2 < bytes.endIndex else { return nil }
            guard let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) else {
                throw TextInputError("cannot parse escape sequence \\x\(String(decoding: bytes[(index + 1)...(index + 2)], as: UTF8.self))")
            }
            return ([high << 4 | low], index + 3)
        case UInt8(ascii: "N"): return ([], index + 1)
        case UInt8(ascii: "b"): return ([0x08], index + 1)
        case UInt8(ascii: "f"): return ([0x0C], index + 1)
        case UInt8(ascii: "n"): return ([0x0A], index + 1)
        case UInt8(ascii: "r"): return ([0x0D], index + 1)
        case UInt8(ascii: "t"): return ([0x09], index + 1)
        case UInt8(ascii: "0"): return ([0x00], index + 1)
        case UInt8(ascii: "a"): return ([0x07], index + 1)
        case UInt8(ascii: "v"): return ([0x0B], index + 1)
        case 0x5C, UInt8(ascii: "'"), UInt8(ascii: "\""), UInt8(ascii: "`"), UInt8(ascii: "/"), UInt8(ascii: "="), ..<0x20, 0x7F:
            return ([byte], index + 1)
        default: return ([0x5C, byte], index + 1)
        }
    }

    /// A TabSeparated field without its escapes (a field never ends inside one: the line reader
    /// keeps an escaped tab or newline in its field).
    static func unescapeField(_ field: ArraySlice<UInt8>) throws -> [UInt8] {
        guard field.contains(0x5C) else { return Array(field) }
        var out: [UInt8] = []
        out.reserveCapacity(field.count)
        var index = field.startIndex
        while index < field.endIndex {
            let byte = field[index]
            if byte == 0x5C {
                guard let (decoded, next) = try decode(field, after: index) else {
                    throw TextInputError("cannot parse escape sequence at the end of a field")
                }
                out.append(contentsOf: decoded)
                index = next
            } else {
                out.append(byte)
                index += 1
            }
        }
        return out
    }
}
