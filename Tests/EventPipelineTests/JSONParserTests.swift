import Foundation
import Testing
@testable import EventPipeline

@Suite struct JSONParserTests {
    static func parse(_ text: String, maximumDepth: Int = 64) throws -> JSONValue {
        try JSONParser.parse(Array(text.utf8), maximumDepth: maximumDepth)
    }

    static func expectError(_ bytes: [UInt8], _ message: String, at offset: Int, maximumDepth: Int = 64,
                            sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: JSONParseError(message: message, offset: offset), sourceLocation: sourceLocation) {
            try JSONParser.parse(bytes, maximumDepth: maximumDepth)
        }
    }

    static func expectError(_ text: String, _ message: String, at offset: Int, maximumDepth: Int = 64,
                            sourceLocation: SourceLocation = #_sourceLocation) {
        expectError(Array(text.utf8), message, at: offset, maximumDepth: maximumDepth, sourceLocation: sourceLocation)
    }

    // MARK: Valid documents

    @Test func literals() throws {
        #expect(try Self.parse("null") == .null)
        #expect(try Self.parse("true") == .bool(true))
        #expect(try Self.parse("false") == .bool(false))
        #expect(try Self.parse(" \t\r\n null \n") == .null)
    }

    @Test func numbers() throws {
        #expect(try Self.parse("0") == .number(0))
        #expect(try Self.parse("-0") == .number(0))
        #expect(try Self.parse("12") == .number(12))
        #expect(try Self.parse("-3.25") == .number(-3.25))
        #expect(try Self.parse("1e3") == .number(1000))
        #expect(try Self.parse("2.5E+1") == .number(25))
        #expect(try Self.parse("1E-2") == .number(0.01))
        #expect(try Self.parse("0.5") == .number(0.5))
        #expect(try Self.parse("1795773600123") == .number(1_795_773_600_123))
        #expect(try Self.parse("12") != .number(13))
        #expect(try Self.parse("12") != .string("12"))
    }

    /// Short decimals take the exact fast path; every value must equal strtod's (Double(String)).
    @Test func numbersMatchStrtodBitForBit() throws {
        var generator = SystemRandomNumberGenerator()
        var texts = ["0", "-0", "0.1", "0.2", "0.3", "123.456", "999999999999999", "99999999999999.9", "0.000000000000001",
                     "1234567890123456", "0.30000000000000004", "9007199254740993", "-12.5", "4291747199999", "1.7976931348623157"]
        for _ in 0..<20_000 {
            let digits = Int.random(in: 1...17, using: &generator)
            var text = Bool.random(using: &generator) ? "-" : ""
            let point = Int.random(in: 0...digits, using: &generator)
            for index in 0..<digits {
                if index == point && index > 0 { text += "." }
                text += String(index == 0 && digits > 1 && point != 1 ? Int.random(in: 1...9, using: &generator) : Int.random(in: 0...9, using: &generator))
            }
            texts.append(text)
        }
        for text in texts {
            guard let reference = Double(text) else { continue }
            guard case let .number(parsed) = try Self.parse(text) else {
                Issue.record("\(text) did not parse as a number")
                continue
            }
            #expect(parsed.bitPattern == reference.bitPattern, "\(text): \(parsed) != \(reference)")
        }
    }

    @Test func strings() throws {
        #expect(try Self.parse("\"\"") == .string(""))
        #expect(try Self.parse(#""abc""#) == .string("abc"))
        #expect(try Self.parse(#""\"\\\/\b\f\n\r\t""#) == .string("\"\\/\u{08}\u{0C}\n\r\t"))
        #expect(try Self.parse(#""\u0041\u00e9\u00E9""#) == .string("Aéé"))
        #expect(try Self.parse(#""\u0000""#) == .string("\u{0}"))
        #expect(try Self.parse(#""\uD83D\uDE00""#) == .string("😀"))
        #expect(try Self.parse(#""\ud834\udd1e x""#) == .string("𝄞 x"))
        #expect(try Self.parse("\"héllo 日本 😀\"") == .string("héllo 日本 😀"))
        #expect(try Self.parse(#""a\nb""#) != .string("a\\nb"))
    }

    @Test func arraysAndObjects() throws {
        #expect(try Self.parse("[]") == .array([]))
        #expect(try Self.parse("{}") == .object([]))
        #expect(try Self.parse(" [ 1 , \"a\" , null , true , [ ] , { } ] ")
            == .array([.number(1), .string("a"), .null, .bool(true), .array([]), .object([])]))
        let nested = try Self.parse(#"{"b":1,"a":{"list":[false,-2.5,"x"]},"c":null}"#)
        #expect(nested == .object([
            ("b", .number(1)),
            ("a", .object([("list", .array([.bool(false), .number(-2.5), .string("x")]))])),
            ("c", .null),
        ]))
        // The same key in different objects is not a duplicate.
        #expect(try Self.parse(#"{"a":{"a":1}}"#) == .object([("a", .object([("a", .number(1))]))]))
    }

    @Test func objectsKeepKeyOrder() throws {
        let value = try Self.parse(#"{"b":1,"a":2}"#)
        #expect(value == .object([("b", .number(1)), ("a", .number(2))]))
        #expect(value != .object([("a", .number(2)), ("b", .number(1))]))
        #expect(value["a"] == .number(2))
        #expect(value["b"] == .number(1))
        #expect(value["c"] == nil)
        #expect(JSONValue.array([.number(1)])["a"] == nil)
    }

    @Test func typeNames() {
        #expect(JSONValue.null.typeName == "null")
        #expect(JSONValue.bool(true).typeName == "boolean")
        #expect(JSONValue.number(1).typeName == "number")
        #expect(JSONValue.string("").typeName == "string")
        #expect(JSONValue.array([]).typeName == "array")
        #expect(JSONValue.object([]).typeName == "object")
    }

    // MARK: Errors and their offsets

    @Test func emptyInput() {
        Self.expectError("", "unexpected end of JSON", at: 0)
        Self.expectError("   ", "unexpected end of JSON", at: 3)
        Self.expectError("[1,", "unexpected end of JSON", at: 3)
        Self.expectError(#"{"a":1"#, "unexpected end of JSON", at: 6)
    }

    @Test func trailingData() {
        Self.expectError(#"{"a":1} x"#, "unexpected data after the JSON value", at: 8)
        Self.expectError("1 2", "unexpected data after the JSON value", at: 2)
        Self.expectError("[]]", "unexpected data after the JSON value", at: 2)
        Self.expectError("1.5.3", "unexpected data after the JSON value", at: 3)
    }

    @Test func unterminatedString() {
        Self.expectError(#""abc"#, "unterminated string", at: 4)
        // With an escape (the slow path).
        Self.expectError(#""a\n"#, "unterminated string", at: 4)
        Self.expectError(#""\"#, "unterminated string", at: 1)
    }

    @Test func invalidEscape() {
        Self.expectError(#""a\x""#, "invalid escape in a string", at: 2)
        Self.expectError(#"["ok","\q"]"#, "invalid escape in a string", at: 7)
        Self.expectError(#""\u12G4""#, "invalid \\u escape", at: 5)
    }

    @Test func controlCharacterInString() {
        Self.expectError([0x22, 0x61, 0x01, 0x22], "control character in a string", at: 2)
        Self.expectError("\"a\nb\"", "control character in a string", at: 2)
        // After an escape (the slow path).
        Self.expectError([0x22, 0x5C, 0x6E, 0x01, 0x22], "control character in a string", at: 3)
    }

    @Test func invalidUTF8() {
        Self.expectError([0x22, 0xFF, 0x22], "invalid UTF-8 in a string", at: 1)
        Self.expectError([0x5B, 0x22, 0xC0, 0x80, 0x22, 0x5D], "invalid UTF-8 in a string", at: 2)  // overlong NUL
        Self.expectError([0x22, 0xED, 0xA0, 0x80, 0x22], "invalid UTF-8 in a string", at: 1)  // encoded surrogate
        // A truncated sequence after an escape (the slow path).
        Self.expectError([0x22, 0x5C, 0x6E, 0xC3, 0x22], "invalid UTF-8 in a string", at: 1)
    }

    @Test func loneSurrogates() {
        Self.expectError(#""\uD800""#, "unpaired surrogate in a string", at: 7)
        Self.expectError(#""\uDC00""#, "unpaired surrogate in a string", at: 7)
        Self.expectError(#""\uD800\u0041""#, "unpaired surrogate in a string", at: 13)
        Self.expectError(#""\uD800x""#, "unpaired surrogate in a string", at: 7)
    }

    @Test func duplicateKey() {
        Self.expectError(#"{"a":1,"a":2}"#, #"duplicate key "a""#, at: 7)
        Self.expectError(#"{"x":{"k":1,"y":2, "k":3}}"#, #"duplicate key "k""#, at: 19)
        // Escapes are decoded before the comparison.
        Self.expectError(#"{"a":1,"\u0061":2}"#, #"duplicate key "a""#, at: 7)
    }

    @Test func leadingZero() {
        Self.expectError("01", "leading zero in a number", at: 0)
        Self.expectError("[-012]", "leading zero in a number", at: 2)
        Self.expectError("00.5", "leading zero in a number", at: 0)
    }

    @Test func malformedNumbers() {
        Self.expectError("-", "invalid value", at: 0)
        Self.expectError(".5", "invalid value", at: 0)
        Self.expectError("+1", "invalid value", at: 0)
        Self.expectError("[1,]", "invalid value", at: 3)
        Self.expectError("1.", "digits expected after '.'", at: 2)
        Self.expectError("1.e5", "digits expected after '.'", at: 2)
        Self.expectError("1e", "digits expected in the exponent", at: 2)
        Self.expectError("1e+", "digits expected in the exponent", at: 3)
    }

    @Test func numberOutOfRange() {
        Self.expectError("1e400", "number out of range", at: 0)
        Self.expectError("[1,-1e400]", "number out of range", at: 3)
    }

    @Test func structuralErrors() {
        Self.expectError("tru", "invalid literal", at: 0)
        Self.expectError("[nul]", "invalid literal", at: 1)
        Self.expectError("{1:2}", "expected a string key", at: 1)
        Self.expectError(#"{"a":1,}"#, "expected a string key", at: 7)
        Self.expectError(#"{"a" 1}"#, "expected ':'", at: 5)
        Self.expectError("[1 2]", "expected ',' or ']'", at: 3)
        Self.expectError(#"{"a":1 "b":2}"#, "expected ',' or '}'", at: 7)
    }

    @Test func nestingDepth() throws {
        var expected = JSONValue.array([])
        for _ in 1..<64 { expected = .array([expected]) }
        let deepest = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(try Self.parse(deepest) == expected)

        let tooDeep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        Self.expectError(tooDeep, "JSON nested too deeply", at: 64)

        #expect(try Self.parse(#"{"a":{"b":1}}"#, maximumDepth: 2) == .object([("a", .object([("b", .number(1))]))]))
        Self.expectError(#"{"a":{"b":{}}}"#, "JSON nested too deeply", at: 10, maximumDepth: 2)
        Self.expectError("[[[[]]]]", "JSON nested too deeply", at: 3, maximumDepth: 3)
        // Scalars need no depth; containers need one level.
        #expect(try Self.parse("1", maximumDepth: 0) == .number(1))
        Self.expectError("[]", "JSON nested too deeply", at: 0, maximumDepth: 0)
    }

    @Test func errorDescription() {
        #expect(JSONParseError(message: "unterminated string", offset: 4).description == "unterminated string at byte 4")
    }
}

@Suite struct JSONWriterTests {
    static func written(_ text: String) -> String {
        var writer = JSONWriter()
        writer.string(text)
        return String(decoding: writer.bytes, as: UTF8.self)
    }

    @Test func escapesQuotesAndBackslashes() {
        #expect(Self.written("a\"b") == #""a\"b""#)
        #expect(Self.written("a\\b") == #""a\\b""#)
        #expect(Self.written("\\\"") == #""\\\"""#)
        #expect(Self.written("") == "\"\"")
        #expect(Self.written("plain") == "\"plain\"")
        #expect(Self.written("a/b") == "\"a/b\"")
    }

    @Test func escapesControlCharacters() {
        #expect(Self.written("\u{01}") == #""\u0001""#)
        #expect(Self.written("\u{00}") == #""\u0000""#)
        #expect(Self.written("\u{1F}") == #""\u001f""#)
        #expect(Self.written("\u{08}\u{0C}") == #""\b\f""#)
        #expect(Self.written("line\nnext\ttab\rret") == #""line\nnext\ttab\rret""#)
        #expect(Self.written("x\u{01}y\u{02}z") == #""x\u0001y\u0002z""#)
    }

    @Test func nonASCIIPassesThroughUnchanged() {
        let text = "héllo 日本 😀 \u{7F} \u{2028} e\u{301}"
        var writer = JSONWriter()
        writer.string(text)
        #expect(writer.bytes == [0x22] + Array(text.utf8) + [0x22])
    }

    @Test func numbers() {
        func write(_ value: Double) -> String {
            var writer = JSONWriter()
            writer.number(value)
            return String(decoding: writer.bytes, as: UTF8.self)
        }
        #expect(write(3) == "3")
        #expect(write(-0.0) == "0")
        #expect(write(-42) == "-42")
        #expect(write(12.5) == "12.5")
        #expect(write(0.1) == "0.1")
        #expect(write(123_456_789) == "123456789")
        #expect(write(999_999_999_999_999) == "999999999999999")
        // From 1e15 on, integral values are written the way Double prints them (still valid JSON).
        #expect(write(1e15) == "1000000000000000.0")
        #expect(write(1e20) == "1e+20")
    }

    @Test func objectBuilding() throws {
        var writer = JSONWriter()
        writer.raw("{")
        writer.key("a", first: true)
        writer.integer(1)
        writer.key("b")
        writer.bool(true)
        writer.key("c")
        writer.null()
        writer.key("d")
        writer.bool(false)
        writer.key("e")
        writer.integer(Int64(-7))
        writer.raw("}")
        #expect(String(decoding: writer.bytes, as: UTF8.self) == #"{"a":1,"b":true,"c":null,"d":false,"e":-7}"#)
        #expect(try JSONParser.parse(writer.bytes)
            == .object([("a", .number(1)), ("b", .bool(true)), ("c", .null), ("d", .bool(false)), ("e", .number(-7))]))
    }

    static let trickyStrings: [String] = [
        "", "\"", "\\", "\\\"", "\"\\", "\u{0}", "\u{7F}", "é", "e\u{301}", "𝄞", "😀👍🏽", "\u{2028}\u{2029}",
        "\u{FFFD}", "\u{FEFF}", "\u{FFFF}", "/", "</script>", "日本語", "a\"b\\c\nd\re\tf\u{1}g\u{8}h\u{C}i",
        String(String.UnicodeScalarView((0..<0x20).map { Unicode.Scalar(UInt8($0)) })),
        "\r\n", "\\u0041", "\\ud800",
    ]

    static func expectRoundTrip(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        var writer = JSONWriter()
        writer.string(text)
        do {
            let value = try JSONParser.parse(writer.bytes)
            guard case let .string(back) = value else {
                Issue.record("not a string: \(value)", sourceLocation: sourceLocation)
                return
            }
            // Scalar by scalar: String's == would also accept a canonically equivalent text.
            #expect(Array(back.unicodeScalars) == Array(text.unicodeScalars), sourceLocation: sourceLocation)
        } catch {
            Issue.record("writer output of \(text.debugDescription) does not parse: \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func writerOutputParsesBackToTheSameString() {
        for text in Self.trickyStrings { Self.expectRoundTrip(text) }
    }

    @Test func writerOutputParsesBackForGeneratedStrings() {
        let pool: [Unicode.Scalar] = [
            "a", "Z", "0", " ", "\"", "\\", "/", "u", "\n", "\r", "\t", "\u{0}", "\u{1}", "\u{1F}", "\u{7F}", "\u{80}",
            "é", "\u{301}", "€", "\u{D7FF}", "\u{E000}", "\u{FFFF}", "𝄞", "😀", "\u{10FFFF}",
        ]
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
        for _ in 0..<500 {
            var scalars = String.UnicodeScalarView()
            for _ in 0..<next(16) { scalars.append(pool[next(pool.count)]) }
            Self.expectRoundTrip(String(scalars))
        }
    }

    @Test func nonFiniteNumbersAreWrittenAsNull() {
        var json = JSONWriter()
        json.number(.nan)
        json.bytes.append(UInt8(ascii: ","))
        json.number(.infinity)
        #expect(String(decoding: json.bytes, as: UTF8.self) == "null,null")
    }

    @Test func hugeObjectsWithUniqueKeysParseAndLateDuplicatesAreFound() throws {
        // 100k keys: duplicate detection must not compare every key with every earlier one.
        let keys = (0..<100_000).map { "\"k\($0)\":0" }
        let value = try JSONParser.parse(Array(("{" + keys.joined(separator: ",") + "}").utf8))
        guard case let .object(pairs) = value else { Issue.record("not an object"); return }
        #expect(pairs.count == 100_000)
        let duplicated = "{" + keys.joined(separator: ",") + ",\"k5\":1}"
        #expect(throws: JSONParseError(message: "duplicate key \"k5\"", offset: duplicated.utf8.count - 7)) {
            try JSONParser.parse(Array(duplicated.utf8))
        }
    }
}

extension JSONParserTests {
    @Test(arguments: [1, 14, 15, 16, 17, 40])
    func duplicateOfAnyEarlierKeyIsFoundWhateverTheObjectSize(keys: Int) {
        for duplicateOf in 0..<keys {
            let text = "{" + (0..<keys).map { "\"k\($0)\":0" }.joined(separator: ",") + ",\"k\(duplicateOf)\":1}"
            let duplicate = "\"k\(duplicateOf)\":1}"  // the last key, where the parser stops
            #expect(throws: JSONParseError(message: "duplicate key \"k\(duplicateOf)\"", offset: text.utf8.count - duplicate.utf8.count),
                    "\(keys) keys, duplicate of k\(duplicateOf)") { try JSONParser.parse(Array(text.utf8)) }
        }
    }
}

@Suite struct FastUUIDTests {
    @Test func parsesWhatFoundationParsesAndRefusesTheRest() {
        for _ in 0..<1000 {
            let id = UUID()
            #expect(UUID(text: id.uuidString) == id)
            #expect(UUID(text: id.uuidString.lowercased()) == id)
            #expect(id.lowercasedString == id.uuidString.lowercased())
        }
        for bad in ["", "0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9", "0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9dd", "0192f8a48f1e-7c3a-9b2d-4e5f6a7b8c9d0",
                    "0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9g", "{0192f8a4-8f1e-7c3a-9b2d-4e5f6a7b8c9d}"] {
            #expect(UUID(text: bad) == nil, "\(bad)")
        }
    }

    @Test func v7IdsAreDistinct() {
        let ids = Set((0..<100_000).map { _ in UUID.v7(milliseconds: 1_764_000_000_000) })
        #expect(ids.count == 100_000)
    }
}
