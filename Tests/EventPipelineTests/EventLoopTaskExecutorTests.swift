import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import EventPipeline

@Suite struct EventLoopTaskExecutorTests {
    /// The loop a test's tasks should land on: one thread, so "on a loop" means "on this loop".
    static func withLoop(_ body: (any EventLoop, EventLoopTaskExecutor) async throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        try await body(group.next(), EventLoopTaskExecutor(group: group))
        try await group.shutdownGracefully()
    }

    @Test func preferringTheExecutorRunsOnTheLoop() async throws {
        try await Self.withLoop { loop, executor in
            #expect(!loop.inEventLoop)
            let onLoop = await withTaskExecutorPreference(executor) { loop.inEventLoop }
            #expect(onLoop)
        }
    }

    /// A continuation resumed by another thread (as Kafka's delivery callback does) continues on the loop.
    @Test func resumingFromAForeignThreadReturnsToTheLoop() async throws {
        try await Self.withLoop { loop, executor in
            let (before, after) = await withTaskExecutorPreference(executor) {
                let before = loop.inEventLoop
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    Thread { continuation.resume() }.start()
                }
                return (before, loop.inEventLoop)
            }
            #expect(before && after)
        }
    }

    /// Child tasks inherit the preference: the HTTP server's per-connection tasks are children.
    @Test func childTasksInheritThePreference() async throws {
        try await Self.withLoop { loop, executor in
            let results = await withTaskExecutorPreference(executor) {
                await withTaskGroup(of: Bool.self) { group in
                    for _ in 0..<8 { group.addTask { await Task.yield(); return loop.inEventLoop } }
                    return await group.reduce(into: [Bool]()) { $0.append($1) }
                }
            }
            #expect(results == Array(repeating: true, count: 8))
        }
    }
}
