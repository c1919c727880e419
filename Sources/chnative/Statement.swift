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
            // `... FORMAT Name` as the last words (a `;` may follow), Name an output format's:
            // `ORDER BY format DESC` ends in the same two words' shape.
            if words.count >= 2, words[words.count - 2].word == "FORMAT", Self.outputFormats.contains(words[words.count - 1].word),
               bytes[words[words.count - 1].range.upperBound...].allSatisfy({ Self.isSpace($0) || $0 == UInt8(ascii: ";") }) {
                let format = words[words.count - 1]
                self = .query(sql: string(0..<words[words.count - 2].range.lowerBound), outputFormat: string(format.range))
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
            var start = keyword.range.upperBound
            while start < bytes.count, Self.isSpace(bytes[start]) { start += 1 }
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

    /// ClickHouse's output format names, upper-cased (those chnative writes and those it refuses).
    static let outputFormats: Set<String> = [
        "TABSEPARATED", "TSV", "TABSEPARATEDWITHNAMES", "TSVWITHNAMES", "JSONEACHROW", "NATIVE", "NULL",
        "TABSEPARATEDRAW", "TSVRAW", "TABSEPARATEDWITHNAMESANDTYPES", "TSVWITHNAMESANDTYPES", "CSV", "CSVWITHNAMES",
        "CSVWITHNAMESANDTYPES", "JSON", "JSONCOMPACT", "JSONCOMPACTEACHROW", "JSONSTRINGSEACHROW", "NDJSON", "JSONLINES",
        "XML", "VERTICAL", "PRETTY", "PRETTYCOMPACT", "PRETTYSPACE", "MARKDOWN", "VALUES", "ROWBINARY",
        "ROWBINARYWITHNAMESANDTYPES", "PARQUET", "ARROW", "ORC", "AVRO", "PROTOBUF", "TEMPLATE", "RAWBLOB", "LINEASSTRING",
    ]

    private static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }
}
