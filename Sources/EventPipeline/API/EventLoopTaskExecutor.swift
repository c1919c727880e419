import ServiceLifecycle
import NIOCore
import NIOPosix

/// A task executor that runs jobs on SwiftNIO's event loops: a job enqueued on an event loop's
/// thread runs on that loop (after the current I/O), any other job on the next loop of `group`.
///
/// Why: by default every request handler runs on Swift's cooperative pool, so each request hops
/// NIO thread → pool thread (to handle) → NIO thread (to write the answer), and each hop wakes a
/// sleeping thread. On 2 cores shared with the broker and ClickHouse those wakeups and context
/// switches cost about as much as the request itself. Preferring this executor for the HTTP
/// server keeps a connection's task on the thread that read its bytes: the handler and the
/// response write need no hop. Handlers must not block (none does: Kafka's produce call only
/// enqueues, ClickHouse reads are asynchronous).
public final class EventLoopTaskExecutor: TaskExecutor {
    let group: any EventLoopGroup

    public init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.group = group
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let loop = MultiThreadedEventLoopGroup.currentEventLoop ?? group.next()
        loop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}

/// Runs `service` with ``EventLoopTaskExecutor`` as its tasks' preferred executor (inherited by
/// the child tasks it starts, such as the HTTP server's per-connection tasks).
public struct PreferringEventLoops<Wrapped: Service>: Service {
    let wrapped: Wrapped
    let executor: EventLoopTaskExecutor

    public init(_ wrapped: Wrapped, executor: EventLoopTaskExecutor = EventLoopTaskExecutor()) {
        self.wrapped = wrapped
        self.executor = executor
    }

    public func run() async throws {
        try await withTaskExecutorPreference(executor) {
            try await wrapped.run()
        }
    }
}
