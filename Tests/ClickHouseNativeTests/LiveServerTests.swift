import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Testing
@testable import ClickHouseNative

/// Against the real server that `scripts/services start` runs (ClickHouse 18.16 on CLICKHOUSE_PORT).
@Suite(.serialized) struct LiveServerTests {
    static let environment = ProcessInfo.processInfo.environment
    static let port = Int(environment["CLICKHOUSE_PORT"] ?? "") ?? 9000
    static let securePort = Int(environment["CLICKHOUSE_SECURE_PORT"] ?? "") ?? 9440

    static func configuration(_ compression: CompressionMethod = .lz4) -> ClickHouseConfiguration {
        var configuration = ClickHouseConfiguration(host: "127.0.0.1", port: port, compression: compression)
        configuration.readTimeout = .seconds(60)
        return configuration
    }

    static func connect(_ compression: CompressionMethod = .lz4) async throws -> ClickHouseConnection {
        try await ClickHouseConnection.connect(configuration(compression))
    }

    static func rows(_ blocks: [Block], timeZone: String? = "UTC") -> String {
        blocks.map { JSONEachRow.render($0, timeZone: timeZone) }.joined()
    }

    @Test func handshakeNegotiatesDown() async throws {
        let connection = try await Self.connect()
        let server = await connection.server
        #expect(server.name == "ClickHouse")
        #expect(server.revision == 54412)
        #expect(server.negotiatedRevision == 54412)
        try await connection.ping()
        await connection.close()
    }

    @Test(arguments: CompressionMethod.allCases)
    func simpleSelect(compression: CompressionMethod) async throws {
        let connection = try await Self.connect(compression)
        let blocks = try await connection.collect("SELECT 1 AS x, 'ab' AS s, toDate('2024-03-15') AS d, [1, 2] AS a, NULL AS n")
        #expect(blocks.first?.rowCount == 0, "the first block is the header")
        #expect(Self.rows(blocks) == "{\"x\":1,\"s\":\"ab\",\"d\":\"2024-03-15\",\"a\":[1,2],\"n\":null}\n")
        await connection.close()
    }

    @Test(arguments: CompressionMethod.allCases)
    func tenMillionRowsStreamInBlocks(compression: CompressionMethod) async throws {
        let connection = try await Self.connect(compression)
        var rows = 0
        var sum: UInt64 = 0
        var blocks = 0
        for try await block in try await connection.query("SELECT number FROM system.numbers LIMIT 10000000") {
            guard block.rowCount > 0 else { continue }
            let numbers = try #require(block["number"] as? FixedWidthColumn<UInt64>)
            rows += numbers.count
            sum = numbers.values.reduce(sum, &+)
            blocks += 1
        }
        #expect(rows == 10_000_000)
        #expect(sum == 49_999_995_000_000)
        #expect(blocks > 1)
        try await connection.ping()
        await connection.close()
    }

    /// An exception that is the server's first answer closes the connection
    /// (ConnectionLifecycleTests); through the pool, every query still gets its own answer.
    /// Every setting the client may send to an old server exists there: an unknown one is an
    /// exception that closes the connection. Found in review: `final`, `join_strictness` and
    /// `max_streams_multiplier_for_merge_tables` were listed but 18.16 has none of them.
    @Test func legacySettingsAreAllKnownToTheServer() async throws {
        let connection = try await Self.connect()
        defer { Task { await connection.close() } }
        let names = LegacySettingKind.known.keys.sorted()
        let blocks = try await connection.collect("SELECT name FROM system.settings WHERE name IN (\(names.map { "'\($0)'" }.joined(separator: ", "))) ORDER BY name")
        let known = blocks.flatMap { block in (0..<block.rowCount).map { (block["name"] as! StringColumn)[$0] } }
        #expect(known == names)
    }

    /// Found in review: a second request while a task waited for its result's next block drained
    /// that result, and the waiting task saw it end early, as if complete. Now the second request is
    /// refused and the result stays whole.
    @Test func aRequestWhileAResultIsBeingReadIsRefusedAndTheResultStaysWhole() async throws {
        let connection = try await Self.connect()
        defer { Task { await connection.close() } }
        // One row a second: the reader waits about a second for each block after the first.
        let result = try await connection.query("SELECT number, sleepEachRow(1) AS s FROM numbers(3) SETTINGS max_block_size = 1")
        let (firstBlock, gotFirstBlock) = AsyncStream<Void>.makeStream()
        let reader = Task {
            var rows = 0
            for try await block in result {
                rows += block.rowCount
                if rows == 1 { gotFirstBlock.yield() }
            }
            return rows
        }
        for await _ in firstBlock { break }
        try await Task.sleep(for: .milliseconds(300))  // the reader is inside its wait for the second row (a second long)
        await #expect(throws: ClickHouseConnectionError.busy) { _ = try await connection.query("SELECT 1") }
        await #expect(throws: ClickHouseConnectionError.busy) { try await connection.ping() }
        #expect(try await reader.value == 3)
        #expect(try await connection.collect("SELECT 7 AS n").flatMap { (0..<$0.rowCount).map { _ in 7 } } == [7])
    }

    /// Found in review: `execute("INSERT ... VALUES (...)")` waited for the server's receive timeout
    /// (5 minutes): the server ignores rows in the text and waits for blocks. Refused before sending;
    /// an INSERT ... SELECT still runs as a query.
    @Test func insertsOfClientRowsAreRefusedAsQueries() async throws {
        let connection = try await Self.connect()
        defer { Task { await connection.close() } }
        let refusal = ClickHouseClientError("an INSERT with VALUES or FORMAT takes its rows as blocks: use insert(_:blocks:) (over the native protocol the server ignores rows written in the query text)")
        for sql in ["INSERT INTO t VALUES (1)", "insert into t format JSONEachRow {\"a\":1}", "INSERT INTO t", "/* c */ INSERT INTO db.values (a) VALUES"] {
            await #expect(throws: refusal, "\(sql)") { try await connection.execute(sql) }
        }
        try await connection.execute("CREATE TEMPORARY TABLE copies (n UInt8)")
        try await connection.execute("INSERT INTO copies SELECT 5")
        #expect(try await connection.collect("SELECT n FROM copies").reduce(0) { $0 + $1.rowCount } == 1)
    }

    /// Typed values out of a result, compared with what the server prints for the same query.
    @Test func typedValuesOfAResult() async throws {
        let connection = try await Self.connect()
        defer { Task { await connection.close() } }
        let blocks = try await connection.collect("""
            SELECT toUUID('01234567-89ab-cdef-0123-456789abcdef') AS u, toDate('2024-02-29') AS d,
                   toDateTime('2024-01-01 05:30:00', 'UTC') AS t, 'x' AS s, toFixedString('ab', 3) AS f,
                   if(number = 0, NULL, toString(number)) AS ns, toUInt8(number) AS n, if(number = 1, NULL, number) AS nn
            FROM numbers(2)
            """)
        let block = try #require(blocks.first { $0.rowCount > 0 })
        #expect(try block.uuids("u") == [UUID(uuidString: "01234567-89AB-CDEF-0123-456789ABCDEF")!, UUID(uuidString: "01234567-89AB-CDEF-0123-456789ABCDEF")!])
        #expect(try block.dates("d").map(\.timeIntervalSince1970) == [1_709_164_800, 1_709_164_800])
        #expect(try block.dates("t").map(\.timeIntervalSince1970) == [1_704_087_000, 1_704_087_000])
        #expect(try block.strings("s") == ["x", "x"])
        #expect(try block.strings("f") == ["ab\0", "ab\0"])
        #expect(try block.optionalStrings("ns") == [nil, "1"])
        #expect(try block.values("n", as: UInt8.self) == [0, 1])
        #expect(try block.optionalValues("nn", as: UInt64.self) == [0, nil])
        #expect(throws: ColumnAccessError("column ns has NULL at row 0; read it with optionalStrings")) { try block.strings("ns") }
        #expect(throws: ColumnAccessError("column n is UInt8, not stored as UInt64")) { try block.values("n", as: UInt64.self) }
        #expect(throws: ColumnAccessError("column s is String, not UUID")) { try block.uuids("s") }
        #expect(throws: ColumnAccessError("no column missing (the block has u, d, t, s, f, ns, n, nn)")) { try block.strings("missing") }
        #expect(throws: ColumnAccessError("column n is UInt8, not readable as StringColumn")) { try block.column("n", as: StringColumn.self) }
        let lowCardinality = Block(columns: [NamedColumn("c", LowCardinalityColumn(strings: ["a", nil, "a"], nullable: true))])
        #expect(try lowCardinality.optionalStrings("c") == ["a", nil, "a"])
    }

    /// Columns built from Foundation's types go in as the server reads them: what it prints for
    /// the stored values is what was meant, and the typed accessors give the same values back.
    @Test func columnsBuiltFromSwiftValuesRoundTrip() async throws {
        let connection = try await Self.connect()
        defer { Task { await connection.close() } }
        try await connection.execute("CREATE TEMPORARY TABLE built (u UUID, t DateTime('UTC'), d Date, tags Array(String))")
        let ids = [UUID(uuidString: "01234567-89AB-CDEF-0123-456789ABCDEF")!, UUID(uuidString: "00000000-0000-0000-0000-000000000001")!]
        // 2024-02-29 23:59:59.999 UTC: the DateTime keeps its second, the Date its UTC day. (18.16
        // prints the zero of both as 0000-00-00, hence the second day of 1970.)
        let instants = [Date(timeIntervalSince1970: 1_709_251_199.999), Date(timeIntervalSince1970: 86_401)]
        try await connection.insert(into: "built", Block(columns: [
            NamedColumn("u", FixedWidthColumn(uuids: ids)),
            NamedColumn("t", try FixedWidthColumn<UInt32>(dateTimes: instants, timeZone: "UTC")),
            NamedColumn("d", try FixedWidthColumn<UInt16>(dates: instants)),
            NamedColumn("tags", ArrayColumn(strings: [["a", "it's"], []])),
        ]))
        let printed = try await connection.collect("SELECT toString(u) AS u, toString(t) AS t, toString(d) AS d, tags FROM built ORDER BY t DESC")
        #expect(Self.rows(printed) == """
            {"u":"01234567-89ab-cdef-0123-456789abcdef","t":"2024-02-29 23:59:59","d":"2024-02-29","tags":["a","it's"]}
            {"u":"00000000-0000-0000-0000-000000000001","t":"1970-01-02 00:00:01","d":"1970-01-02","tags":[]}

            """)
        let block = try #require(try await connection.collect("SELECT u, t, d FROM built ORDER BY t DESC").first { $0.rowCount > 0 })
        #expect(try block.uuids("u") == ids)
        #expect(try block.dates("t").map(\.timeIntervalSince1970) == [1_709_251_199, 86_401])
        #expect(try block.dates("d").map(\.timeIntervalSince1970) == [1_709_164_800, 86_400])
    }

    @Test func instantsOutsideATypesRangeAreRefused() throws {
        let before1970 = Date(timeIntervalSince1970: -1)
        #expect(throws: ClickHouseClientError("row 1: 1969-12-31T23:59:59Z is outside DateTime's range (1970-01-01 00:00:00 to 2106-02-07 06:28:15 UTC)")) {
            try FixedWidthColumn<UInt32>(dateTimes: [Date(timeIntervalSince1970: 0), before1970])
        }
        #expect(throws: ClickHouseClientError("row 0: 1969-12-31T23:59:59Z is outside Date's range (1970-01-01 to 2149-06-06)")) {
            try FixedWidthColumn<UInt16>(dates: [before1970])
        }
        #expect(throws: ClickHouseClientError("row 0: 2149-06-07T00:00:00Z is outside Date's range (1970-01-01 to 2149-06-06)")) {
            try FixedWidthColumn<UInt16>(dates: [Date(timeIntervalSince1970: 65_536 * 86_400)])
        }
        #expect(throws: ClickHouseClientError("row 0: 1899-12-31T23:59:59Z is outside Date32's range (1900-01-01 to 2299-12-31)")) {
            try FixedWidthColumn<Int32>(dates: [Date(timeIntervalSince1970: -2_208_988_801)])
        }
        #expect(throws: ClickHouseClientError("row 0: 2300-01-01T00:00:00Z is outside DateTime64(3)'s range (1900-01-01 to 2299-12-31 UTC)")) {
            try FixedWidthColumn<Int64>(dateTime64s: [Date(timeIntervalSince1970: 10_413_792_000)], precision: 3)
        }
        #expect(throws: ClickHouseClientError("row 0: 2262-04-12T00:00:00Z is outside DateTime64(9)'s range (1900-01-01 to 2262-04-11 UTC)")) {
            try FixedWidthColumn<Int64>(dateTime64s: [Date(timeIntervalSince1970: 9_223_372_800)], precision: 9)
        }
        // The last instants of each range are taken.
        #expect(try FixedWidthColumn<Int64>(dateTime64s: [Date(timeIntervalSince1970: 9_223_372_036)], precision: 9).values == [9_223_372_036_000_000_000])
        #expect(try FixedWidthColumn<Int64>(dateTime64s: [Date(timeIntervalSince1970: 10_413_791_999.999)], precision: 3).values == [10_413_791_999_999])
        #expect(try FixedWidthColumn<Int64>(dateTime64s: [Date(timeIntervalSince1970: -2_208_988_800)], precision: 6).values == [-2_208_988_800_000_000])
        #expect(try FixedWidthColumn<UInt32>(dateTimes: [Date(timeIntervalSince1970: 4_294_967_295.5)]).values == [UInt32.max])
        #expect(try FixedWidthColumn<UInt16>(dates: [Date(timeIntervalSince1970: 65_535 * 86_400 + 86_399)]).values == [65_535])
        #expect(try FixedWidthColumn<Int32>(dates: [Date(timeIntervalSince1970: 120_529 * 86_400 + 86_399), Date(timeIntervalSince1970: -25_567 * 86_400)]).values == [120_529, -25_567])
        #expect(throws: ClickHouseClientError("DateTime64 precision must be 0 to 9, not 10")) {
            try FixedWidthColumn<Int64>(dateTime64s: [], precision: 10)
        }
    }

    @Test func exceptionThenTheNextQueryThroughThePool() async throws {
        let client = ClickHouseClient(hosts: [Self.configuration()])
        for _ in 0..<2 {
            let error = await #expect(throws: ServerException.self) {
                try await client.execute("SELECT * FROM default.no_such_table_here")
            }
            #expect(error?.code == 60)
            #expect(error?.description == "Code: 60. DB::Exception: Table default.no_such_table_here doesn't exist.")
        }
        #expect(Self.rows(try await client.collect("SELECT 2 AS two")) == "{\"two\":2}\n")
        await client.shutdown()
    }

    @Test func exceptionMidStreamThenReuse() async throws {
        let connection = try await Self.connect()
        var delivered = 0
        do {
            let result = try await connection.query("SELECT throwIf(number = 300000) AS t FROM system.numbers LIMIT 1000000",
                                                    settings: [QuerySetting("max_block_size", "10000")])
            for try await block in result { delivered += block.rowCount }
            Issue.record("the query should have failed")
        } catch let error as ServerException {
            #expect(error.code == 395)
        }
        #expect(delivered > 0, "blocks before the exception were delivered")
        #expect(Self.rows(try await connection.collect("SELECT 3 AS three")) == "{\"three\":3}\n")
        await connection.close()
    }

    @Test func abandonedQueryIsCancelledAndDrained() async throws {
        let connection = try await Self.connect()
        var seen = 0
        for try await block in try await connection.query("SELECT number FROM system.numbers LIMIT 100000000",
                                                          settings: [QuerySetting("max_block_size", "65536")]) {
            seen += block.rowCount
            if seen > 200_000 { break }
        }
        // The next request drains the abandoned one (Cancel, then read to EndOfStream).
        #expect(Self.rows(try await connection.collect("SELECT 4 AS four")) == "{\"four\":4}\n")
        #expect(await connection.isUsable)
        await connection.close()
    }

    /// A consumer run on the connection's event loop (`taskExecutor`) gets every block there, the
    /// same as anywhere else, and the connection is reusable after it.
    @Test(arguments: [CompressionMethod.none, .lz4])
    func consumerOnTheConnectionsEventLoop(compression: CompressionMethod) async throws {
        let connection = try await Self.connect(compression)
        let (rows, sum, everyBlockOnALoop) = try await withTaskExecutorPreference(connection.taskExecutor) {
            var rows = 0
            var sum: UInt64 = 0
            var onLoop = true
            for try await block in try await connection.query("SELECT number FROM system.numbers LIMIT 3000000") {
                guard block.rowCount > 0 else { continue }
                rows += block.rowCount
                sum = try #require(block["number"] as? FixedWidthColumn<UInt64>).values.reduce(sum, &+)
                onLoop = onLoop && MultiThreadedEventLoopGroup.currentEventLoop != nil
            }
            return (rows, sum, onLoop)
        }
        #expect(rows == 3_000_000 && sum == 4_499_998_500_000)
        #expect(everyBlockOnALoop)
        #expect(Self.rows(try await connection.collect("SELECT 7 AS seven")) == "{\"seven\":7}\n")
        await connection.close()
    }

    /// A consumer that stops taking blocks stops the reading: the server is held back by the full
    /// socket instead of the client taking in the whole result (1.6 GB here). Unthrottled, the
    /// server would be through all of it in about a second.
    @Test(arguments: [CompressionMethod.none, .lz4])
    func slowConsumerHoldsTheServerBack(compression: CompressionMethod) async throws {
        let connection = try await Self.connect(compression)
        let observer = try await Self.connect()
        let queryID = "backpressure-\(UUID().uuidString)"
        var blocks = try await connection.query("SELECT number FROM system.numbers LIMIT 200000000", queryID: queryID).makeAsyncIterator()
        var taken = 0
        while taken < 1_000_000, let block = try await blocks.next() { taken += block.rowCount }
        try await Task.sleep(for: .seconds(2))
        let progress = try await observer.collect("SELECT read_rows FROM system.processes WHERE query_id = '\(queryID)'")
        let readRows = try #require(progress.last?["read_rows"] as? FixedWidthColumn<UInt64>).values
        #expect(readRows.count == 1, "the query is still running")
        #expect(readRows.allSatisfy { $0 < 20_000_000 }, "the server read \(readRows) rows while the client took \(taken)")
        // The next request cancels and drains the abandoned query.
        #expect(Self.rows(try await connection.collect("SELECT 6 AS six")) == "{\"six\":6}\n")
        await connection.close()
        await observer.close()
    }

    /// A server that sends nothing for longer than the read timeout: a timeout error naming it,
    /// and the connection is closed rather than left with a reply half read.
    @Test func silentServerTimesOut() async throws {
        var configuration = Self.configuration(.none)
        configuration.readTimeout = .seconds(1)
        let connection = try await ClickHouseConnection.connect(configuration)
        // interactive_delay (microseconds) keeps the server from sending Progress while it sleeps.
        await #expect(throws: ClickHouseConnectionError.timeout("no data from the server for 1000 ms")) {
            try await connection.execute("SELECT sleep(3)", settings: [QuerySetting("interactive_delay", "10000000")])
        }
        #expect(await !connection.isUsable)
        await #expect(throws: ClickHouseConnectionError.closed("no data from the server for 1000 ms")) { try await connection.ping() }
    }

    @Test func taskCancellationCancelsTheQuery() async throws {
        let connection = try await Self.connect()
        let (streaming, started) = AsyncStream<Void>.makeStream()
        let task = Task {
            var rows = 0
            for try await block in try await connection.query("SELECT number FROM system.numbers") {
                rows += block.rowCount
                if rows > 0 { started.yield() }
            }
            return rows
        }
        for await _ in streaming { break }  // cancelled mid-stream, not before the query started
        task.cancel()
        await #expect(throws: CancellationError.self) { _ = try await task.value }
        #expect(Self.rows(try await connection.collect("SELECT 5 AS five")) == "{\"five\":5}\n")
        await connection.close()
    }

    @Test func wrongPasswordIsTheServersError() async throws {
        var configuration = Self.configuration()
        configuration.user = "auth_tester"
        configuration.password = "wrong"
        let error = await #expect(throws: ServerException.self) { _ = try await ClickHouseConnection.connect(configuration) }
        #expect(error?.code == 193)
        #expect(error?.description == "Code: 193. DB::Exception: Wrong password for user auth_tester")
        configuration.password = "tester-password"
        let connection = try await ClickHouseConnection.connect(configuration)
        #expect(Self.rows(try await connection.collect("SELECT 8 AS eight")) == "{\"eight\":8}\n")
        await connection.close()
    }

    /// Connection failures say what happened in a line a person can act on (an API's 503 body, a
    /// command line), not NIO's internals, and name the usual mistake.
    @Test func connectionRefused() async {
        var configuration = Self.configuration()
        configuration.port = 1
        await #expect(throws: ClickHouseConnectionError.connectFailed("127.0.0.1:1: Connection refused (errno 111)")) {
            _ = try await ClickHouseConnection.connect(configuration)
        }
        // localhost is tried over IPv4 and IPv6: one cause, said once. (Where IPv6 is off on the
        // loopback, its own cause follows the IPv4 one.)
        configuration.host = "localhost"
        let error = await #expect(throws: ClickHouseConnectionError.self) { _ = try await ClickHouseConnection.connect(configuration) }
        #expect([ClickHouseConnectionError.connectFailed("localhost:1: Connection refused (errno 111)"),
                 .connectFailed("localhost:1: 127.0.0.1: Connection refused (errno 111); [::1]: Cannot assign requested address (errno 99)"),
                 .connectFailed("localhost:1: [::1]: Cannot assign requested address (errno 99); 127.0.0.1: Connection refused (errno 111)")]
                    .contains(error), "\(String(describing: error))")
    }

    @Test func plainTCPToTheSecurePort() async {
        var configuration = Self.configuration()
        configuration.port = Self.securePort
        await #expect(throws: ClickHouseConnectionError.connectFailed(
            "127.0.0.1:\(Self.securePort): the server closed the connection before its Hello (Connection reset by peer (errno 104)); if this is a secure port (usually 9440), it needs TLS")) {
            _ = try await ClickHouseConnection.connect(configuration)
        }
    }

    @Test func tlsToThePlainPort() async {
        var configuration = Self.configuration()
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .none
        configuration.tls = tls
        await #expect(throws: ClickHouseConnectionError.connectFailed(
            "127.0.0.1:\(Self.port): TLS handshake failed: the server does not speak TLS on this port (WRONG_VERSION_NUMBER): the plain native port is usually 9000, the secure one 9440")) {
            _ = try await ClickHouseConnection.connect(configuration)
        }
    }

    @Test func anUntrustedCertificateIsRefused() async {
        var configuration = Self.configuration()
        configuration.port = Self.securePort
        configuration.tls = TLSConfiguration.makeClientConfiguration()  // the local server's certificate is self-signed
        await #expect(throws: ClickHouseConnectionError.connectFailed(
            "127.0.0.1:\(Self.securePort): TLS handshake failed: the server's certificate is not trusted (CERTIFICATE_VERIFY_FAILED): trust the CA that signed it, or check the server name it was issued for")) {
            _ = try await ClickHouseConnection.connect(configuration)
        }
    }

    /// External tables carry values into a query outside its text: several per query, of any
    /// column types, one with no rows (a header alone), each queried by its name.
    @Test(arguments: [CompressionMethod.none, .lz4])
    func externalTablesAreQueriedByName(compression: CompressionMethod) async throws {
        let connection = try await Self.connect(compression)
        defer { Task { await connection.close() } }
        let ids = ExternalTable(name: "ids", block: Block(columns: [
            NamedColumn("id", FixedWidthColumn<UInt32>(type: .uint32, values: [3, 1, 2])),
            NamedColumn("label", StringColumn(["three", "one", "it's two"])),
        ]))
        let none = ExternalTable(name: "none", block: Block(columns: [NamedColumn("id", FixedWidthColumn<UInt32>(type: .uint32, values: []))]))
        let blocks = try await connection.collect("""
            SELECT toUInt32(number) AS n, label, n IN (SELECT id FROM none) AS excluded
            FROM numbers(5) ANY INNER JOIN ids ON n = id ORDER BY n
            """, externalTables: [ids, none])
        #expect(Self.rows(blocks) == """
            {"n":1,"label":"one","excluded":0}
            {"n":2,"label":"it's two","excluded":0}
            {"n":3,"label":"three","excluded":0}

            """)
    }

    /// Found in review: a block without columns ends the server's list of external tables, so the
    /// list's real end came after the query as a stray Data packet, and the server closed the
    /// connection with "Unexpected packet Data received from client" at the next request.
    @Test func anExternalTableWithoutColumnsIsRefused() async throws {
        let connection = try await Self.connect()
        defer { Task { await connection.close() } }
        await #expect(throws: ClickHouseClientError("external table ids has no columns (the server would take it for the end of the external tables)")) {
            _ = try await connection.query("SELECT 1", externalTables: [ExternalTable(name: "ids", block: Block(columns: []))])
        }
        #expect(Self.rows(try await connection.collect("SELECT 7 AS seven")) == "{\"seven\":7}\n")
    }

    @Test func queryParametersNeedANewerServer() async throws {
        let connection = try await Self.connect()
        await #expect(throws: ClickHouseClientError("the server (protocol revision 54412) does not support query parameters; they need revision 54459 (ClickHouse 22.8 or later)")) {
            _ = try await connection.query("SELECT {x:UInt8}", parameters: ["x": "1"])
        }
        #expect(Self.rows(try await connection.collect("SELECT 6 AS six")) == "{\"six\":6}\n")
        await connection.close()
    }

    @Test(arguments: CompressionMethod.allCases)
    func insertAndReadBack(compression: CompressionMethod) async throws {
        let connection = try await Self.connect(compression)
        let table = "default.native_insert_\(compression.rawValue)"
        try await connection.execute("DROP TABLE IF EXISTS \(table)")
        try await connection.execute("""
            CREATE TABLE \(table) (id UInt64, name String, score Nullable(Float64), tags Array(String),
            created DateTime('UTC'), uid UUID, kind LowCardinality(String)) ENGINE = MergeTree ORDER BY id
            """, settings: [QuerySetting("allow_experimental_low_cardinality_type", "1")])
        let rows = 50_000
        let uids = (0..<rows).map { Bits128(first: UInt64($0), second: 0xABCD) }
        var tags = StringColumn()
        var offsets: [UInt64] = []
        for i in 0..<rows {
            for t in 0..<(i % 3) { tags.append("t\(t)") }
            offsets.append(UInt64(tags.count))
        }
        let block = Block(columns: [
            NamedColumn("id", FixedWidthColumn(type: .uint64, values: (0..<UInt64(rows)).map { $0 })),
            NamedColumn("name", StringColumn((0..<rows).map { "name-\($0)" })),
            NamedColumn("score", NullableColumn(type: .float64, values: (0..<rows).map { $0 % 4 == 0 ? nil : Double($0) / 2 }, placeholder: 0)),
            NamedColumn("tags", ArrayColumn(type: .array(.string), offsets: offsets, elements: tags)),
            NamedColumn("created", FixedWidthColumn(type: .dateTime(timeZone: "UTC"), values: (0..<rows).map { UInt32(1_700_000_000 + $0) })),
            NamedColumn("uid", FixedWidthColumn(type: .uuid, values: uids)),
            NamedColumn("kind", LowCardinalityColumn(strings: (0..<rows).map { ["a", "b", "c"][$0 % 3] })),
        ])
        try await connection.insert(into: table, block)
        let summary = try await connection.collect("""
            SELECT count() AS c, sum(id) AS s, countIf(score IS NULL) AS nulls, sum(length(tags)) AS t,
            max(created) AS m, uniqExact(kind) AS k FROM \(table)
            """)
        #expect(Self.rows(summary) == "{\"c\":50000,\"s\":1249975000,\"nulls\":12500,\"t\":49999,\"m\":\"2023-11-15 12:06:39\",\"k\":3}\n")
        let first = try await connection.collect("SELECT * FROM \(table) WHERE id = 5")
        #expect(Self.rows(first) == "{\"id\":5,\"name\":\"name-5\",\"score\":2.5,\"tags\":[\"t0\",\"t1\"],\"created\":\"2023-11-14 22:13:25\",\"uid\":\"00000000-0000-0005-0000-00000000abcd\",\"kind\":\"c\"}\n")
        try await connection.execute("DROP TABLE \(table)")
        await connection.close()
    }

    @Test func insertMismatchIsReportedBeforeData() async throws {
        let connection = try await Self.connect()
        try await connection.execute("DROP TABLE IF EXISTS default.native_mismatch")
        try await connection.execute("CREATE TABLE default.native_mismatch (a UInt8, b String) ENGINE = Memory")
        let wrongType = Block(columns: [NamedColumn("a", FixedWidthColumn(type: .uint16, values: [UInt16(1)])),
                                        NamedColumn("b", StringColumn(["x"]))])
        await #expect(throws: ClickHouseConnectionError.insertMismatch("column a has type UInt16, the table has UInt8")) {
            try await connection.insert("INSERT INTO default.native_mismatch VALUES", blocks: BlockSequence([wrongType]))
        }
        let missing = Block(columns: [NamedColumn("a", FixedWidthColumn(type: .uint8, values: [UInt8(1)]))])
        await #expect(throws: ClickHouseConnectionError.insertMismatch("column b (String) is missing")) {
            try await connection.insert("INSERT INTO default.native_mismatch VALUES", blocks: BlockSequence([missing]))
        }
        #expect(Self.rows(try await connection.collect("SELECT count() AS c FROM default.native_mismatch")) == "{\"c\":0}\n")
        try await connection.execute("DROP TABLE default.native_mismatch")
        await connection.close()
    }

    /// The server stores any number an Enum column's block carries: one it does not define made
    /// every later read of the table fail ("Unexpected value 5 for type Enum8(...)", 18.16 and
    /// 26.x alike). It is refused before anything is sent, and the table stays as it was. A
    /// Decimal past its precision is sent, as the server itself stores such values (the results
    /// of Decimal arithmetic keep their operands' precision).
    @Test func enumValuesOutsideTheirTypeAreRefusedBeforeSending() async throws {
        let client = ClickHouseClient(hosts: [Self.configuration()])
        try await client.execute("DROP TABLE IF EXISTS default.native_domains")
        try await client.execute("CREATE TABLE default.native_domains (e Enum8('a' = 1, 'b' = 2), d Decimal(3, 1), n Nullable(Enum16('x' = 300))) ENGINE = Memory")
        let enumType = ClickHouseType.enum8([.init("a", 1), .init("b", 2)])
        func block(_ enums: [Int8], _ decimals: [Int32], _ nullable: [Int16?]) -> Block {
            Block(columns: [NamedColumn("e", FixedWidthColumn(type: enumType, values: enums)),
                            NamedColumn("d", FixedWidthColumn(type: .decimal(precision: 3, scale: 1), values: decimals)),
                            NamedColumn("n", NullableColumn(type: .enum16([.init("x", 300)]), values: nullable, placeholder: 0))])
        }
        await #expect(throws: NativeFormatError("cannot encode column e of type Enum8('a' = 1, 'b' = 2): value 5 at row 1 is not one of Enum8('a' = 1, 'b' = 2)")) {
            try await client.insert(into: "default.native_domains", block([1, 5], [10, 20], [nil, 300]))
        }
        await #expect(throws: NativeFormatError("cannot encode column n of type Nullable(Enum16('x' = 300)): value 0 at row 1 is not one of Enum16('x' = 300)")) {
            try await client.insert(into: "default.native_domains", block([1, 2], [999, -999], [nil, 0]))
        }
        // A NULL row's placeholder (0, not an Enum16 value) is not checked.
        try await client.insert(into: "default.native_domains", block([1, 2], [999, -10_000], [nil, 300]))
        #expect(Self.rows(try await client.collect("SELECT e, toString(d) AS d, n FROM default.native_domains ORDER BY e")) == """
            {"e":"a","d":"99.9","n":null}
            {"e":"b","d":"-1000.0","n":"x"}

            """)
        try await client.execute("DROP TABLE default.native_domains")
        await client.shutdown()
    }

    @Test func manyBlocksInOneInsert() async throws {
        let connection = try await Self.connect()
        try await connection.execute("DROP TABLE IF EXISTS default.native_stream")
        try await connection.execute("CREATE TABLE default.native_stream (n UInt64) ENGINE = Memory")
        let blocks = AsyncStream<Block> { continuation in
            for b in 0..<20 {
                continuation.yield(Block(columns: [NamedColumn("n", FixedWidthColumn(type: .uint64, values: (0..<10_000).map { UInt64(b * 10_000 + $0) }))]))
            }
            continuation.finish()
        }
        try await connection.insert("INSERT INTO default.native_stream VALUES", blocks: blocks)
        #expect(Self.rows(try await connection.collect("SELECT count() AS c, sum(n) AS s FROM default.native_stream")) == "{\"c\":200000,\"s\":19999900000}\n")
        try await connection.execute("DROP TABLE default.native_stream")
        await connection.close()
    }

    @Test func tlsOnTheSecurePort() async throws {
        var configuration = Self.configuration()
        configuration.port = Self.securePort
        configuration.readTimeout = .seconds(5)
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .none  // the local server's certificate is self-signed
        configuration.tls = tls
        let connection = try await ClickHouseConnection.connect(configuration)
        #expect(Self.rows(try await connection.collect("SELECT 7 AS seven")) == "{\"seven\":7}\n")
        await connection.close()
    }

    @Test func progressEventsArrive() async throws {
        let connection = try await Self.connect()
        let counter = ProgressCounter()
        for try await _ in try await connection.query("SELECT count() FROM numbers(20000000)", onEvent: { event in
            if case let .progress(p) = event { counter.add(p.rows) }
        }) {}
        // The server reports rows read, in whole blocks of the source: at least the 20M rows counted.
        #expect(counter.total >= 20_000_000)
        await connection.close()
    }
}

final class ProgressCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var rows: UInt64 = 0
    func add(_ n: UInt64) { lock.lock(); rows += n; lock.unlock() }
    var total: UInt64 { lock.lock(); defer { lock.unlock() }; return rows }
}

extension LiveServerTests {
    /// TCP_NODELAY is set at the TCP level, and nothing at the socket level that only a privileged
    /// process may set: `socketOption(.tcp_nodelay)` set SO_DEBUG (the same number at SOL_SOCKET),
    /// which root may do silently while every connection of any other user failed with
    /// "Permission denied (errno 13)". Found by running the suite as a non-root user.
    @Test func socketOptionsNeedNoPrivilege() async throws {
        let connection = try await Self.connect()
        let channel = connection.channel
        // (NIO's ClientBootstrap sets TCP_NODELAY by default too; SO_DEBUG is the check that bites.)
        #expect(try await channel.getOption(ChannelOptions.tcpOption(.tcp_nodelay)).get() != 0)
        #expect(try await channel.getOption(ChannelOptions.socketOption(NIOBSDSocket.Option(rawValue: SO_DEBUG))).get() == 0)
        await connection.close()
    }
}
