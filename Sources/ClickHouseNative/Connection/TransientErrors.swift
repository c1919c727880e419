/// Whether a failed request may succeed when sent again later, unchanged: what a caller needs to
/// choose between retrying (or answering "try again", as an HTTP 503) and reporting a fault.
public enum TransientErrors {
    /// True for a connection that failed or was lost, a timeout, and the server exceptions of
    /// ``ServerException/isTransient``; false for everything else (a query the server refuses, a
    /// result this client cannot read, a misuse of the connection).
    public static func contains(_ error: Error) -> Bool {
        switch error {
        case let error as ServerException: return error.isTransient
        case let error as ClickHouseConnectionError: return error.isTransient
        default: return false
        }
    }
}

extension ClickHouseConnectionError {
    /// The connection failed, was lost or timed out: a new one may do better. Busy, superseded and
    /// an INSERT that does not fit the table are the caller's to fix.
    public var isTransient: Bool {
        switch self {
        case .closed, .connectFailed, .timeout: return true
        case .busy, .superseded, .insertMismatch: return false
        }
    }
}

extension ServerException {
    /// The server (or its cluster) was overloaded, short of a resource for the moment, restarting,
    /// or without a replica: the same query may succeed later. Errors of the query itself (syntax,
    /// types, unknown tables or columns, access) are not.
    public var isTransient: Bool { Self.transientCodes.contains(code) }

    /// From ClickHouse's src/Common/ErrorCodes.cpp.
    static let transientCodes: Set<Int32> = [
        3,    // UNEXPECTED_END_OF_FILE (a connection between servers cut)
        32,   // ATTEMPT_TO_READ_AFTER_EOF
        159,  // TIMEOUT_EXCEEDED
        160,  // TOO_SLOW
        173,  // CANNOT_ALLOCATE_MEMORY
        201,  // QUOTA_EXPIRED (the quota's interval ends)
        202,  // TOO_MANY_SIMULTANEOUS_QUERIES
        203,  // NO_FREE_CONNECTION
        209,  // SOCKET_TIMEOUT
        210,  // NETWORK_ERROR
        225,  // NO_ZOOKEEPER
        234,  // NO_REPLICA_HAS_PART
        236,  // ABORTED
        241,  // MEMORY_LIMIT_EXCEEDED
        242,  // TABLE_IS_READ_ONLY (a replica without its coordinator)
        252,  // TOO_MANY_PARTS (merges catch up)
        254,  // NO_ACTIVE_REPLICAS
        265,  // NO_AVAILABLE_REPLICA
        279,  // ALL_CONNECTION_TRIES_FAILED
        285,  // TOO_FEW_LIVE_REPLICAS
        286,  // UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE
        319,  // UNKNOWN_STATUS_OF_INSERT
        364,  // RECEIVED_ERROR_TOO_MANY_REQUESTS
        369,  // ALL_REPLICAS_ARE_STALE
        373,  // SESSION_IS_LOCKED
        384,  // PART_IS_TEMPORARILY_LOCKED
        394,  // QUERY_WAS_CANCELLED (by the server, e.g. at shutdown)
        415,  // ALL_REPLICAS_LOST
        425,  // SYSTEM_ERROR
        439,  // CANNOT_SCHEDULE_TASK
        999,  // KEEPER_EXCEPTION
    ]
}
