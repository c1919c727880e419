import Foundation
import Testing
@testable import ClickHouseNative

/// The pooled client against the real server.
@Suite struct ClientPoolTests {
    static func client(maximum: Int, hosts: [ClickHouseConfiguration]? = nil, acquireTimeout: Duration = .seconds(30)) -> ClickHouseClient {
        var options = ClickHouseClient.Options()
        options.maximumConnections = maximum
        options.acquireTimeout = acquireTimeout
        return ClickHouseClient(hosts: hosts ?? [LiveServerTests.configuration()], options: options)
    }

    @Test func sixtyFourConcurrentQueriesThroughEightConnections() async throws {
        let client = Self.client(maximum: 8)
        let results = try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for i in 0..<64 {
                group.addTask {
                    let blocks = try await client.collect("SELECT sum(number) AS s FROM numbers(\(100_000 + i))")
                    return (i, LiveServerTests.rows(blocks))
                }
            }
            var results: [Int: String] = [:]
            for try await (i, text) in group { results[i] = text }
            return results
        }
        for i in 0..<64 {
            let n = 100_000 + i
            #expect(results[i] == "{\"s\":\(n * (n - 1) / 2)}\n")
        }
        #expect(await client.openConnections <= 8)
        #expect(await client.openConnections >= 1)
        await client.shutdown()
    }

    @Test func exceptionMidStreamThenTheSamePooledConnection() async throws {
        let client = Self.client(maximum: 1)
        let error = await #expect(throws: ServerException.self) {
            _ = try await client.collect("SELECT throwIf(number = 100000) FROM numbers(1000000)", settings: [QuerySetting("max_block_size", "1000")])
        }
        #expect(error?.code == 395, "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO: \(String(describing: error))")
        #expect(await client.openConnections == 1, "the connection survived the exception")
        #expect(LiveServerTests.rows(try await client.collect("SELECT 9 AS nine")) == "{\"nine\":9}\n")
        #expect(await client.openConnections == 1)
        await client.shutdown()
    }

    @Test func abandonedStreamIsDrainedBeforeReuse() async throws {
        let client = Self.client(maximum: 1)
        try await client.withConnection { connection in
            for try await block in try await connection.query("SELECT number FROM numbers(50000000)") where block.rowCount > 0 {
                break
            }
        }
        #expect(LiveServerTests.rows(try await client.collect("SELECT 10 AS ten")) == "{\"ten\":10}\n")
        await client.shutdown()
    }

    @Test func waitersTimeOut() async throws {
        let client = Self.client(maximum: 1, acquireTimeout: .milliseconds(300))
        // The waiter starts once the holder has the only connection (a fixed pause lost that race
        // when the machine was busy and the holder's connect took longer).
        let (held, hold) = AsyncStream<Void>.makeStream()
        let holder = Task {
            try await client.withConnection { _ in
                hold.yield()
                try await Task.sleep(for: .seconds(2))
            }
        }
        var holding = held.makeAsyncIterator()
        _ = await holding.next()
        await #expect(throws: ClickHouseConnectionError.timeout("no connection free within 0.3 seconds (pool of 1)")) {
            _ = try await client.collect("SELECT 1")
        }
        try await holder.value
        #expect(LiveServerTests.rows(try await client.collect("SELECT 11 AS eleven")) == "{\"eleven\":11}\n")
        await client.shutdown()
    }

    @Test func failsOverToTheNextHost() async throws {
        var dead = LiveServerTests.configuration()
        dead.port = 1
        let client = Self.client(maximum: 2, hosts: [dead, LiveServerTests.configuration()])
        #expect(LiveServerTests.rows(try await client.collect("SELECT 12 AS twelve")) == "{\"twelve\":12}\n")
        await client.shutdown()
    }

    /// The error names each host once, with its own cause (it read "cannot connect: 127.0.0.1:1:
    /// cannot connect: 127.0.0.1:1: Connection errors: SingleConnectionFailure(...)").
    @Test func whenEveryHostFailsTheErrorNamesEachOnce() async throws {
        var refused = LiveServerTests.configuration()
        refused.port = 1
        var silent = LiveServerTests.configuration()
        let peer = try FakePeer(answers: nil)
        silent.port = peer.port
        silent.handshakeTimeout = .milliseconds(300)
        let client = Self.client(maximum: 1, hosts: [refused, silent])
        await #expect(throws: ClickHouseConnectionError.connectFailed(
            "127.0.0.1:1: Connection refused (errno 111); timed out: no handshake from 127.0.0.1:\(peer.port) within 300 ms"
            + " (is it ClickHouse's native port? usually 9000, 9440 with TLS)")) { _ = try await client.collect("SELECT 1") }
        await client.shutdown()
        peer.close()
    }
}

/// Found in review: slots freed while tasks were cancelled or connections broke could be lost
/// (a waiter woken as it was cancelled threw without passing the slot on; one whose health-check
/// ping was cancelled gave its slot back to nobody), and a stalled host held a health check for
/// the whole read timeout.
@Suite(.serialized) struct ClientPoolHandOffTests {
    /// Many requests through two connections, a third of them cancelled at random moments and a
    /// third breaking their connection (an Exception that comes first closes it): every request
    /// that is neither cancelled nor failing gets its answer, none times out waiting.
    @Test func slotsFreedByCancelledAndBrokenRequestsReachTheWaiters() async throws {
        let client = ClientPoolTests.client(maximum: 2, acquireTimeout: .seconds(20))
        // A waiter that sat out a freed slot fails with the acquire timeout: an issue of its request.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for round in 0..<6 {
                var tasks: [Task<Void, Never>] = []
                for i in 0..<30 {
                    let task = Task {
                        switch i % 3 {
                        case 0:
                            do {
                                #expect(LiveServerTests.rows(try await client.collect("SELECT \(i) AS i")) == "{\"i\":\(i)}\n")
                            } catch {
                                Issue.record("request \(i) of round \(round) failed: \(error)")
                            }
                        case 1:
                            await #expect(throws: ServerException.self) { try await client.execute("SELECT * FROM default.no_such_table_\(round)") }
                        default:
                            _ = try? await client.collect("SELECT sleep(0.01)")
                        }
                    }
                    tasks.append(task)
                }
                for (i, task) in tasks.enumerated() where i % 3 == 2 {
                    try await Task.sleep(for: .milliseconds(Int.random(in: 0...3)))
                    task.cancel()
                }
                for task in tasks { group.addTask { await task.value } }
                try await group.waitForAll()
            }
        }
        #expect(await client.waitingCount == 0)
        #expect(await client.openConnections <= 2)
        await client.shutdown()
    }

    /// The first host answers the handshake and then stalls (a host that lost power, no reset):
    /// the health check of its idle connection gives up after `healthCheckTimeout`, not the read
    /// timeout, and the request fails over to the next host.
    @Test func aStalledHostFailsItsHealthCheckWithinTheLimit() async throws {
        let peer = try FakePeer(answers: [try ProtocolGoldenTests.packet("server-hello-18.16")])
        defer { peer.close() }
        var stalled = ClickHouseConfiguration(host: "127.0.0.1", port: peer.port, compression: .none)
        stalled.readTimeout = .seconds(60)
        stalled.handshakeTimeout = .seconds(1)  // its second connection is never accepted
        var options = ClickHouseClient.Options()
        options.healthCheckAfterIdle = .milliseconds(100)
        options.healthCheckTimeout = .milliseconds(500)
        let client = ClickHouseClient(hosts: [stalled, LiveServerTests.configuration()], options: options)
        try await client.withConnection { _ in }  // a connection to the stalled host, now idle
        try await Task.sleep(for: .milliseconds(200))
        let started = ContinuousClock.now
        #expect(LiveServerTests.rows(try await client.collect("SELECT 12 AS twelve")) == "{\"twelve\":12}\n")
        #expect(ContinuousClock.now - started < .seconds(5))
        await client.shutdown()
    }
}
