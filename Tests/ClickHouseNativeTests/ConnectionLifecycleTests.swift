import Foundation
import NIOSSL
import Testing
@testable import ClickHouseNative

#if canImport(Glibc)
import Glibc
#endif

/// When a connection may be reused and when it must not: server exceptions at each point of a
/// request, a stream read after another request started, deadlines on a peer that says nothing,
/// and task cancellation. Against the real server, or against a local socket that plays a
/// silent or stalled server.
@Suite(.serialized) struct ConnectionLifecycleTests {
    static func client() -> ClickHouseClient {
        var options = ClickHouseClient.Options()
        options.maximumConnections = 1
        return ClickHouseClient(hosts: [LiveServerTests.configuration()], options: options)
    }

    // MARK: Server exceptions

    @Test func exceptionBeforeAnyAnswerClosesTheConnection() async throws {
        let connection = try await LiveServerTests.connect()
        let error = await #expect(throws: ServerException.self) {
            try await connection.execute("SELECT * FROM default.no_such_table_here")
        }
        #expect(error?.description == "Code: 60. DB::Exception: Table default.no_such_table_here doesn't exist.")
        #expect(await !connection.isUsable)
        await #expect(throws: ClickHouseConnectionError.closed(
            "server exception before any other answer: Code: 60. DB::Exception: Table default.no_such_table_here doesn't exist.")) {
            try await connection.ping()
        }
    }

    /// A setting the server cannot parse fails while it reads the Query packet: what it read next
    /// would be the rest of that packet. The pool replaces the connection, and the answers that
    /// follow belong to the queries that asked for them.
    @Test func unparsableSettingThenFreshAnswers() async throws {
        let client = Self.client()
        let error = await #expect(throws: ServerException.self) {
            _ = try await client.collect("SELECT 1", settings: [QuerySetting("load_balancing", "nonsense")])
        }
        #expect(error?.description == "Code: 212. DB::Exception: Unknown load balancing mode: 'nonsense', must be one of 'random', 'nearest_hostname', 'in_order'", "\(String(describing: error))")
        #expect(await client.openConnections == 0, "the connection was not put back")
        for n in 1...3 {
            #expect(LiveServerTests.rows(try await client.collect("SELECT \(n) AS n")) == "{\"n\":\(n)}\n")
        }
        await client.shutdown()
    }

    /// The server fails on the first block of an INSERT. 18.16 answers only once the last block
    /// came (measured: all 50 blocks were sent), but the connection is not reused all the same:
    /// how much of the data a server skips after an exception depends on its version.
    @Test(arguments: [CompressionMethod.none, .lz4])
    func exceptionDuringInsertDataClosesTheConnection(compression: CompressionMethod) async throws {
        let table = "default.lifecycle_insert_\(compression)"
        var configuration = LiveServerTests.configuration(compression)
        configuration.readTimeout = .seconds(30)
        let setup = try await ClickHouseConnection.connect(configuration)
        try await setup.execute("DROP TABLE IF EXISTS \(table)")
        try await setup.execute("CREATE TABLE \(table) (x UInt8) ENGINE = MergeTree PARTITION BY intDiv(1, x) ORDER BY x")
        await setup.close()

        let pulled = Counter()
        let blocks = SlowBlocks(count: 50, pulled: pulled) { index in
            Block(columns: [NamedColumn("x", FixedWidthColumn(type: .uint8, values: [UInt8](repeating: index == 0 ? 0 : 1, count: 1000)))])
        }
        var pool = ClickHouseClient.Options()
        pool.maximumConnections = 1
        let client = ClickHouseClient(hosts: [configuration], options: pool)
        let error = await #expect(throws: ServerException.self) {
            try await client.withConnection { try await $0.insert("INSERT INTO \(table) (x) VALUES", blocks: blocks) }
        }
        #expect(error?.description == "Code: 153. DB::Exception: Division by zero", "\(String(describing: error))")
        #expect(await client.openConnections == 0)
        for n in 1...3 {
            #expect(LiveServerTests.rows(try await client.collect("SELECT \(n) AS n")) == "{\"n\":\(n)}\n")
        }
        try await client.execute("DROP TABLE \(table)")
        await client.shutdown()
    }

    /// Found in review: a block source that failed with a ClickHouseConnectionError of its own
    /// (copying from another connection that timed out, say) left this connection mid-INSERT,
    /// open, with the server still waiting for blocks. Any failure of the source closes it now.
    @Test func aBlockSourceFailingWithAConnectionErrorClosesTheConnection() async throws {
        let connection = try await ClickHouseConnection.connect(LiveServerTests.configuration())
        try await connection.execute("CREATE TEMPORARY TABLE copied (x UInt8)")
        let elsewhere = ClickHouseConnectionError.timeout("the source connection timed out")
        let blocks = FailingBlocks(first: Block(columns: [NamedColumn("x", FixedWidthColumn(type: .uint8, values: [UInt8(1)]))]), then: elsewhere)
        await #expect(throws: elsewhere) { try await connection.insert("INSERT INTO copied (x) VALUES", blocks: blocks) }
        #expect(await !connection.isUsable)
    }

    /// A server that answers while INSERT blocks are still going out (newer servers send
    /// ProfileEvents after every block, and an Exception as soon as a block fails): the client
    /// reads as it sends, so it stops at the Exception instead of sending every block first.
    @Test func aServerAnswerDuringInsertDataIsReadAsBlocksGoOut() async throws {
        let revision: UInt64 = 54412
        var sample = ByteWriter()
        try ClientPackets.data(Block(columns: [NamedColumn("x", FixedWidthColumn(type: .uint8, values: [UInt8]()))]),
                               compression: nil, revision: revision, to: &sample)
        var answer = sample.bytes
        answer[0] = 1  // the server's Data packet has the client's layout under another code
        // The Exception comes only once the first block arrived, as a server's answer to it: the
        // client must read it from the socket while it goes on sending.
        var exception = ByteWriter()
        exception.writeVarUInt(2)
        exception.writeInteger(Int32(241))
        exception.writeString("DB::Exception")
        exception.writeString("Memory limit (for query) exceeded")
        exception.writeString("")
        exception.writeUInt8(0)
        let peer = try FakePeer(answers: [try ProtocolGoldenTests.packet("server-hello-18.16"), answer, exception.bytes])
        let connection = try await ClickHouseConnection.connect(ClickHouseConfiguration(host: "127.0.0.1", port: peer.port, compression: .none))
        let pulled = Counter()
        let blocks = SlowBlocks(count: 50, pulled: pulled) { _ in
            Block(columns: [NamedColumn("x", FixedWidthColumn(type: .uint8, values: [UInt8](repeating: 1, count: 100)))])
        }
        await #expect(throws: ServerException(code: 241, name: "DB::Exception", message: "Memory limit (for query) exceeded")) {
            try await connection.insert("INSERT INTO t (x) VALUES", blocks: blocks)
        }
        #expect(pulled.value < 10, "stopped after \(pulled.value) of 50 blocks")
        #expect(await !connection.isUsable)
        peer.close()
    }

    /// Found in review: a write had no deadline, so an INSERT to a server that stopped reading
    /// (a host gone without a reset) held its connection, and a pool slot, until the kernel gave
    /// up, some 15 minutes. The read timeout now bounds a write's progress too.
    @Test(.timeLimit(.minutes(1)))
    func anInsertToAServerThatStoppedReadingTimesOut() async throws {
        var sample = ByteWriter()
        try ClientPackets.data(Block(columns: [NamedColumn("x", FixedWidthColumn(type: .uint8, values: [UInt8]()))]),
                               compression: nil, revision: 54412, to: &sample)
        var answer = sample.bytes
        answer[0] = 1  // the server's Data packet: the sample block the INSERT waits for
        let peer = try FakePeer(answers: [try ProtocolGoldenTests.packet("server-hello-18.16"), answer], thenStopReading: true)
        defer { peer.close() }
        var configuration = ClickHouseConfiguration(host: "127.0.0.1", port: peer.port, compression: .none)
        configuration.readTimeout = .seconds(1)
        let connection = try await ClickHouseConnection.connect(configuration)
        let blocks = SlowBlocks(count: 200, pulled: Counter()) { _ in
            Block(columns: [NamedColumn("x", FixedWidthColumn(type: .uint8, values: [UInt8](repeating: 1, count: 1 << 20)))])
        }
        let started = ContinuousClock.now
        await #expect(throws: ClickHouseConnectionError.timeout(
            "127.0.0.1:\(peer.port) took nothing of a request for 1.0 seconds (the server stopped reading)")) {
            try await connection.insert("INSERT INTO t (x) VALUES", blocks: blocks)
        }
        #expect(ContinuousClock.now - started < .seconds(20))
        #expect(await !connection.isUsable)
    }

    // MARK: One request at a time

    @Test func readingAStreamAfterAnotherRequestThrows() async throws {
        let connection = try await LiveServerTests.connect()
        var first = try await connection.query("SELECT number FROM system.numbers LIMIT 10000000",
                                               settings: [QuerySetting("max_block_size", "65536")]).makeAsyncIterator()
        #expect(try await first.next()?.rowCount == 0, "the header block")
        #expect(LiveServerTests.rows(try await connection.collect("SELECT 4 AS four")) == "{\"four\":4}\n")
        await #expect(throws: ClickHouseConnectionError.superseded) { _ = try await first.next() }

        // A stream read to its end keeps ending, whatever ran after it.
        var second = try await connection.query("SELECT 1").makeAsyncIterator()
        while try await second.next() != nil {}
        try await connection.ping()
        #expect(try await second.next() == nil)
        await connection.close()
    }

    // MARK: A server out of step

    /// Found in review: bytes after the end of an answer were kept and read as the start of the
    /// next one, so every later result was shifted by a request (here a second EndOfStream would
    /// have ended the next query at once, empty, as if it succeeded). The connection is now
    /// unusable (a pool discards it) and a request on it fails before anything is sent.
    @Test func bytesAfterTheEndOfAnAnswerCloseTheConnection() async throws {
        let peer = try FakePeer(answers: [try ProtocolGoldenTests.packet("server-hello-18.16"), [0x05, 0x05]])
        defer { peer.close() }
        let connection = try await ClickHouseConnection.connect(ClickHouseConfiguration(host: "127.0.0.1", port: peer.port, compression: .none))
        #expect(try await connection.collect("SELECT 1").isEmpty)
        #expect(await !connection.isUsable)
        await #expect(throws: ClickHouseConnectionError.closed("the server sent 1 byte after the end of its last answer; the connection is out of step")) {
            _ = try await connection.collect("SELECT 1")
        }
        #expect(peer.reads == 2, "the second query was not sent")
    }

    /// A server that claims a 2^40-byte string and keeps sending: the request fails as soon as the
    /// claim arrives, and the connection closes (it buffered everything the server sent, waiting).
    /// Not as a transient error: the API would answer 503 "try again" for a result that is over
    /// the limit every time.
    @Test func aPacketOverTheLimitFailsTheRequestAndClosesTheConnection() async throws {
        var exception = ByteWriter()
        exception.writeVarUInt(2)
        exception.writeInteger(Int32(60))
        exception.writeVarUInt(1 << 40)
        exception.writeBytes([UInt8](repeating: 0x41, count: 60_000))
        let peer = try FakePeer(answers: [try ProtocolGoldenTests.packet("server-hello-18.16"), exception.bytes])
        defer { peer.close() }
        let connection = try await ClickHouseConnection.connect(ClickHouseConfiguration(host: "127.0.0.1", port: peer.port, compression: .none))
        let error = await #expect(throws: ClickHouseClientError.self) { _ = try await connection.collect("SELECT 1") }
        #expect(error == ClickHouseClientError("a packet from the server is larger than the 1073741824-byte limit (ClickHouseConfiguration.maximumPacketBytes), or its lengths are corrupt"))
        #expect(error.map { TransientErrors.contains($0) } == false, "the same result is over the limit every time")
        #expect(await !connection.isUsable)
    }

    /// Found in review: an abandoned query was drained (after a Cancel) for as long as the server
    /// went on sending, and a ping waited for its Pong as long as other packets came: the read
    /// timeout bounds each wait, not that. Both now give up after the read timeout in all.
    @Test func aServerThatGoesOnSendingAfterACancelIsNotDrainedForEver() async throws {
        let header = ServerPacketTests.bytes([[0x01, 0x00], ServerPacketTests.blockInfo, [0x01, 0x00], 0x01, "x", 0x05, "UInt8"])
        let progress: [UInt8] = [0x03, 0x01, 0x01, 0x00]
        let peer = try FakePeer(answers: [try ProtocolGoldenTests.packet("server-hello-18.16"), header],
                                thenRepeat: (progress, .milliseconds(20)))
        defer { peer.close() }
        var configuration = ClickHouseConfiguration(host: "127.0.0.1", port: peer.port, compression: .none)
        configuration.readTimeout = .milliseconds(700)
        let connection = try await ClickHouseConnection.connect(configuration)
        _ = try await connection.query("SELECT x")  // abandoned after its header
        let started = ContinuousClock.now
        await #expect(throws: ClickHouseConnectionError.closed("the server went on answering for 700 ms after its query was cancelled")) {
            try await connection.ping()
        }
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(await !connection.isUsable)
    }

    @Test func aPingAnsweredWithOtherPacketsGivesUp() async throws {
        let progress: [UInt8] = [0x03, 0x01, 0x01, 0x00]
        let peer = try FakePeer(answers: [try ProtocolGoldenTests.packet("server-hello-18.16"), progress], thenRepeat: (progress, .milliseconds(20)))
        defer { peer.close() }
        var configuration = ClickHouseConfiguration(host: "127.0.0.1", port: peer.port, compression: .none)
        configuration.readTimeout = .milliseconds(700)
        let connection = try await ClickHouseConnection.connect(configuration)
        await #expect(throws: ClickHouseConnectionError.closed("no Pong within 700 ms: the server sent other packets instead")) {
            try await connection.ping()
        }
    }

    /// Found in review: a server that ended an INSERT without asking for its rows (no sample
    /// block, just EndOfStream) made `insert` return as if the rows were stored. The error is not
    /// transient (an `INSERT ... SELECT` sent again would run again), and the connection, still in
    /// step, stays usable.
    @Test func anInsertEndedWithoutAskingForItsRowsFails() async throws {
        let peer = try FakePeer(answers: [try ProtocolGoldenTests.packet("server-hello-18.16"), [0x05]])
        defer { peer.close() }
        let connection = try await ClickHouseConnection.connect(ClickHouseConfiguration(host: "127.0.0.1", port: peer.port, compression: .none))
        let block = Block(columns: [NamedColumn("a", FixedWidthColumn(type: .uint8, values: [UInt8(1)]))])
        await #expect(throws: ClickHouseClientError("the server ended the INSERT without asking for the rows given: they were not sent")) {
            try await connection.insert(into: "t", block)
        }
        #expect(await connection.isUsable)
    }

    // MARK: Deadlines and cancellation

    @Test(arguments: [false, true])
    func handshakeWithASilentPeerTimesOut(tls: Bool) async throws {
        let peer = try FakePeer(answers: nil)
        var configuration = ClickHouseConfiguration(host: "127.0.0.1", port: peer.port)
        configuration.handshakeTimeout = .milliseconds(500)
        if tls {
            var settings = TLSConfiguration.makeClientConfiguration()
            settings.certificateVerification = .none
            configuration.tls = settings
        }
        let started = ContinuousClock.now
        await #expect(throws: ClickHouseConnectionError.timeout("no handshake from 127.0.0.1:\(peer.port) within 500 ms"
                                                                 + " (is it ClickHouse's native port? usually 9000, 9440 with TLS)")) {
            _ = try await ClickHouseConnection.connect(configuration)
        }
        #expect(ContinuousClock.now - started < .seconds(5))
        peer.close()
    }

    /// Found in review: the handshake deadline ended with the server's first byte, so a peer that
    /// sent one byte of its Hello and then nothing was waited on for the read timeout (and one
    /// that trickled a byte now and then, for ever).
    @Test func aHelloThatStopsAfterItsFirstByteTimesOut() async throws {
        let hello = try ProtocolGoldenTests.packet("server-hello-18.16")
        let peer = try FakePeer(answers: [Array(hello.prefix(3))])
        defer { peer.close() }
        var configuration = ClickHouseConfiguration(host: "127.0.0.1", port: peer.port)
        configuration.handshakeTimeout = .milliseconds(500)
        configuration.readTimeout = .seconds(60)
        let started = ContinuousClock.now
        await #expect(throws: ClickHouseConnectionError.timeout("no handshake from 127.0.0.1:\(peer.port) within 500 ms"
                                                                 + " (is it ClickHouse's native port? usually 9000, 9440 with TLS)")) {
            _ = try await ClickHouseConnection.connect(configuration)
        }
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    /// Found in review: cancelling a connect (chnative's Ctrl-C) waited for the handshake timeout
    /// when the peer said nothing, then failed as "connect failed" rather than as cancelled.
    @Test func cancellingAHandshakeWithASilentPeerEndsItAtOnce() async throws {
        let peer = try FakePeer(answers: [])
        var configuration = ClickHouseConfiguration(host: "127.0.0.1", port: peer.port)
        configuration.handshakeTimeout = .seconds(60)
        configuration.readTimeout = .seconds(60)
        let connecting = Task { try await ClickHouseConnection.connect(configuration) }
        while peer.reads < 1 { try await Task.sleep(for: .milliseconds(10)) }  // the Hello is on the peer's side
        let started = ContinuousClock.now
        connecting.cancel()
        await #expect(throws: CancellationError.self) { _ = try await connecting.value }
        #expect(ContinuousClock.now - started < .seconds(5))
        peer.close()
    }

    /// Cancelling a TCP connect that the peer does not complete (its accept queue is full, so the
    /// kernel drops our SYNs, as a black-holed address would) ends it at once: it waited for the
    /// connect timeout.
    @Test func cancellingAConnectThatHangsEndsItAtOnce() async throws {
        // A listener that never accepts, with the shortest backlog, filled by two connections.
        let peer = try FakePeer(answers: nil, backlog: 0)
        defer { peer.close() }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(peer.port).bigEndian
        var fillers: [Int32] = []
        defer { fillers.forEach { close($0) } }
        for _ in 0..<2 {
            let filler = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(filler, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            fillers.append(filler)
        }
        var configuration = ClickHouseConfiguration(host: "127.0.0.1", port: peer.port)
        configuration.connectTimeout = .seconds(60)
        let connecting = Task { try await ClickHouseConnection.connect(configuration) }
        try await Task.sleep(for: .milliseconds(300))
        let started = ContinuousClock.now
        connecting.cancel()
        await #expect(throws: CancellationError.self) { _ = try await connecting.value }
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    /// A read timeout shorter than the handshake timeout ends a silent handshake first; the error
    /// still names the host (it was the bare "no data from the server").
    @Test func aReadTimeoutDuringTheHandshakeNamesTheHost() async throws {
        let peer = try FakePeer(answers: [])
        var configuration = ClickHouseConfiguration(host: "127.0.0.1", port: peer.port)
        configuration.readTimeout = .milliseconds(300)
        await #expect(throws: ClickHouseConnectionError.connectFailed(
            "127.0.0.1:\(peer.port): handshake failed: timed out: no data from the server for 300 ms")) {
            _ = try await ClickHouseConnection.connect(configuration)
        }
        peer.close()
    }

    /// A port of some other service that answers: the error says so at once, instead of "unknown
    /// packet 72 from the server" (or waiting for the handshake timeout).
    @Test func aPeerThatAnswersInAnotherProtocolIsNamed() async throws {
        let cases: [(answer: [UInt8], message: String)] = [
            (Array("HTTP/1.0 400 Bad Request\r\n\r\n".utf8), "the server answered in HTTP (usually port 8123), not in ClickHouse's native protocol: the native port is usually 9000, 9440 with TLS"),
            ([99], "the server answered with something else (unknown packet 99), not in ClickHouse's native protocol: the native port is usually 9000, 9440 with TLS"),
            ([], "the server closed the connection before its Hello; if this is a secure port (usually 9440), it needs TLS"),
        ]
        for (answer, message) in cases {
            let peer = try FakePeer(answers: [answer], thenClose: true)
            let configuration = ClickHouseConfiguration(host: "127.0.0.1", port: peer.port)
            await #expect(throws: ClickHouseConnectionError.connectFailed("127.0.0.1:\(peer.port): \(message)")) {
                _ = try await ClickHouseConnection.connect(configuration)
            }
            peer.close()
        }
    }

    /// A server that completed the handshake and then stalls: cancelling a ping ends it at once
    /// (not at the read timeout) and the connection is not reused.
    @Test func cancellingAPingToAStalledServerClosesTheConnection() async throws {
        let peer = try FakePeer(answers: [try ProtocolGoldenTests.packet("server-hello-18.16")])
        var configuration = ClickHouseConfiguration(host: "127.0.0.1", port: peer.port, compression: .none)
        configuration.readTimeout = .seconds(120)
        let connection = try await ClickHouseConnection.connect(configuration)
        let ping = Task { try await connection.ping() }
        // Cancelled once the Ping is on the server's side (the Hello was the first read): a task
        // cancelled before it sent would stop at once without showing anything.
        while peer.reads < 2 { try await Task.sleep(for: .milliseconds(10)) }
        let started = ContinuousClock.now
        ping.cancel()
        await #expect(throws: CancellationError.self) { try await ping.value }
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(await !connection.isUsable)
        peer.close()
    }

    @Test func aCancelledWaiterLeavesThePoolQueue() async throws {
        let client = Self.client()
        let (held, hold) = AsyncStream<Void>.makeStream()
        let holderDone = RobustnessTests.ClosedFlag()
        let holding = Task {
            try await client.withConnection { connection in
                hold.yield()
                try await connection.execute("SELECT sleep(1)")
                holderDone.set()
            }
        }
        var holds = held.makeAsyncIterator()
        _ = await holds.next()
        let waiter = Task { try await client.collect("SELECT 1") }
        while await client.waitingCount == 0 { try await Task.sleep(for: .milliseconds(10)) }  // it is in the queue
        waiter.cancel()
        await #expect(throws: CancellationError.self) { _ = try await waiter.value }
        #expect(!holderDone.isSet, "it waited for the connection instead of leaving at once")
        #expect(await client.waitingCount == 0)
        try await holding.value
        #expect(LiveServerTests.rows(try await client.collect("SELECT 6 AS six")) == "{\"six\":6}\n")
        #expect(await client.openConnections == 1)
        await client.shutdown()
    }

    /// "No timeout" spelled as the largest duration: capped, not an overflow that stops the program.
    @Test func hugeTimeoutsMeanNoTimeout() async throws {
        #expect(Duration.seconds(Int64.max).timeAmount == .nanoseconds(.max))
        #expect(Duration.seconds(-5).timeAmount == .nanoseconds(0))
        #expect(Duration.milliseconds(1500).timeAmount == .milliseconds(1500))
        var configuration = LiveServerTests.configuration()
        configuration.connectTimeout = .seconds(Int64.max)
        configuration.readTimeout = .seconds(Int64.max)
        let connection = try await ClickHouseConnection.connect(configuration)
        #expect(LiveServerTests.rows(try await connection.collect("SELECT 7 AS seven")) == "{\"seven\":7}\n")
        await connection.close()
    }

    // MARK: State machine, without sockets

    @Test func stateMachineClosesOnAnExceptionThatComesFirst() throws {
        let error = ServerException(code: 72, name: "DB::Exception", message: "Cannot parse input")
        var machine = ConnectionStateMachine()
        _ = machine.received(.hello(Self.serverInfo))
        try machine.queryStarted()
        #expect(machine.received(.exception(error)) == .failedClosing(error))
        #expect(machine.isClosed)

        var answered = ConnectionStateMachine()
        _ = answered.received(.hello(Self.serverInfo))
        try answered.queryStarted()
        #expect(answered.received(.progress(Progress())) == .deliverEvent(.progress(Progress())))
        #expect(answered.received(.exception(error)) == .failed(error))
        #expect(answered.isIdle, "the server had read the whole query: the connection is reusable")

        var inserting = ConnectionStateMachine()
        _ = inserting.received(.hello(Self.serverInfo))
        try inserting.insertStarted()
        #expect(inserting.received(.data(Block(columns: []))) == .sendData(header: Block(columns: [])))
        #expect(inserting.received(.profileEvents(Block(columns: []))) == .deliverEvent(.profileEvents(Block(columns: []))))
        #expect(inserting.received(.exception(error)) == .failedClosing(error))
        #expect(inserting.isClosed)
    }

    static let serverInfo = ServerInfo(name: "ClickHouse", versionMajor: 18, versionMinor: 16, versionPatch: 1, revision: 54412,
                                       timeZone: "UTC", displayName: "test")
}

/// Counts, from any task.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var value: Int { lock.withLock { count } }
    func increment() { lock.withLock { count += 1 } }
}

/// `count` blocks made by `make`, 20 ms apart (a source slower than the socket).
struct SlowBlocks: AsyncSequence, Sendable {
    typealias Element = Block
    let count: Int
    let pulled: Counter
    let make: @Sendable (Int) -> Block

    struct AsyncIterator: AsyncIteratorProtocol {
        let source: SlowBlocks
        var index = 0
        mutating func next() async throws -> Block? {
            guard index < source.count else { return nil }
            if index > 0 { try await Task.sleep(for: .milliseconds(20)) }
            source.pulled.increment()
            defer { index += 1 }
            return source.make(index)
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(source: self) }
}

/// A local TCP listener playing a server. With no `answers` it never accepts: the kernel completes
/// the TCP handshake and nothing more is ever said. Otherwise it accepts one connection and sends
/// `answers[i]` after its i-th read from the client (the client's Hello, then its Query, each sent
/// in one write), then reads and discards without replying, or with `thenClose` closes the
/// connection once it has sent the last answer.
final class FakePeer: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let lock = NSLock()
    private var accepted: Int32 = -1
    private var readsDone = 0
    /// How many reads from the client the peer has done (each of the client's packets is one).
    var reads: Int { lock.withLock { readsDone } }

    /// `thenStopReading`: after the last answer the peer reads nothing more (a host that stopped
    /// taking data), with a small receive buffer so that the client's writes stall soon.
    /// `backlog`: the listener's accept queue (0: once it holds a connection, further SYNs are dropped).
    /// `thenRepeat`: after the last answer the peer sends these bytes every `interval` until closed
    /// (a server that goes on sending whatever the client says).
    init(answers: [[UInt8]]?, thenClose: Bool = false, thenStopReading: Bool = false, backlog: Int32 = 4,
         thenRepeat: (bytes: [UInt8], interval: Duration)? = nil) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, backlog) == 0 else { throw ClickHouseClientError("cannot listen: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        guard let answers else { return }
        Thread.detachNewThread { [self] in
            let client = accept(fd, nil, nil)
            guard client >= 0 else { return }
            lock.withLock { accepted = client }
            if thenStopReading {
                var size: Int32 = 4096
                setsockopt(client, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            }
            var buffer = [UInt8](repeating: 0, count: 65536)
            var reads = 0
            while read(client, &buffer, buffer.count) > 0 {
                if reads < answers.count {
                    _ = answers[reads].withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
                }
                reads += 1
                lock.withLock { readsDone = reads }
                if thenClose && reads >= answers.count {
                    shutdown(client, Int32(SHUT_RDWR))
                    break
                }
                if thenStopReading && reads >= answers.count {
                    while lock.withLock({ !stopped }) { usleep(10_000) }
                    break
                }
                if let (bytes, interval) = thenRepeat, reads >= answers.count {
                    let pause = useconds_t(interval / .microseconds(1))
                    while lock.withLock({ !stopped }), bytes.withUnsafeBytes({ write(client, $0.baseAddress, $0.count) }) > 0 { usleep(pause) }
                    break
                }
            }
        }
    }

    private var stopped = false

    func close() {
        lock.withLock {
            stopped = true
            if accepted >= 0 { shutdown(accepted, Int32(SHUT_RDWR)) }
        }
        shutdown(listener, Int32(SHUT_RDWR))
        Glibc.close(listener)
    }
}

/// One block, then `error`.
struct FailingBlocks: AsyncSequence, Sendable {
    typealias Element = Block
    let first: Block
    let then: ClickHouseConnectionError

    struct AsyncIterator: AsyncIteratorProtocol {
        let source: FailingBlocks
        var sent = false
        mutating func next() async throws -> Block? {
            if sent { throw source.then }
            sent = true
            return source.first
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(source: self) }
}
