import Testing
@testable import ClickHouseNative

/// Comments as ClickHouse's lexer reads them (checked with chdb, 26.x): `SELECT 1 # c`, `#!/x`
/// and `SELECT 1 // c` lines are comments, `SELECT 1 #c` is a syntax error, and block comments nest.
@Suite struct SQLTextTests {
    static func words(_ text: String) -> [String] { SQLText.topLevelWords(text).map(\.word) }

    @Test func hashCommentsNeedASpaceOrABang() {
        #expect(Self.words("SELECT 1 # FORMAT JSON\nFROM t") == ["SELECT", "1", "FROM", "T"])
        #expect(Self.words("#!/usr/bin/env chnative\nSELECT 2") == ["SELECT", "2"])
        #expect(Self.words("SELECT 1 #c") == ["SELECT", "1", "C"])
    }

    /// Found in review: `//` comments (18.16 has them too) were read as words, so an INSERT with
    /// `// copy values` before its SELECT was taken for one with VALUES.
    @Test func doubleSlashCommentsRunToTheLineEnd() {
        #expect(Self.words("INSERT INTO t // copy values\nSELECT * FROM s") == ["INSERT", "INTO", "T", "SELECT", "FROM", "S"])
        #expect(!SQLText.isInsertOfClientRows("INSERT INTO t // copy values\nSELECT * FROM s"))
        #expect(Self.words("SELECT 4 / 2") == ["SELECT", "4", "2"])
    }

    @Test func blockCommentsNest() {
        #expect(Self.words("SELECT /* a /* VALUES */ FORMAT */ x") == ["SELECT", "X"])
        let text = Array("x /* a /* b */ c */ y".utf8)
        #expect(SQLText.comment(text, at: 2).map { [$0.end, $0.closed ? 1 : 0] } == [19, 1])
        let unclosed = Array("x /* a /* b */".utf8)
        #expect(SQLText.comment(unclosed, at: 2).map { [$0.end, $0.closed ? 1 : 0] } == [unclosed.count, 0])
        #expect(Self.words("SELECT /* VALUES") == ["SELECT"])
    }

    @Test func otherTextIsNoComment() {
        #expect(SQLText.comment(Array("-x".utf8), at: 0) == nil)
        #expect(SQLText.comment(Array("/".utf8), at: 0) == nil)
        #expect(SQLText.comment(Array("#".utf8), at: 0) == nil)
        #expect(SQLText.comment(Array("-- to the end".utf8), at: 0).map(\.end) == 13)
    }
}
