/// Just enough of SQL's lexical structure to tell what kind of statement a text is, as a client
/// must before sending it: an INSERT whose rows follow in the text or come from the client cannot
/// go as an ordinary query (the server waits for blocks).
public enum SQLText {
    /// The words outside parentheses, brackets, quotes and comments, upper-cased, with their byte
    /// ranges; a word after a `.` (`db.values`) is a name part, not a keyword, and is left out.
    public static func topLevelWords(_ text: String) -> [(word: String, range: Range<Int>)] {
        let bytes = Array(text.utf8)
        var words: [(word: String, range: Range<Int>)] = []
        var depth = 0
        var index = 0
        func isWordByte(_ byte: UInt8) -> Bool {
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x5F || byte >= 0x80
        }
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "-") || byte == UInt8(ascii: "/") || byte == UInt8(ascii: "#"), let comment = comment(bytes, at: index) {
                index = comment.end
                continue
            }
            switch byte {
            case UInt8(ascii: "'"), UInt8(ascii: "\""), UInt8(ascii: "`"):
                index += 1
                while index < bytes.count, bytes[index] != byte {
                    index += bytes[index] == 0x5C ? 2 : 1
                }
                index += 1  // the closing quote (a doubled quote reads as two strings, which is the same here)
            case UInt8(ascii: "("), UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                index += 1
            case UInt8(ascii: ")"), UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth = max(0, depth - 1)
                index += 1
            default:
                guard isWordByte(byte) else {
                    index += 1
                    continue
                }
                let start = index
                while index < bytes.count, isWordByte(bytes[index]) { index += 1 }
                if depth == 0, start == 0 || bytes[start - 1] != UInt8(ascii: ".") {
                    words.append((String(decoding: bytes[start..<index], as: UTF8.self).uppercased(), start..<index))
                }
            }
            // (an unclosed string or comment ends the scan: the server reports the syntax error)
        }
        return words
    }

    /// The end of the comment that starts at `index`, or nil when none does. As ClickHouse's lexer
    /// reads them: `--`, `//` and `# ` or `#!` (`#` then anything else is not one) to the line's
    /// end, `/* */` nested (as current servers nest them; 18.16 ends one at its first `*/`); an
    /// unclosed block comment runs to the text's end (`closed` false: the server reports it).
    public static func comment(_ bytes: [UInt8], at index: Int) -> (end: Int, closed: Bool)? {
        guard index + 1 < bytes.count else { return nil }
        switch (bytes[index], bytes[index + 1]) {
        case (UInt8(ascii: "-"), UInt8(ascii: "-")), (UInt8(ascii: "/"), UInt8(ascii: "/")), (UInt8(ascii: "#"), UInt8(ascii: " ")),
             (UInt8(ascii: "#"), UInt8(ascii: "!")):
            return (bytes[index...].firstIndex(of: 0x0A) ?? bytes.count, true)
        case (UInt8(ascii: "/"), UInt8(ascii: "*")):
            var position = index + 2
            var depth = 1
            while position + 1 < bytes.count {
                switch (bytes[position], bytes[position + 1]) {
                case (UInt8(ascii: "/"), UInt8(ascii: "*")):
                    depth += 1
                    position += 2
                case (UInt8(ascii: "*"), UInt8(ascii: "/")):
                    depth -= 1
                    position += 2
                    if depth == 0 { return (position, true) }
                default:
                    position += 1
                }
            }
            return (bytes.count, false)
        default:
            return nil
        }
    }

    /// Whether `sql` is an INSERT that expects its rows from the client (`VALUES`, `FORMAT`, or
    /// neither), rather than from a SELECT the server runs.
    public static func isInsertOfClientRows(_ sql: String) -> Bool {
        let words = topLevelWords(sql)
        guard words.first?.word == "INSERT" else { return false }
        return insertClause(words).map { words[$0].word == "VALUES" || words[$0].word == "FORMAT" } ?? true
    }

    /// In an INSERT's words, the index of the one that says where its rows come from: `VALUES` or
    /// `FORMAT` (the client) or `SELECT` or `WITH` (the server); nil when none does (`INSERT INTO t`).
    public static func insertClause(_ words: [(word: String, range: Range<Int>)]) -> Int? {
        words.dropFirst().firstIndex { ["VALUES", "FORMAT", "SELECT", "WITH"].contains($0.word) }
    }
}
