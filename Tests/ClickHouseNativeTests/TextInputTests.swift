import Foundation
import Testing
@testable import ClickHouseNative

/// Text input (TabSeparated, TabSeparatedWithNames, JSONEachRow) read into typed blocks.
@Suite struct TextInputTests {
    /// Types whose text form is lossy or absent: NaN/Inf become `null` in JSON, raw bytes are not
    /// valid UTF-8 text, and Variant/Dynamic/JSON have no text input here.
    static func roundTrips(_ fixture: Fixtures.Case, format: TextInputFormat) -> Bool {
        !fixture.hasRawBytes && !fixture.name.contains("fixedstring_n")
            && !(format == .jsonEachRow && (fixture.name.contains("special") || fixture.name.contains("nan") || fixture.name.contains("bfloat16")))
    }

    static func render(_ blocks: [Block], _ format: TextInputFormat, timeZone: String?) -> String {
        let settings = TextFormatSettings(timeZone: timeZone)
        return blocks.enumerated().map { index, block in
            switch format {
            case .tabSeparated: return TabSeparated.render(block, settings: settings)
            case .tabSeparatedWithNames: return TabSeparated.render(block, settings: settings, names: index == 0)
            case .jsonEachRow: return JSONEachRow.render(block, settings: settings)
            }
        }.joined()
    }

    @Test(arguments: Fixtures.smallCases, TextInputFormat.allCases)
    func fixtureTextReadsBackToTheSameText(fixture: Fixtures.Case, format: TextInputFormat) throws {
        guard Self.roundTrips(fixture, format: format) else { return }
        let blocks = try NativeFormat.decodeBlocks(try Fixtures.nativeBytes(fixture))
        guard let first = blocks.first else {
            #expect(fixture.rows == 0, "\(fixture.name) has no block")  // the `empty_*` fixtures
            return
        }
        let structure = first.columns.map { ($0.name, $0.column.type) }
        do {
            _ = try structure.map { try makeTextBuilder(for: $0.1, timeZone: nil) }
        } catch let error as TextInputError {
            // Only Variant, Dynamic, JSON and Nothing have no text input; any other refusal fails.
            let refusable = ["Variant", "Dynamic", "JSON", "Nothing"].contains { error.message.hasPrefix("text input of type \($0)") }
            #expect(refusable && error.message.hasSuffix(" is not supported"), "\(fixture.name): \(error)")
            return
        }
        let text = Self.render(blocks, format, timeZone: fixture.timeZone)
        var decoder = TextInputDecoder(format: format, structure: structure, timeZone: fixture.timeZone, rowsPerBlock: 1000)
        decoder.append(Array(text.utf8))
        var parsed: [Block] = []
        while let block = try decoder.nextBlock(endOfInput: true) { parsed.append(block) }
        try decoder.finish()
        #expect(parsed.reduce(0) { $0 + $1.rowCount } == blocks.reduce(0) { $0 + $1.rowCount })
        #expect(Self.render(parsed, format, timeZone: fixture.timeZone) == text, "\(fixture.name)")
        // And the parsed columns encode to Native that decodes to the same values.
        let reencoded = try NativeFormat.decodeBlocks(try NativeFormat.encodeBlocks(parsed))
        #expect(Self.render(reencoded, format, timeZone: fixture.timeZone) == text)
    }

    @Test func inputSplitAtEveryByteGivesTheSameBlocks() throws {
        let structure = try TextInputDecoder.parseStructure("id UInt32, name String, tags Array(String), score Nullable(Float64)")
        let inputs: [(TextInputFormat, String)] = [
            (.tabSeparated, "1\tone\\ttab\t['a','b\\'c']\t1.5\n2\ttwo\t[]\t\\N\n"),
            (.tabSeparatedWithNames, "name\tid\ttags\tscore\none\t1\t['x']\t-2\n"),
            (.jsonEachRow, "{\"id\":1,\"name\":\"\\u00e9\\n\",\"tags\":[\"a\"],\"score\":null}\n{\"name\":\"no id\"}\n{\"id\":3,\n \"tags\":[]}"),
        ]
        for (format, text) in inputs {
            let bytes = Array(text.utf8)
            var whole = TextInputDecoder(format: format, structure: structure)
            whole.append(bytes)
            let expected = TabSeparated.render(try #require(try whole.nextBlock(endOfInput: true)))
            var pieces = TextInputDecoder(format: format, structure: structure, rowsPerBlock: 1)
            var rendered = ""
            for byte in bytes {
                pieces.append([byte])
                while let block = try pieces.nextBlock() { rendered += TabSeparated.render(block) }
            }
            while let block = try pieces.nextBlock(endOfInput: true) { rendered += TabSeparated.render(block) }
            try pieces.finish()
            #expect(rendered == expected, "\(format)")
        }
    }

    @Test func valuesAreReadAsTheServerReadsThem() throws {
        let structure = try TextInputDecoder.parseStructure(
            "d Date, t DateTime('Asia/Kolkata'), t64 DateTime64(3, 'UTC'), dec Decimal(9, 2), e Enum8('a' = 1, 'b' = 2), ip IPv6, u UUID, lc LowCardinality(Nullable(String)), m Map(String, UInt8), b Bool, big Int256")
        var decoder = TextInputDecoder(format: .jsonEachRow, structure: structure)
        decoder.append(Array("""
            {"d":"2024-02-29","t":"2024-01-01 05:30:00","t64":"2024-01-01 00:00:00.1239","dec":"-1.239","e":"b","ip":"10.0.0.1","u":"01234567-89ab-cdef-0123-456789abcdef","lc":null,"m":{"k":7},"b":true,"big":"-57896044618658097711785492504343953926634992332820282019728792003956564819968"}
            {"d":"0000-00-00","t":1704067200,"e":1,"lc":"x","dec":5}

            """.utf8))
        let block = try #require(try decoder.nextBlock(endOfInput: true))
        #expect(JSONEachRow.render(block) == """
            {"d":"2024-02-29","t":"2024-01-01 05:30:00","t64":"2024-01-01 00:00:00.123","dec":-1.23,"e":"b","ip":"::ffff:10.0.0.1","u":"01234567-89ab-cdef-0123-456789abcdef","lc":null,"m":{"k":7},"b":true,"big":-57896044618658097711785492504343953926634992332820282019728792003956564819968}
            {"d":"1970-01-01","t":"2024-01-01 05:30:00","t64":"1970-01-01 00:00:00.000","dec":5,"e":"a","ip":"::","u":"00000000-0000-0000-0000-000000000000","lc":"x","m":{},"b":false,"big":0}

            """)
    }

    @Test(arguments: [
        (TextInputFormat.tabSeparated, "id UInt8, s String", "1\tok\n300\tx\n", "TabSeparated line 2: column id: cannot parse '300' as UInt8"),
        (.tabSeparated, "id UInt8, s String", "1\n", "TabSeparated line 1: 1 fields, 2 expected (id, s)"),
        (.tabSeparated, "a Array(UInt8)", "[1,2\n", "TabSeparated line 1: column a: cannot parse [1,2 at offset 4: ']' expected"),
        (.tabSeparatedWithNames, "id UInt8, s String", "id\tother\n", "TabSeparatedWithNames: unknown column other in the header (columns: id, s)"),
        (.jsonEachRow, "id UInt8", "{\"id\":1,\"extra\":2}\n", "JSONEachRow line 1: unknown field extra (columns: id)"),
        (.jsonEachRow, "id UInt8", "{\"id\":1}\n[1]\n", "JSONEachRow line 2: an object expected, found an array of 1"),
        (.jsonEachRow, "id UInt8", "{\"id\" 1}", "JSONEachRow line 1: ':' expected at byte 6 of the row"),
        (.jsonEachRow, "id UInt8", "{\"id\":1", "JSONEachRow line 1: the input ends inside a value"),
        (.jsonEachRow, "u UUID", "{\"u\":\"not-a-uuid\"}", "JSONEachRow line 1: column u: cannot parse 'not-a-uuid' as UUID"),
        (.jsonEachRow, "f FixedString(2)", "{\"f\":\"abc\"}", "JSONEachRow line 1: column f: 'abc' is too long for FixedString(2)"),
        (.jsonEachRow, "v Variant(String, UInt8)", "{}", "text input of type Variant(String, UInt8) is not supported"),
    ])
    func badInputIsAnExactError(format: TextInputFormat, structure: String, input: String, message: String) throws {
        var decoder = TextInputDecoder(format: format, structure: try TextInputDecoder.parseStructure(structure))
        decoder.append(Array(input.utf8))
        #expect(throws: TextInputError(message)) {
            while try decoder.nextBlock(endOfInput: true) != nil {}
        }
    }

    @Test func structureNeedsNames() {
        #expect(throws: TextInputError("structure column 1 has no name: UInt8")) {
            try TextInputDecoder.parseStructure("UInt8")
        }
    }
}
