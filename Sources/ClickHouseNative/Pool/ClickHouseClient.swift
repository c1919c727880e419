import Logging
import NIOCore
import NIOPosix

/// A pool of native connections to one or more ClickHouse servers: the client application code uses.
///
/// - At most ``Options/maximumConnections`` connections are open; requests beyond that wait, served
///   in arrival order, for at most ``Options/acquireTimeout``.
/// - A connection that broke (or is mid-response) is never handed out again: it is closed and replaced.
/// - A connection idle for longer than ``Options/healthCheckAfterIdle`` is pinged before use, and one
///   idle for longer than ``Options/idleTimeout`` is closed.
/// - New connections try the hosts in order, starting after the last one that failed, so a dead
///   server fails over to the next.
///
/// ```swift
/// let client = ClickHouseClient(hosts: [ClickHouseConfiguration(host: "localhost")])
/// let blocks = try await client.collect("SELECT count() FROM events")
/// try await client.withConnection { connection in
///     for try await block in try await connection.query("SELECT * FROM events") { ... }
/// }
/// ```
public actor ClickHouseClient {
    public struct Options: Sendable {
        public var maximumConnections = 8
        public var acquireTimeout: Duration = .seconds(30)
        public var idleTimeout: Duration = .seconds(300)
        public var healthCheckAfterIdle: Duration = .seconds(5)
        /// How long that ping may take: a host that stopped answering (power lost, no reset) would
        /// otherwise hold the request for the whole read timeout before it fails over.
        public var healthCheckTimeout: Duration = .seconds(5)
        public init() {}
    }

    private struct IdleConnection {
        let connection: ClickHouseConnection
        let since: ContinuousClock.Instant
    }

    private struct Waiter {
        let id: Int
        let continuation: CheckedContinuation<HandOff, Error>
    }

    /// What a waiter is woken with: a connection, or a slot already counted in `openCount` for
    /// it, so that no request arriving meanwhile takes it first.
    private enum HandOff {
        case connection(ClickHouseConnection)
        case slot
    }

    public nonisolated let hosts: [ClickHouseConfiguration]
    public nonisolated let options: Options
    private let eventLoopGroup: EventLoopGroup
    private let logger: Logger
    private var idle: [IdleConnection] = []
    private var openCount = 0
    private var waiters: [Waiter] = []
    private var nextWaiterID = 0
    private var preferredHost = 0
    private var isShutDown = false

    public init(hosts: [ClickHouseConfiguration], options: Options = Options(),
                eventLoopGroup: EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                logger: Logger = Logger(label: "ClickHouseNative.pool")) {
        precondition(!hosts.isEmpty, "a client needs at least one host")
        self.hosts = hosts
        self.options = options
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
    }

    /// Connections open now (idle and in use).
    public var openConnections: Int { openCount }
    /// Tasks waiting for a connection.
    public var waitingCount: Int { waiters.count }
    public var idleConnections: Int { idle.count }

    /// Runs `body` with a connection of the pool, returning it afterwards (or discarding it if broken).
    public func withConnection<R: Sendable>(_ body: @Sendable (ClickHouseConnection) async throws -> R) async throws -> R {
        let connection = try await acquire()
        if Task.isCancelled {
            // Cancelled while it waited: the connection goes back unused rather than being closed
            // under a request that would end at once.
            await release(connection)
            throw CancellationError()
        }
        do {
            let result = try await body(connection)
            await release(connection)
            return result
        } catch {
            await release(connection)
            throw error
        }
    }

    /// Collects all blocks of a query (the first is the header block).
    public func collect(_ sql: String, settings: [QuerySetting] = [], parameters: [String: String] = [:],
                        externalTables: [ExternalTable] = []) async throws -> [Block] {
        try await withConnection { try await $0.collect(sql, settings: settings, parameters: parameters, externalTables: externalTables) }
    }

    public func execute(_ sql: String, settings: [QuerySetting] = [], parameters: [String: String] = [:]) async throws {
        try await withConnection { try await $0.execute(sql, settings: settings, parameters: parameters) }
    }

    public func insert(into table: String, _ block: Block, settings: [QuerySetting] = []) async throws {
        try await withConnection { try await $0.insert(into: table, block, settings: settings) }
    }

    /// Closes idle connections and refuses new requests; waiting requests fail.
    public func shutdown() async {
        isShutDown = true
        for waiter in waiters { waiter.continuation.resume(throwing: ClickHouseConnectionError.closed("the client was shut down")) }
        waiters.removeAll()
        let connections = idle.map(\.connection)
        idle.removeAll()
        openCount -= connections.count
        for connection in connections { await connection.close() }
    }

    // MARK: Acquire and release

    func acquire() async throws -> ClickHouseConnection {
        let deadline = ContinuousClock.now + options.acquireTimeout
        while true {
            guard !isShutDown else { throw ClickHouseConnectionError.closed("the client was shut down") }
            // A cancelled task would ping (and so close) every idle connection it tried.
            try Task.checkCancellation()
            pruneIdle()
            if let candidate = idle.popLast() {
                if await isHealthy(candidate) { return candidate.connection }
                // The freed slot goes to whoever waited longer (and is not lost if this task was
                // cancelled), before the close: that suspends this actor, and a request arriving
                // meanwhile would take the slot ahead of the waiters.
                openCount -= 1
                handOffSlot()
                await candidate.connection.close()
                continue
            }
            if openCount < options.maximumConnections {
                openCount += 1
                do {
                    return try await openConnection()
                } catch {
                    openCount -= 1
                    handOffSlot()
                    throw error
                }
            }
            // Wait for a connection to come back (or a slot to free up), in arrival order.
            switch try await waitForRelease(until: deadline) {
            case let .connection(connection):
                return connection
            case .slot:
                // Counted for this task already: opened here, or passed on if this task cannot.
                do {
                    guard !isShutDown else { throw ClickHouseConnectionError.closed("the client was shut down") }
                    try Task.checkCancellation()
                    return try await openConnection()
                } catch {
                    openCount -= 1
                    handOffSlot()
                    throw error
                }
            }
        }
    }

    func release(_ connection: ClickHouseConnection) async {
        let usable = await connection.isUsable
        let isIdle = await connection.isIdle
        // A discarded connection's slot is handed on before its close, which suspends this actor:
        // a request arriving meanwhile would otherwise take it ahead of the waiters.
        guard usable else {
            openCount -= 1
            handOffSlot()
            await connection.close()
            return
        }
        if !isIdle {
            // A response was left unread: drain it before anyone else uses the connection.
            do {
                try await connection.ping()
            } catch {
                openCount -= 1
                handOffSlot()
                await connection.close()
                return
            }
        }
        if isShutDown {
            openCount -= 1
            await connection.close()
        } else if !waiters.isEmpty {
            waiters.removeFirst().continuation.resume(returning: .connection(connection))
        } else {
            idle.append(IdleConnection(connection: connection, since: .now))
        }
    }

    /// A slot freed up (a connection was discarded): the first waiter gets it, counted for it
    /// here, and opens a new connection.
    private func handOffSlot() {
        guard !waiters.isEmpty, openCount < options.maximumConnections else { return }
        openCount += 1
        waiters.removeFirst().continuation.resume(returning: .slot)
    }

    private func waitForRelease(until deadline: ContinuousClock.Instant) async throws -> HandOff {
        nextWaiterID += 1
        let id = nextWaiterID
        let timeout = Task { [weak self] in
            try await Task.sleep(until: deadline, clock: .continuous)
            await self?.expireWaiter(id)
        }
        defer { timeout.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                if Task.isCancelled {
                    continuation.resume(throwing: CancellationError())
                } else {
                    waiters.append(Waiter(id: id, continuation: continuation))
                }
            }
        } onCancel: {
            // A cancelled request leaves the queue at once instead of taking a connection later.
            Task { await self.removeWaiter(id, with: CancellationError()) }
        }
    }

    private func expireWaiter(_ id: Int) {
        removeWaiter(id, with: ClickHouseConnectionError.timeout(
            "no connection free within \(options.acquireTimeout) (pool of \(options.maximumConnections))"))
    }

    private func removeWaiter(_ id: Int, with error: Error) {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: index).continuation.resume(throwing: error)
    }

    private func pruneIdle() {
        let now = ContinuousClock.now
        let expired = idle.filter { now - $0.since > options.idleTimeout }
        guard !expired.isEmpty else { return }
        idle.removeAll { now - $0.since > options.idleTimeout }
        openCount -= expired.count
        for item in expired { Task { await item.connection.close() } }
    }

    private func isHealthy(_ candidate: IdleConnection) async -> Bool {
        guard await candidate.connection.isUsable else { return false }
        guard ContinuousClock.now - candidate.since > options.healthCheckAfterIdle else { return true }
        let connection = candidate.connection
        let limit = options.healthCheckTimeout
        do {
            // The ping races a timer; the loser is cancelled (a cancelled ping closes its connection).
            let answered = try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask { try await connection.ping(); return true }
                group.addTask { try await Task.sleep(for: limit); return false }
                defer { group.cancelAll() }
                return try await group.next() ?? false
            }
            if !answered {
                logger.info("discarding a pooled ClickHouse connection that did not answer its health check", metadata: ["within": "\(limit)"])
            }
            return answered
        } catch {
            logger.info("discarding a pooled ClickHouse connection that failed its health check", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// Connects to the preferred host, failing over to the others in order.
    private func openConnection() async throws -> ClickHouseConnection {
        var failures: [String] = []
        for attempt in 0..<hosts.count {
            let index = (preferredHost + attempt) % hosts.count
            let host = hosts[index]
            do {
                let connection = try await ClickHouseConnection.connect(host, eventLoopGroup: eventLoopGroup, logger: logger)
                preferredHost = index
                return connection
            } catch let error as ServerException {
                throw error  // the server answered (e.g. wrong password): another host would not help
            } catch is CancellationError {
                throw CancellationError()  // the request's task was cancelled: no host is at fault
            } catch {
                switch error {
                case let ClickHouseConnectionError.connectFailed(reason): failures.append(reason)  // names the host
                case let error as ClickHouseConnectionError: failures.append("\(error)")  // a handshake timeout names it too
                default: failures.append("\(host.host):\(host.port): \(error)")
                }
                logger.warning("ClickHouse host unreachable, trying the next", metadata: ["host": "\(host.host):\(host.port)", "error": "\(failures.last!)"])
            }
        }
        throw ClickHouseConnectionError.connectFailed(failures.joined(separator: "; "))
    }
}
