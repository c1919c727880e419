import ClickHouseNative

/// What chnative does with a statement. Over the native protocol the server reads an INSERT's
/// rows only as blocks from the client: data written inline after `VALUES` or `FORMAT X` in the
/// query text is ignored, and an INSERT without data waits for blocks. So, as clickhouse-client
/// does, the client splits the text: an `INSERT ... SELECT` runs as a query, an INSERT with data
/// sends the statement up to its data and the data as blocks, and a `FORMAT` at the end of any
/// other query picks the output format instead of going to the server.
enum Statement: Equatable {
    /// A query whose result is printed; `outputFormat` is the trailing `FORMAT` clause's name, taken out of `sql`.
    case query(sql: String, outputFormat: String?)
    /// An INSERT whose rows come from the client: `sql` ends in `VALUES`, the rows are `inline`
    /// (the text after `VALUES` or after `FORMAT X` and its line end) or, when that is nil, standard input.
    case insert(sql: String, format: String, inline: [UInt8]?)

    init(_ text: String) {
        let words = SQLText.topLevelWords(text)
        let bytes = Array(text.utf8)
        func string(_ range: Range<Int>) -> String { String(decoding: bytes[range], as: UTF8.self) }
        guard let first = words.first, first.word == "INSERT" else {
            // `... FORMAT Name` as the last words (spaces, comments and a `;` may follow), Name one
            // of ClickHouse's output formats: the server ignores the clause over this protocol, so
            // one that went to it would print TabSeparated as if asked for. A column named
            // `format` before such a word (`ORDER BY format DESC`, `WHERE format = 1`, `ORDER BY
            // a, format ASC`, `ADD COLUMN format JSON`) is not the clause.
            if words.count >= 2, words[words.count - 2].word == "FORMAT", Self.outputFormats.contains(words[words.count - 1].word),
               Self.skipSpacesAndComments(bytes, from: words[words.count - 1].range.upperBound, alsoSemicolons: true) == bytes.count,
               !Self.followsListPosition(bytes, words: words, index: words.count - 2) {
                let format = words[words.count - 1]
                self = .query(sql: string(0..<words[words.count - 2].range.lowerBound), outputFormat: string(format.range))
            } else if let clause = words.indices.last(where: { words[$0].word == "FORMAT" }), clause + 2 < words.count,
                      Self.outputFormats.contains(words[clause + 1].word), words[clause + 2].word == "SETTINGS",
                      !Self.followsListPosition(bytes, words: words, index: clause) {
                // `FORMAT Name SETTINGS ...`, which current servers accept too: the settings stay
                // (18.16 takes them only before FORMAT, which is where they go, joined to a
                // SETTINGS clause already there: it takes one only).
                let joined = words[..<clause].contains { $0.word == "SETTINGS" }
                let settings = joined ? ", " + string(words[clause + 2].range.upperBound..<bytes.count) : string(words[clause + 2].range.lowerBound..<bytes.count)
                self = .query(sql: string(0..<words[clause].range.lowerBound) + settings, outputFormat: string(words[clause + 1].range))
            } else {
                self = .query(sql: text, outputFormat: nil)
            }
            return
        }
        guard let clause = SQLText.insertClause(words) else {
            // `INSERT INTO t` alone: Native blocks from standard input. `VALUES` goes before a final
            // `;`, on a line of its own (after a trailing `-- comment`).
            var end = bytes.count
            while end > 0, Self.isSpace(bytes[end - 1]) || bytes[end - 1] == UInt8(ascii: ";") { end -= 1 }
            self = .insert(sql: string(0..<end) + "\nVALUES", format: "Native", inline: nil)
            return
        }
        let keyword = words[clause]
        switch keyword.word {
        case "SELECT", "WITH":
            self = .query(sql: text, outputFormat: nil)
        case "VALUES":
            // The rows start after spaces and comments (as clickhouse-client's parser reads them).
            let start = Self.skipSpacesAndComments(bytes, from: keyword.range.upperBound, alsoSemicolons: false)
            self = .insert(sql: string(0..<keyword.range.upperBound), format: "Values", inline: Self.data(bytes[start...]))
        default:  // FORMAT Name, then the data after spaces and one line end
            guard clause + 1 < words.count else {
                self = .insert(sql: text, format: "", inline: nil)
                return
            }
            let name = words[clause + 1]
            var start = name.range.upperBound
            while start < bytes.count, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
            if start < bytes.count, bytes[start] == 0x0D { start += 1 }
            if start < bytes.count, bytes[start] == 0x0A { start += 1 }
            self = .insert(sql: string(0..<keyword.range.lowerBound) + "VALUES", format: string(name.range), inline: Self.data(bytes[start...]))
        }
    }

    /// Inline data, or nil when there is none (only spaces or a final `;`): the rows come from standard input.
    private static func data(_ rest: ArraySlice<UInt8>) -> [UInt8]? {
        rest.allSatisfy { isSpace($0) || $0 == UInt8(ascii: ";") } ? nil : Array(rest)
    }

    /// ClickHouse's output format names, upper-cased (`system.formats WHERE is_output` of 26.x, plus
    /// VerticalRaw, ODBCDriver and CapnProto of older servers): chnative writes a few and refuses
    /// the others.
    static let outputFormats: Set<String> = [
        "ARROW", "ARROWSTREAM", "AVRO", "AVROCONFLUENT", "BSONEACHROW", "BUFFERS", "CAPNPROTO", "CSV",
        "CSVWITHNAMES", "CSVWITHNAMESANDTYPES", "CUSTOMSEPARATED", "CUSTOMSEPARATEDWITHNAMES",
        "CUSTOMSEPARATEDWITHNAMESANDTYPES", "GEOJSON", "HASH", "HIVETEXT", "JSON", "JSONCOLUMNS",
        "JSONCOLUMNSWITHMETADATA", "JSONCOMPACT", "JSONCOMPACTCOLUMNS", "JSONCOMPACTEACHROW",
        "JSONCOMPACTEACHROWWITHNAMES", "JSONCOMPACTEACHROWWITHNAMESANDTYPES", "JSONCOMPACTEACHROWWITHPROGRESS",
        "JSONCOMPACTSTRINGS", "JSONCOMPACTSTRINGSEACHROW", "JSONCOMPACTSTRINGSEACHROWWITHNAMES",
        "JSONCOMPACTSTRINGSEACHROWWITHNAMESANDTYPES", "JSONCOMPACTSTRINGSEACHROWWITHPROGRESS", "JSONEACHROW",
        "JSONEACHROWWITHPROGRESS", "JSONL", "JSONLINES", "JSONOBJECTEACHROW", "JSONSTRINGS", "JSONSTRINGSEACHROW",
        "JSONSTRINGSEACHROWWITHPROGRESS", "LINEASSTRING", "LINEASSTRINGWITHNAMES", "LINEASSTRINGWITHNAMESANDTYPES",
        "MARKDOWN", "MD", "MSGPACK", "MYSQLWIRE", "NATIVE", "NDJSON", "NPY", "NULL", "ODBCDRIVER", "ODBCDRIVER2",
        "ORC", "PARQUET", "PNG", "POSTGRESQLWIRE", "PRETTY", "PRETTYCOMPACT", "PRETTYCOMPACTMONOBLOCK",
        "PRETTYCOMPACTNOESCAPES", "PRETTYCOMPACTNOESCAPESMONOBLOCK", "PRETTYJSONEACHROW", "PRETTYJSONLINES",
        "PRETTYMONOBLOCK", "PRETTYNDJSON", "PRETTYNOESCAPES", "PRETTYNOESCAPESMONOBLOCK", "PRETTYSPACE",
        "PRETTYSPACEMONOBLOCK", "PRETTYSPACENOESCAPES", "PRETTYSPACENOESCAPESMONOBLOCK", "PROMETHEUS", "PROTOBUF",
        "PROTOBUFLIST", "PROTOBUFSINGLE", "RAW", "RAWBLOB", "RAWWITHNAMES", "RAWWITHNAMESANDTYPES", "ROWBINARY",
        "ROWBINARYWITHNAMES", "ROWBINARYWITHNAMESANDTYPES", "SQLINSERT", "TABSEPARATED", "TABSEPARATEDRAW",
        "TABSEPARATEDRAWWITHNAMES", "TABSEPARATEDRAWWITHNAMESANDTYPES", "TABSEPARATEDWITHNAMES",
        "TABSEPARATEDWITHNAMESANDTYPES", "TEMPLATE", "TSKV", "TSV", "TSVRAW", "TSVRAWWITHNAMES",
        "TSVRAWWITHNAMESANDTYPES", "TSVWITHNAMES", "TSVWITHNAMESANDTYPES", "VALUES", "VERTICAL", "VERTICALRAW",
        "XML",
    ]

    /// A query's `INTO OUTFILE 'file'`, which clickhouse-client handles itself (the server ignores it).
    static func writesToFile(_ text: String) -> Bool {
        let words = SQLText.topLevelWords(text)
        guard words.first?.word != "INSERT" else { return false }
        return zip(words, words.dropFirst()).contains { $0.word == "INTO" && $1.word == "OUTFILE" }
    }

    /// Whether the word at `index` follows `BY`, `COLUMN` or a comma: it is then an item of an
    /// ORDER BY, GROUP BY or other list, or a column's name, not a clause keyword.
    private static func followsListPosition(_ bytes: [UInt8], words: [(word: String, range: Range<Int>)], index: Int) -> Bool {
        guard index > 0 else { return false }
        if ["BY", "COLUMN"].contains(words[index - 1].word) { return true }
        var position = words[index].range.lowerBound
        while position > words[index - 1].range.upperBound, isSpace(bytes[position - 1]) { position -= 1 }
        return position > 0 && bytes[position - 1] == UInt8(ascii: ",")
    }

    /// The index after the spaces and comments (and `;` when asked) from `start`.
    static func skipSpacesAndComments(_ bytes: [UInt8], from start: Int, alsoSemicolons: Bool) -> Int {
        var index = start
        while index < bytes.count {
            if isSpace(bytes[index]) || (alsoSemicolons && bytes[index] == UInt8(ascii: ";")) {
                index += 1
            } else if let comment = SQLText.comment(bytes, at: index) {
                guard comment.closed else { return index }  // left for the server to report
                index = comment.end
            } else {
                break
            }
        }
        return index
    }

    private static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }
}
