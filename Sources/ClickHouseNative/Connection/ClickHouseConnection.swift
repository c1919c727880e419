import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// One native-protocol connection to a ClickHouse server.
///
/// Requests run one at a time. A connection is reused only after its last response ended cleanly:
/// EndOfStream, or an Exception after other answers to the same request (an Exception that comes
/// first, or during INSERT data, may leave the server reading the rest of our request as new
/// packets, so it closes the connection). A query whose results were not read to the end is
/// cancelled and drained before the next request (reading them on then throws
/// ``ClickHouseConnectionError/superseded``), and any decoding or protocol error closes the
/// connection for good (``isUsable`` turns false).
///
/// ```swift
/// let connection = try await ClickHouseConnection.connect(ClickHouseConfiguration(host: "localhost"))
/// for try await block in try await connection.query("SELECT number FROM system.numbers LIMIT 10") {
///     let numbers = block["number"] as! FixedWidthColumn<UInt64>
///     print(numbers.values)
/// }
/// ```
public actor ClickHouseConnection {
    /// Internal for the tests of its socket options.
    nonisolated let channel: Channel
    private let handler: ByteStreamHandler
    public nonisolated let configuration: ClickHouseConfiguration
    private var machine = ConnectionStateMachine()
    private var decoder = ServerPacketDecoder()
    /// Bytes of a packet that one chunk did not complete, carried until the next ones do.
    private var carry: [UInt8] = []
    /// Where the undecoded bytes in `carry` start.
    private var carryStart = 0
    /// The last chunk read, from its first byte not yet decoded or carried.
    private var chunk: ByteBuffer?
    /// Bytes the decoder needs (from where it resumes) before it is worth trying again.
    private var required = 0
    /// Bytes (from where it resumes) that would finish what the decoder is receiving; at least `required`.
    private var completing = 0
    private var queryToken = 0
    private var cancelSent = false
    private var eventHandler: (@Sendable (QueryEvent) -> Void)?
    private var info: ServerInfo?
    /// What the server sent instead of its Hello, if it was not ClickHouse's native protocol.
    private var handshakeProtocolError: ClickHouseProtocolError?
    private let logger: Logger

    /// The actor runs on its channel's event loop: a chunk read from the socket is decoded on the
    /// thread that read it, and asking for the next one is a call, not a hop between threads (two
    /// thread wake-ups per chunk otherwise, which cost more CPU than decoding the chunk).
    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        channel.eventLoop.executor.asUnownedSerialExecutor()
    }

    /// An executor on the same event loop, for a task that consumes this connection's results:
    /// `try await withTaskExecutorPreference(connection.taskExecutor) { for try await block in ... }`
    /// keeps the consumer on the thread that decodes the blocks, which saves two thread wake-ups
    /// per block. Keep such a consumer's own work short: it holds up the connection's reads
    /// (and those of any other connection on that event loop) while it runs.
    public nonisolated var taskExecutor: any TaskExecutor { EventLoopTaskExecutor(channel.eventLoop) }

    /// What the server said about itself.
    public var server: ServerInfo { info! }
    /// False once the connection is closed or was found broken.
    public var isUsable: Bool { !machine.isClosed && channel.isActive && !(machine.isIdle && strayByteCount > 0) }

    /// Bytes read that no packet took yet.
    private var strayByteCount: Int { (chunk?.readableBytes ?? 0) + (carry.count - carryStart) }
    /// True when no request is in progress.
    public var isIdle: Bool { machine.isIdle }

    private init(channel: Channel, handler: ByteStreamHandler, configuration: ClickHouseConfiguration, logger: Logger) {
        self.channel = channel
        self.handler = handler
        self.configuration = configuration
        self.logger = logger
        decoder.maximumPacketBytes = configuration.maximumPacketBytes
    }

    /// The channel `connecting` yields, or CancellationError as soon as the task is cancelled: a
    /// host that does not answer would otherwise hold the task until the connect timeout. A
    /// channel that connects after that is closed.
    private static func connectCancellably(_ connecting: EventLoopFuture<Channel>) async throws -> Channel {
        let outcome = connecting.eventLoop.makePromise(of: Channel.self)
        connecting.cascade(to: outcome)
        return try await withTaskCancellationHandler {
            try await outcome.futureResult.get()
        } onCancel: {
            outcome.fail(CancellationError())  // (ignored when the connect completed first)
            connecting.whenSuccess { $0.close(promise: nil) }
        }
    }

    /// Opens a connection and completes the handshake. A wrong password or unknown database is the
    /// server's ``ServerException`` (e.g. code 193 or 516, 81). Cancelling the calling task ends
    /// the connect or the handshake at once with `CancellationError`.
    public static func connect(_ configuration: ClickHouseConfiguration,
                               eventLoopGroup: EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                               logger: Logger = Logger(label: "ClickHouseNative")) async throws -> ClickHouseConnection {
        let handler = ByteStreamHandler(expectsTLSHandshake: configuration.tls != nil)
        let sslContext = try configuration.tls.map { try NIOSSLContext(configuration: $0) }
        let serverName = configuration.tlsServerName ?? configuration.host
        let bootstrap = ClientBootstrap(group: eventLoopGroup)
            .connectTimeout(configuration.connectTimeout.timeAmount)
            .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(ChannelOptions.autoRead, value: false)
            .channelOption(ChannelOptions.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64 << 10, initial: 256 << 10, maximum: 4 << 20))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        let isAddress = (try? SocketAddress(ipAddress: serverName, port: 0)) != nil
                        try channel.pipeline.syncOperations.addHandler(
                            try NIOSSLClientHandler(context: sslContext, serverHostname: isAddress ? nil : serverName))
                    }
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        let channel: Channel
        do {
            channel = try await connectCancellably(bootstrap.connect(host: configuration.host, port: configuration.port))
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw ClickHouseConnectionError.connectFailed("\(configuration.host):\(configuration.port): \(ConnectFailure.describe(error))")
        }
        let connection = ClickHouseConnection(channel: channel, handler: handler, configuration: configuration, logger: logger)
        do {
            // Cancelling the task ends a handshake with a silent peer at once, not at its timeout.
            try await withTaskCancellationHandler {
                try await connection.handshake()
            } onCancel: {
                channel.close(promise: nil)
            }
        } catch let error as ServerException {
            try? await channel.close()
            throw error  // the server answered: a wrong password, an unknown database
        } catch {
            try? await channel.close()
            if Task.isCancelled { throw CancellationError() }
            let (expiry, channelError) = try await channel.eventLoop.submit { (handler.expiry, handler.failure) }.get()
            if let expiry { throw expiry }
            // The first thing that went wrong: the socket's or TLS's error, or what the server sent,
            // rather than the later "cannot send on a closed channel".
            let cause = await connection.handshakeProtocolError ?? channelError ?? error
            throw ClickHouseConnectionError.connectFailed(
                "\(configuration.host):\(configuration.port): \(ConnectFailure.describeHandshake(cause, tls: configuration.tls != nil))")
        }
        if Task.isCancelled {
            // Cancelled as the handshake ended: the handler may have closed the channel already.
            await connection.close()
            throw CancellationError()
        }
        return connection
    }

    private func handshake() async throws {
        var writer = ByteWriter()
        ClientPackets.hello(identity: configuration.identity, database: configuration.database,
                            user: configuration.user, password: configuration.password, to: &writer)
        // A peer that accepts TCP and then says nothing (a port of some other service) would
        // otherwise hold the caller for ever: the TLS handler holds our Hello, so the read that the
        // read timeout bounds never starts. The deadline starts on the event loop as the Hello is
        // written and ends once the server's Hello is decoded: one that sends a first byte and then
        // trickles (the read timeout is per read) does not hold the caller either. It times the
        // server alone: while bytes wait for a reader whose task is slow to run, it does not expire
        // (a test blocking the cooperative threads once stalled the process for 27 s).
        let timeout = configuration.handshakeTimeout.timeAmount
        let expiry = ClickHouseConnectionError.timeout("no handshake from \(configuration.host):\(configuration.port) within \(timeout.milliseconds) ms"
                                                       + " (is it ClickHouse's native port? usually 9000, 9440 with TLS)")
        let hello = channel.allocator.buffer(bytes: writer.bytes)
        do {
            try await channel.eventLoop.flatSubmit { [channel, handler] in
                handler.expectAnswer(within: timeout, orExpireWith: expiry)
                return channel.writeAndFlush(hello)
            }.get()
        } catch {
            throw fail("cannot send: \(error)")
        }
        let packet = try await nextPacket()
        channel.eventLoop.execute { [handler] in handler.answerComplete() }
        if case let .exception(error) = packet {
            machine.closed("handshake failed")
            throw error
        }
        switch machine.received(packet) {
        case let .ready(serverInfo):
            info = serverInfo
            decoder.revision = serverInfo.negotiatedRevision
            var addendum = ByteWriter()
            ClientPackets.addendum(quotaKey: configuration.quotaKey, revision: serverInfo.negotiatedRevision, to: &addendum)
            if addendum.count > 0 { try await send(addendum.bytes) }
        default:
            throw fail("unexpected \(packet.name) during the handshake")
        }
    }

    /// Closes the connection.
    public func close() async {
        machine.closed("closed by the client")
        try? await channel.close()
    }

    // MARK: Requests

    /// Runs a query and returns its result blocks as they arrive. The first block is the header
    /// (column names and types, no rows). Progress, logs, profile information, totals and extremes
    /// go to `onEvent`.
    public func query(_ sql: String, settings: [QuerySetting] = [], parameters: [String: String] = [:],
                      externalTables: [ExternalTable] = [],
                      queryID: String = "", onEvent: (@Sendable (QueryEvent) -> Void)? = nil) async throws -> QueryResult {
        try await exclusively { try await startQuery(sql, settings: settings, parameters: parameters, externalTables: externalTables,
                                                     queryID: queryID, onEvent: onEvent) }
    }

    private func startQuery(_ sql: String, settings: [QuerySetting], parameters: [String: String], externalTables: [ExternalTable],
                            queryID: String, onEvent: (@Sendable (QueryEvent) -> Void)?) async throws -> QueryResult {
        // The server would send the table's sample block and wait for data blocks until its
        // receive timeout (5 minutes), ignoring rows written in the text.
        guard !SQLText.isInsertOfClientRows(sql) else {
            throw ClickHouseClientError("an INSERT with VALUES or FORMAT takes its rows as blocks: use insert(_:blocks:) (over the native protocol the server ignores rows written in the query text)")
        }
        try await prepareForRequest()
        let bytes = try encodeQuery(sql, settings: settings, parameters: parameters, externalTables: externalTables, queryID: queryID)
        try machine.queryStarted()
        eventHandler = onEvent
        queryToken += 1
        cancelSent = false
        try await send(bytes)
        return QueryResult(connection: self, token: queryToken)
    }

    /// Runs a statement (DDL, SET, ...) and waits for it to finish, discarding any result rows.
    public func execute(_ sql: String, settings: [QuerySetting] = [], parameters: [String: String] = [:]) async throws {
        for try await _ in try await query(sql, settings: settings, parameters: parameters) {}
    }

    /// Runs a query and collects all its blocks (including the header block).
    public func collect(_ sql: String, settings: [QuerySetting] = [], parameters: [String: String] = [:],
                        externalTables: [ExternalTable] = []) async throws -> [Block] {
        var blocks: [Block] = []
        for try await block in try await query(sql, settings: settings, parameters: parameters, externalTables: externalTables) { blocks.append(block) }
        return blocks
    }

    /// Sends Ping and waits for Pong. Cancelling the calling task closes the connection (a Pong
    /// cannot be told from what a stalled server sends later).
    public func ping() async throws {
        try await exclusively { try await runPing() }
    }

    private func runPing() async throws {
        try await closingOnCancel {
            try await prepareForRequest()
            try machine.pingStarted()
            var writer = ByteWriter()
            ClientPackets.ping(to: &writer)
            try await send(writer.bytes)
            let deadline = ContinuousClock.now + configuration.readTimeout
            while true {
                switch machine.received(try await nextPacket()) {
                case .finished: return
                case let .close(reason): throw fail(reason)
                default:
                    guard ContinuousClock.now < deadline else {
                        throw fail("no Pong within \(configuration.readTimeout.timeAmount.milliseconds) ms: the server sent other packets instead")
                    }
                }
            }
        }
    }

    /// Runs `body`; if the calling task is cancelled meanwhile, the socket is closed, so that the
    /// body's waits end at once (with an error) instead of at the read timeout, and the connection
    /// is not reused.
    private func closingOnCancel<R>(_ body: () async throws -> R) async throws -> R {
        do {
            return try await withTaskCancellationHandler {
                try await body()
            } onCancel: { [channel] in
                channel.close(promise: nil)
            }
        } catch {
            if Task.isCancelled {
                _ = fail("the request's task was cancelled")
                throw CancellationError()
            }
            throw error
        }
    }

    /// Inserts blocks with `INSERT INTO table [(columns)] VALUES`, streaming them one at a time.
    /// Every block must have exactly the columns (names and types) of the server's sample block;
    /// a mismatch is reported before any data is sent. Returns after the server confirmed the insert.
    public func insert<Blocks: AsyncSequence>(_ sql: String, blocks: Blocks, settings: [QuerySetting] = []) async throws
    where Blocks.Element == Block {
        try await exclusively {
            try await closingOnCancel {
                try await runInsert(sql, settings: settings, blocksFor: { _ in blocks }, rowsGiven: Self.hasRows(blocks))
            }
        }
    }

    /// Whether blocks given to an INSERT hold rows: a ``BlockSequence``'s are looked at; any other
    /// sequence counts as having some (reading a live stream could wait without end, and would
    /// take its first block).
    private static func hasRows<Blocks: AsyncSequence>(_ blocks: Blocks) -> Bool where Blocks.Element == Block {
        guard let sequence = blocks as? BlockSequence else { return true }
        return sequence.blocks.contains { $0.rowCount > 0 }
    }

    /// Inserts the blocks that `blocksFor` makes from the server's sample block (the table's
    /// column names and types), e.g. text input parsed into exactly those columns.
    public func insert<Blocks: AsyncSequence>(_ sql: String, settings: [QuerySetting] = [],
                                              blocksFor: (Block) throws -> Blocks) async throws
    where Blocks.Element == Block {
        try await exclusively { try await closingOnCancel { try await runInsert(sql, settings: settings, blocksFor: blocksFor, rowsGiven: false) } }
    }

    /// Whether a task is inside a request's wait on this connection (the actor lets another task in
    /// while it waits for the socket).
    private var requestInProgress = false

    /// Runs `body` unless another task is inside a request on this connection, which gets
    /// ``ClickHouseConnectionError/busy`` untouched. Found in review: a query started while
    /// another task waited for its result's next packet drained that result, and the waiting task
    /// then saw its stream end as if complete, rows missing. A connection serves one request at a
    /// time; a pool (``ClickHouseClient``) serves concurrent tasks.
    private func exclusively<R>(_ body: () async throws -> R) async throws -> R {
        guard !requestInProgress else { throw ClickHouseConnectionError.busy }
        requestInProgress = true
        defer { requestInProgress = false }
        return try await body()
    }

    /// `rowsGiven`: whether the caller has rows, for a server that ends the statement without asking
    /// for data (an `INSERT ... SELECT` or inline `VALUES` needs none). Rows it never asked for were
    /// not sent: that is an error, not a success.
    private func runInsert<Blocks: AsyncSequence>(_ sql: String, settings: [QuerySetting],
                                                  blocksFor: (Block) throws -> Blocks, rowsGiven: Bool) async throws
    where Blocks.Element == Block {
        try await prepareForRequest()
        let bytes = try encodeQuery(sql, settings: settings, parameters: [:], queryID: "")
        try machine.insertStarted()
        eventHandler = nil
        try await send(bytes)

        var header: Block?
        while header == nil {
            switch machine.received(try await nextPacket()) {
            case let .sendData(sample): header = sample
            case .finished:
                // A statement that needed no data; or rows were given, and none of them went. Not a
                // transient error: sent again, an `INSERT ... SELECT` would run again.
                if rowsGiven {
                    throw ClickHouseClientError("the server ended the INSERT without asking for the rows given: they were not sent")
                }
                return
            case let action: if let error = failure(ending: action) { throw error }
            }
        }
        let compression: CompressionMethod? = configuration.compression == .none ? nil : configuration.compression
        let revision = server.negotiatedRevision
        var sentAny = false
        // One packet writer, one scratch block and one socket buffer for all blocks: a large insert
        // would otherwise fault in fresh pages for each of them on every block.
        var packet = ByteWriter()
        var scratch = ByteWriter()
        var outbound = channel.allocator.buffer(capacity: 0)
        do {
            for try await block in try blocksFor(header!) {
                if let mismatch = Self.mismatch(block, header!) {
                    if sentAny {
                        throw fail("INSERT block does not match the table: \(mismatch)")
                    }
                    try await finishInsert(compression: compression, revision: revision)
                    throw ClickHouseConnectionError.insertMismatch(mismatch)
                }
                guard block.rowCount > 0 else { continue }
                outbound.clear()
                if compression == nil {
                    try ClientPackets.data(block, revision: revision, to: &outbound, scratch: &scratch)
                } else {
                    packet.reset()
                    try ClientPackets.data(block, compression: compression, zstdLevel: configuration.zstdLevel, revision: revision,
                                           to: &packet, scratch: &scratch)
                    outbound.writeBytes(packet.bytes)
                }
                try await send(outbound)
                sentAny = true
                try readWhileSending()
            }
        } catch {
            // The block source failed (or encoding failed, or the connection did) part-way: closing
            // makes the server abort the INSERT rather than end it with our terminating block. What
            // it already wrote stays: it writes blocks as they arrive (squashed up to
            // min_insert_block_size_rows), so an INSERT of many blocks is not all-or-nothing. (Also
            // for a ClickHouseConnectionError the source threw, from another connection: this one
            // is still mid-INSERT then.)
            // (Not after a mismatch in the first block: that INSERT was ended cleanly, empty.)
            if !machine.isClosed && !machine.isIdle { _ = fail("INSERT aborted: \(error)") }
            throw error
        }
        try await finishInsert(compression: compression, revision: revision)
    }

    /// Inserts one block into `table` (columns named after the block's).
    public func insert(into table: String, _ block: Block, settings: [QuerySetting] = []) async throws {
        let columns = block.columns.map { quoteIdentifier($0.name) }.joined(separator: ", ")
        try await insert("INSERT INTO \(table) (\(columns)) VALUES", blocks: BlockSequence([block]), settings: settings)
    }

    private func finishInsert(compression: CompressionMethod?, revision: UInt64) async throws {
        var writer = ByteWriter()
        try ClientPackets.data(Block(columns: []), compression: compression, zstdLevel: configuration.zstdLevel, revision: revision, to: &writer)
        try await send(writer.bytes)
        machine.insertDataFinished()
        while true {
            switch machine.received(try await nextPacket()) {
            case .finished: return
            case let action: if let error = failure(ending: action) { throw error }
            }
        }
    }

    /// Takes what the server sent while INSERT blocks go out, without waiting. Servers of revision
    /// 54456 and later answer every block with ProfileEvents: unread, they would fill the socket
    /// buffers until the server stops reading and the INSERT hangs. An Exception (the server failed
    /// on a block) ends the INSERT at once.
    private func readWhileSending() throws {
        handler.readAhead()
        while let packet = try bufferedPacket() {
            if let error = failure(ending: machine.received(packet)) { throw error }
        }
    }

    static func mismatch(_ block: Block, _ header: Block) -> String? {
        let expected = header.columns.map { "\($0.name) \($0.column.type.name)" }
        let actual = block.columns.map { "\($0.name) \($0.column.type.name)" }
        guard expected != actual else { return nil }
        let expectedNames = Set(header.columns.map(\.name))
        let actualNames = Set(block.columns.map(\.name))
        if let missing = header.columns.first(where: { !actualNames.contains($0.name) }) {
            return "column \(missing.name) (\(missing.column.type.name)) is missing"
        }
        if let extra = block.columns.first(where: { !expectedNames.contains($0.name) }) {
            return "column \(extra.name) is not in the table (\(expected.joined(separator: ", ")))"
        }
        for (column, wanted) in zip(block.columns, header.columns) where column.name == wanted.name && column.column.type != wanted.column.type {
            return "column \(column.name) has type \(column.column.type.name), the table has \(wanted.column.type.name)"
        }
        return "columns must be in the table's order: \(expected.joined(separator: ", "))"
    }

    private func encodeQuery(_ sql: String, settings: [QuerySetting], parameters: [String: String],
                             externalTables: [ExternalTable] = [], queryID: String) throws -> [UInt8] {
        guard let info else { throw ClickHouseConnectionError.closed("no handshake") }
        var merged = configuration.settings.filter { base in !settings.contains { $0.name == base.name } } + settings
        if configuration.compression == .zstd, !merged.contains(where: { $0.name == "network_compression_method" }) {
            // 18.x spells method names in lower case; newer servers accept either.
            merged.append(QuerySetting("network_compression_method", "zstd"))
            merged.append(QuerySetting("network_zstd_compression_level", String(configuration.zstdLevel)))
        }
        let compressed = configuration.compression != .none
        var writer = ByteWriter()
        try ClientPackets.query(.init(id: queryID, text: sql, settings: merged, parameters: parameters,
                                      compression: compressed, quotaKey: configuration.quotaKey),
                                identity: configuration.identity, revision: info.negotiatedRevision, to: &writer)
        // Every query is followed by its external tables, then an empty block that ends the list.
        for table in externalTables {
            // The server ends the list at the first block without columns: the list's real end would
            // then arrive after the query, and the server closes the connection on that stray block.
            guard !table.block.columns.isEmpty else {
                throw ClickHouseClientError("external table \(table.name) has no columns (the server would take it for the end of the external tables)")
            }
            try ClientPackets.data(table.block, table: table.name, compression: compressed ? configuration.compression : nil,
                                   zstdLevel: configuration.zstdLevel, revision: info.negotiatedRevision, to: &writer)
        }
        try ClientPackets.data(Block(columns: []), compression: compressed ? configuration.compression : nil,
                               revision: info.negotiatedRevision, to: &writer)
        decoder.compression = compressed
        return writer.bytes
    }

    /// Before a new request: finish what a previous consumer abandoned, or refuse if broken. The
    /// previous query's result stream ends here: reading it on afterwards throws
    /// ``ClickHouseConnectionError/superseded`` rather than ending early as if complete.
    private func prepareForRequest() async throws {
        queryToken += 1
        switch machine.state {
        case .idle:
            // Nothing comes between answers: bytes left over belong to no request (a server bug, or
            // someone on the path), and would be read as the start of the next answer.
            let count = strayByteCount
            guard count == 0 else {
                throw fail("the server sent \(count) byte\(count == 1 ? "" : "s") after the end of its last answer; the connection is out of step")
            }
            return
        case let .closed(reason): throw ClickHouseConnectionError.closed(reason)
        case .querying, .draining:
            try await drain()
        default:
            throw fail("a previous request was interrupted in state \(machine.state)")
        }
    }

    /// Sends Cancel (once) and reads the response to its end.
    private func drain() async throws {
        if !cancelSent {
            var writer = ByteWriter()
            ClientPackets.cancel(to: &writer)
            try await send(writer.bytes)
            cancelSent = true
        }
        machine.cancelSent()
        // The read timeout bounds each wait, not a server that goes on sending: this bounds that.
        let deadline = ContinuousClock.now + configuration.readTimeout
        while true {
            switch machine.received(try await nextPacket()) {
            case .finished, .failed: return
            case let .failedClosing(error): throw ClickHouseConnectionError.closed("\(closeAfter(error))")
            case let .close(reason): throw fail(reason)
            default:
                guard ContinuousClock.now < deadline else {
                    throw fail("the server went on answering for \(configuration.readTimeout.timeAmount.milliseconds) ms after its query was cancelled")
                }
            }
        }
    }

    /// The next result block of query `token`, or nil when the response ended.
    func nextBlock(token: Int) async throws -> Block? {
        guard token == queryToken else { throw ClickHouseConnectionError.superseded }
        return try await exclusively { try await readNextBlock() }
    }

    private func readNextBlock() async throws -> Block? {
        while true {
            if machine.isIdle { return nil }
            if Task.isCancelled && !cancelSent {
                try await drain()
                throw CancellationError()
            }
            let packet = try await withTaskCancellationHandler {
                try await nextPacket()
            } onCancel: { [channel] in
                // Ask the server to stop at once; the loop above drains what is already on its way.
                var writer = ByteWriter()
                ClientPackets.cancel(to: &writer)
                channel.writeAndFlush(channel.allocator.buffer(bytes: writer.bytes), promise: nil)
            }
            if Task.isCancelled { cancelSent = true }
            switch machine.received(packet) {
            case let .deliverBlock(block):
                if block.columns.isEmpty { continue }  // the end-of-data marker
                if Task.isCancelled { continue }
                return block
            case let .deliverEvent(event):
                eventHandler?(event)
            case .finished:
                eventHandler = nil
                if Task.isCancelled { throw CancellationError() }
                return nil
            case let .failed(error):
                eventHandler = nil
                if Task.isCancelled { throw CancellationError() }
                throw error
            case let .failedClosing(error):
                eventHandler = nil
                let error = closeAfter(error)
                if Task.isCancelled { throw CancellationError() }
                throw error
            case let .close(reason):
                throw fail(reason)
            default:
                continue
            }
        }
    }

    // MARK: I/O

    private func send(_ bytes: [UInt8]) async throws {
        try await send(channel.allocator.buffer(bytes: bytes))
    }

    private func send(_ buffer: ByteBuffer) async throws {
        // A server that stopped reading (a host gone without a reset, a full receive window)
        // would hold a write until the kernel gives up, some 15 minutes. A write that makes no
        // progress for the read timeout (the bytes the channel still holds do not shrink) closes
        // the channel, which fails it; a large block that goes out slowly is not cut off.
        let channel = self.channel
        let interval = configuration.readTimeout.timeAmount
        let stalled = NIOLockedValueBox(false)
        do {
            try await channel.eventLoop.flatSubmit {
                let written = channel.writeAndFlush(buffer)
                let buffered = Self.bufferedBytes(channel)
                // Most writes are all in the kernel by now: nothing to watch, no timer.
                guard buffered > 0 else { return written }
                let progress = WriteProgress(buffered: buffered)
                Self.watch(progress, channel: channel, every: interval) { stalled.withLockedValue { $0 = true } }
                written.whenComplete { _ in progress.timer?.cancel() }
                return written
            }.get()
        } catch {
            if stalled.withLockedValue({ $0 }) {
                machine.closed("send timed out")
                throw ClickHouseConnectionError.timeout(
                    "\(configuration.host):\(configuration.port) took nothing of a request for \(configuration.readTimeout) (the server stopped reading)")
            }
            throw fail("cannot send: \(error)")
        }
    }

    /// Bytes written to the channel and not yet taken by the kernel (on the channel's event loop).
    private static func bufferedBytes(_ channel: Channel) -> Int {
        (try? channel.syncOptions?.getOption(ChannelOptions.bufferedWritableBytes)) ?? 0
    }

    /// Looks every `interval` whether the write moved on; closes the channel when it did not.
    private static func watch(_ progress: WriteProgress, channel: Channel, every interval: TimeAmount,
                              onStall: @escaping @Sendable () -> Void) {
        progress.timer = channel.eventLoop.scheduleTask(in: interval) {
            let buffered = bufferedBytes(channel)
            if buffered >= progress.buffered {
                onStall()
                channel.close(promise: nil)
            } else {
                progress.buffered = buffered
                watch(progress, channel: channel, every: interval, onStall: onStall)
            }
        }
    }

    /// The error that `action` ends the request with (the server's exception, or the connection
    /// found broken, which then closes), or nil when the request goes on.
    private func failure(ending action: ConnectionStateMachine.Action) -> Error? {
        switch action {
        case let .failed(error): return error
        case let .failedClosing(error): return closeAfter(error)
        case let .close(reason): return fail(reason)
        default: return nil
        }
    }

    /// Closes the socket after a server exception that leaves the connection out of step (the
    /// state machine has already marked it closed) and returns the exception to throw.
    private func closeAfter(_ error: ServerException) -> ServerException {
        channel.close(promise: nil)
        logger.debug("ClickHouse connection closed after a server exception", metadata: ["error": "\(error)"])
        return error
    }

    /// Marks the connection broken, closes the socket and returns the error to throw.
    private func fail(_ reason: String) -> ClickHouseConnectionError {
        machine.closed(reason)
        channel.close(promise: nil)
        logger.debug("ClickHouse connection closed", metadata: ["reason": "\(reason)"])
        return .closed(reason)
    }

    /// The next packet. Bytes are decoded straight from the chunk they arrived in while nothing
    /// is carried over, so the columns of a large block take their bytes from each chunk directly;
    /// only the part of a packet that a chunk ends inside is copied into `carry`.
    private func nextPacket() async throws -> ServerPacket {
        while true {
            if let packet = try decodeBuffered() { return packet }
            chunk = try await readChunk()
        }
    }

    /// The next packet from bytes already read, without waiting for the socket; nil when they do
    /// not hold a whole packet.
    private func bufferedPacket() throws -> ServerPacket? {
        while true {
            if let packet = try decodeBuffered() { return packet }
            guard let buffer = handler.takeAvailable() else { return nil }
            chunk = buffer
        }
    }

    /// A packet decoded from the carried bytes and the current chunk, or nil when they are used
    /// up (or end inside a packet) and another chunk is needed.
    private func decodeBuffered() throws -> ServerPacket? {
        while true {
            let carried = carry.count - carryStart
            if carried > 0 && carried >= required {
                let bytes = carry
                var position = carryStart
                let packet = try bytes.withUnsafeBytes { raw in try decodePacket(raw, from: position, advancing: &position) }
                carryStart = position
                if let packet { return packet }
                continue
            }
            if var chunk, chunk.readableBytes > 0 {
                if carried > 0 {
                    // Complete the carried bytes. While only a little is carried (a packet or column
                    // header), take just what the decoder asked for: once it has got past the
                    // header, the rest of the chunk is decoded where it is.
                    let wanted = carried < Self.smallCarry ? max(required - carried, Self.smallCarry) : chunk.readableBytes
                    let taken = min(wanted, chunk.readableBytes)
                    chunk.withUnsafeReadableBytes { carry.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0[..<taken])) }
                    chunk.moveReaderIndex(forwardBy: taken)
                    self.chunk = chunk
                    continue
                }
                carry.removeAll(keepingCapacity: true)
                carryStart = 0
                if chunk.readableBytes >= required {
                    var consumed = 0
                    let packet = try chunk.withUnsafeReadableBytes { raw in try decodePacket(raw, from: 0, advancing: &consumed) }
                    chunk.moveReaderIndex(forwardBy: consumed)
                    if let packet {
                        self.chunk = chunk
                        return packet
                    }
                }
                // The chunk ends inside a packet: carry the rest of it.
                chunk.withUnsafeReadableBytes { carry.append(contentsOf: $0) }
                self.chunk = nil
                continue
            }
            if carryStart > 0 && carryStart >= carry.count / 2 {
                carry.removeFirst(carryStart)
                carryStart = 0
            }
            return nil
        }
    }

    /// Below this many carried bytes, a chunk is added to the carry a piece at a time.
    private static let smallCarry = 4096

    /// Decodes one packet at `offset` and sets `position` past it; nil when the bytes end inside it
    /// (`position` is then where the decoder resumes, and `required` says how much it needs from there).
    private func decodePacket(_ bytes: UnsafeRawBufferPointer, from offset: Int, advancing position: inout Int) throws -> ServerPacket? {
        do {
            var reader = ByteReader(bytes, offset: offset)
            let packet = try decoder.decode(&reader)
            position = reader.offset
            required = 0
            completing = 0
            return packet
        } catch let need as NeedMoreData {
            position = need.resumeOffset
            // Never retry on the same bytes: that would spin without reading.
            required = max(need.minimumBytes, bytes.count - need.resumeOffset + 1)
            completing = max(need.completingBytes, required)
            return nil
        } catch let error as ClickHouseProtocolError {
            if info == nil { handshakeProtocolError = error }
            let closed = fail(error.message)
            // Not transient: a result over the limit is over it every time it is asked for.
            throw error.isOverLimit ? ClickHouseClientError(error.message) : closed
        } catch {
            throw fail("cannot decode a server packet: \(error)")
        }
    }

    static let closedByServer = "the server closed the connection"

    private func readChunk() async throws -> ByteBuffer {
        let chunk: ByteBuffer?
        do {
            // Called only when every byte read so far is taken or carried, so the socket needs to
            // hold what the decoder still lacks before a read is worth a wake-up.
            let lacking = completing - (carry.count - carryStart)
            chunk = try await handler.nextChunk(eventLoop: channel.eventLoop, timeout: configuration.readTimeout.timeAmount,
                                                wanted: lacking).get()
        } catch let error as ClickHouseConnectionError {
            if case let .timeout(what) = error { _ = fail(what) }
            throw error
        } catch {
            throw fail("read failed: \(error)")
        }
        guard let chunk else { throw fail(Self.closedByServer) }
        return chunk
    }
}

/// The result blocks of one query, read from the socket as they are consumed.
public struct QueryResult: AsyncSequence, Sendable {
    public typealias Element = Block
    let connection: ClickHouseConnection
    let token: Int

    public struct AsyncIterator: AsyncIteratorProtocol {
        let connection: ClickHouseConnection
        let token: Int
        var ended = false
        public mutating func next() async throws -> Block? {
            if ended { return nil }
            let block = try await connection.nextBlock(token: token)
            if block == nil { ended = true }
            return block
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(connection: connection, token: token) }
}

/// Blocks already in memory, as the sequence `insert(_:blocks:)` takes.
public struct BlockSequence: AsyncSequence, Sendable {
    public typealias Element = Block
    public let blocks: [Block]
    public init(_ blocks: [Block]) { self.blocks = blocks }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var remaining: ArraySlice<Block>
        public mutating func next() async -> Block? { remaining.popFirst() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(remaining: blocks[...]) }
}

func quoteIdentifier(_ name: String) -> String {
    var result = "`"
    for scalar in name.unicodeScalars {
        if scalar == "`" || scalar == "\\" { result += "\\" }
        result.unicodeScalars.append(scalar)
    }
    return result + "`"
}

/// A write's watch (see `send`): touched on its channel's event loop only.
private final class WriteProgress: @unchecked Sendable {
    var buffered: Int
    var timer: Scheduled<Void>?
    init(buffered: Int) { self.buffered = buffered }
}
