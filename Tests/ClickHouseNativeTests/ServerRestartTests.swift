import Foundation
import Testing
@testable import ClickHouseNative

/// Stops and restarts the real server, so it runs on its own after the other suites
/// (scripts/test.d/20-server-restart), never alongside them.
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["RUN_SERVER_RESTART_TESTS"] == "1"))
struct ServerRestartTests {
    static func services(_ arguments: String...) throws {
        let process = Process()
        process.executableURL = Fixtures.root.appendingPathComponent("scripts/services")
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "scripts/services \(arguments.joined(separator: " "))")
    }

    @Test(.timeLimit(.minutes(3))) func poolRecoversAfterTheServerRestarts() async throws {
        let client = ClientPoolTests.client(maximum: 2)
        #expect(LiveServerTests.rows(try await client.collect("SELECT 1 AS one")) == "{\"one\":1}\n")

        let (streaming, started) = AsyncStream<Void>.makeStream()
        let running = Task {
            try await client.withConnection { connection in
                var rows = 0
                for try await block in try await connection.query("SELECT number FROM system.numbers") {
                    rows += block.rowCount
                    if rows > 0 { started.yield() }
                }
                return rows
            }
        }
        for await _ in streaming { break }  // the server stops mid-stream, not before the query reached it
        try Self.services("stop", "clickhouse")
        do {
            _ = try await running.value
            Issue.record("the query should fail when the server stops")
        } catch let error as ClickHouseConnectionError {
            if case .closed = error {} else { Issue.record("unexpected \(error)") }
        }
        await #expect(throws: ClickHouseConnectionError.self) { _ = try await client.collect("SELECT 2") }

        try Self.services("start", "clickhouse")
        #expect(LiveServerTests.rows(try await client.collect("SELECT 3 AS three")) == "{\"three\":3}\n")
        #expect(await client.openConnections <= 2)
        await client.shutdown()
    }
}
