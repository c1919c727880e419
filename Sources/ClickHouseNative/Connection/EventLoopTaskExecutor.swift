import NIOCore

/// Runs tasks on one NIO event loop: the loop of a connection, so that a task consuming its
/// results (`withTaskExecutorPreference(connection.taskExecutor) { ... }`) runs on the thread
/// that reads and decodes them, and taking each block is a call on that thread instead of two
/// wake-ups of two threads.
final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: immutable; EventLoop is thread-safe.
    let eventLoop: EventLoop

    init(_ eventLoop: EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
