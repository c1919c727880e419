import Foundation

/// Runs `body` on a thread of its own and waits for it without holding a thread of Swift's
/// cooperative pool. librdkafka's calls block their thread: a poll for up to its timeout, a group
/// join or leave for seconds. The pool has one thread per core (two here), so two such calls from
/// tests running in parallel stalled every other suite's tasks, once for 27 s, long enough to
/// time out a ClickHouse handshake in another suite.
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}
