/// The protocol state of one connection, with no I/O: it is told what was sent and what arrived,
/// and answers what the connection must do. The rule it enforces: a connection is reused only after
/// the response of its last request ended cleanly; anything unexpected makes it unusable.
struct ConnectionStateMachine: Sendable {
    enum State: Sendable, Equatable {
        /// Hello sent, waiting for the server's.
        case handshaking
        case idle
        /// A SELECT-like query is running; blocks are being delivered.
        case querying
        /// An INSERT: waiting for the server's sample block.
        case awaitingSampleBlock
        /// An INSERT: the client is sending data blocks.
        case sendingData
        /// An INSERT: the terminating empty block was sent; waiting for the end.
        case awaitingInsertEnd
        /// Cancel was sent; reading until the response ends.
        case draining
        case pinging
        case closed(reason: String)
    }

    /// What the connection must do with a packet.
    enum Action: Equatable {
        case none
        /// The handshake completed.
        case ready(ServerInfo)
        /// Hand a result block to the consumer.
        case deliverBlock(Block)
        /// Hand progress/profile/log information to the consumer.
        case deliverEvent(QueryEvent)
        /// The server is ready for INSERT data matching this header.
        case sendData(header: Block)
        /// The response ended; the connection is idle again.
        case finished
        /// The response ended with the server's exception; the connection is idle again.
        case failed(ServerException)
        /// The response ended with the server's exception, but the server may not have read all of
        /// the request (or reads what is left of it as new packets): the connection must be closed.
        case failedClosing(ServerException)
        /// The connection can no longer be used.
        case close(String)

        static func == (lhs: Action, rhs: Action) -> Bool {
            switch (lhs, rhs) {
            case (.none, .none), (.finished, .finished): return true
            case let (.ready(a), .ready(b)): return a == b
            case let (.failed(a), .failed(b)), let (.failedClosing(a), .failedClosing(b)): return a == b
            case let (.close(a), .close(b)): return a == b
            case (.deliverBlock, .deliverBlock), (.deliverEvent, .deliverEvent), (.sendData, .sendData): return true
            default: return false
            }
        }
    }

    private(set) var state: State = .handshaking
    private(set) var serverInfo: ServerInfo?
    /// Whether the server has sent anything for the current request. A server sends nothing before
    /// it has read the whole request (query, settings, external tables), so an Exception that
    /// comes first may have been thrown part-way through reading it: a server that then reads on
    /// takes the rest of our packet for new packets (ClickHouse 18.x answers each with another
    /// Exception).
    private var responded = false

    var isIdle: Bool { state == .idle }
    var isClosed: Bool { if case .closed = state { return true } else { return false } }

    mutating func queryStarted() throws {
        try requireIdle()
        state = .querying
        responded = false
    }

    mutating func insertStarted() throws {
        try requireIdle()
        state = .awaitingSampleBlock
        responded = false
    }

    mutating func pingStarted() throws {
        try requireIdle()
        state = .pinging
    }

    /// The client sent the terminating empty block of an INSERT.
    mutating func insertDataFinished() {
        if state == .sendingData { state = .awaitingInsertEnd }
    }

    /// Cancel was sent (task cancelled, or the consumer stopped reading early).
    mutating func cancelSent() {
        switch state {
        case .querying, .awaitingSampleBlock, .sendingData, .awaitingInsertEnd: state = .draining
        default: break
        }
    }

    mutating func closed(_ reason: String) {
        state = .closed(reason: reason)
    }

    private func requireIdle() throws {
        switch state {
        case .idle: return
        case let .closed(reason): throw ClickHouseConnectionError.closed(reason)
        default: throw ClickHouseConnectionError.busy
        }
    }

    mutating func received(_ packet: ServerPacket) -> Action {
        let respondedBefore = responded
        responded = true
        switch (state, packet) {
        case let (.handshaking, .hello(info)):
            serverInfo = info
            state = .idle
            return .ready(info)
        case let (.handshaking, .exception(error)):
            return close("handshake failed: \(error)")

        case (.pinging, .pong):
            state = .idle
            return .finished
        case (.pinging, .progress), (.pinging, .profileEvents), (.pinging, .log):
            return .none  // late packets of the previous query may precede the Pong

        case let (.querying, .data(block)):
            return .deliverBlock(block)
        case let (.querying, .totals(block)):
            return .deliverEvent(.totals(block))
        case let (.querying, .extremes(block)):
            return .deliverEvent(.extremes(block))

        case let (.awaitingSampleBlock, .data(header)):
            state = .sendingData
            return .sendData(header: header)
        case (.awaitingSampleBlock, .tableColumns):
            return .none

        case (.draining, .data), (.draining, .totals), (.draining, .extremes):
            return .none

        case let (.querying, .progress(p)), let (.awaitingSampleBlock, .progress(p)), let (.awaitingInsertEnd, .progress(p)),
             let (.sendingData, .progress(p)):
            return .deliverEvent(.progress(p))
        case let (.querying, .profileInfo(info)):
            return .deliverEvent(.profileInfo(info))
        case let (.querying, .log(block)), let (.awaitingSampleBlock, .log(block)), let (.sendingData, .log(block)),
             let (.awaitingInsertEnd, .log(block)):
            return .deliverEvent(.log(block))
        case let (.querying, .profileEvents(block)), let (.awaitingSampleBlock, .profileEvents(block)),
             let (.sendingData, .profileEvents(block)), let (.awaitingInsertEnd, .profileEvents(block)):
            return .deliverEvent(.profileEvents(block))
        case (.querying, .tableColumns), (.querying, .timezoneUpdate), (.querying, .ignored),
             (.awaitingSampleBlock, .timezoneUpdate):
            return .none
        case (.draining, _) where !packet.endsResponse:
            return .none

        case (.querying, .endOfStream), (.awaitingInsertEnd, .endOfStream), (.draining, .endOfStream):
            state = .idle
            return .finished
        case (.awaitingSampleBlock, .endOfStream):
            // A statement without data to send (newer servers execute inline VALUES directly).
            state = .idle
            return .finished
        case let (.querying, .exception(error)), let (.draining, .exception(error)), let (.awaitingSampleBlock, .exception(error)):
            guard respondedBefore else {
                // Possibly thrown while the server was still reading the request (a setting it
                // cannot parse): what it reads next is the rest of our packet.
                state = .closed(reason: "server exception before any other answer: \(error)")
                return .failedClosing(error)
            }
            state = .idle
            return .failed(error)
        case let (.sendingData, .exception(error)), let (.awaitingInsertEnd, .exception(error)):
            // The server failed while reading INSERT data. How much of the rest it skips depends
            // on its version (18.x skips nothing and answers each remaining block with another
            // Exception), so the connection is not reused.
            state = .closed(reason: "server exception during INSERT data: \(error)")
            return .failedClosing(error)

        default:
            return close("unexpected \(packet.name) while \(state)")
        }
    }

    private mutating func close(_ reason: String) -> Action {
        state = .closed(reason: reason)
        return .close(reason)
    }
}

extension ServerPacket {
    var endsResponse: Bool {
        switch self {
        case .endOfStream, .exception: return true
        default: return false
        }
    }

    var name: String {
        switch self {
        case .hello: return "Hello"
        case .data: return "Data"
        case .exception: return "Exception"
        case .progress: return "Progress"
        case .pong: return "Pong"
        case .endOfStream: return "EndOfStream"
        case .profileInfo: return "ProfileInfo"
        case .totals: return "Totals"
        case .extremes: return "Extremes"
        case .log: return "Log"
        case .tableColumns: return "TableColumns"
        case .profileEvents: return "ProfileEvents"
        case .timezoneUpdate: return "TimezoneUpdate"
        case let .ignored(code): return "packet \(code)"
        }
    }
}

/// Information a query reports besides its result blocks.
public enum QueryEvent: Sendable {
    case progress(Progress)
    case profileInfo(ProfileInfo)
    case totals(Block)
    case extremes(Block)
    case log(Block)
    case profileEvents(Block)
}

/// Errors of a connection's life cycle.
public enum ClickHouseConnectionError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The connection is closed (or was found broken) and cannot be used.
    case closed(String)
    /// Another request is still running on this connection.
    case busy
    /// A query's results were read after another request started on the same connection (which
    /// cancelled the query and drained what was left of it).
    case superseded
    case connectFailed(String)
    case timeout(String)
    /// The INSERT's columns do not match the table's sample block; nothing was sent.
    case insertMismatch(String)

    public var description: String {
        switch self {
        case let .closed(reason): return "connection closed: \(reason)"
        case .busy: return "the connection is busy with another request"
        case .superseded: return "the query's results were abandoned: another request started on the connection before they were read"
        case let .connectFailed(reason): return "cannot connect: \(reason)"
        case let .timeout(what): return "timed out: \(what)"
        case let .insertMismatch(reason): return "INSERT columns do not match the table: \(reason)"
        }
    }
}
