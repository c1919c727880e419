import ArgumentParser
import ClickHouseNative
import EventPipeline
import Foundation
import Hummingbird
import Kafka
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// `event-bench pipeline`: inserts, updates and deletes through the HTTP API, then waits until
/// ClickHouse shows the final state and verifies it. Prints a table; writes every figure to JSON.
struct PipelineBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "End-to-end benchmark of API → Kafka → consumer → ClickHouse, with verification of the final state.")

    static let environment = ProcessInfo.processInfo.environment

    @Option(help: "API base URL (API_BASE_URL).") var apiBaseURL = environment["API_BASE_URL"] ?? "http://localhost:8080"
    @Option(help: "Concurrent connections (CONCURRENCY).") var concurrency = Int(environment["CONCURRENCY"] ?? "") ?? 100
    @Option(help: "Events created (INSERT_COUNT).") var insertCount = Int(environment["INSERT_COUNT"] ?? "") ?? 500_000
    @Option(help: "Events updated (UPDATE_COUNT).") var updateCount = Int(environment["UPDATE_COUNT"] ?? "") ?? 200_000
    @Option(help: "Events deleted (DELETE_COUNT).") var deleteCount = Int(environment["DELETE_COUNT"] ?? "") ?? 200_000
    @Option(help: "Create through POST /events/batch with this many events per request (0: one per request).") var batch = 0
    @Option(help: "ClickHouse host for verification (CLICKHOUSE_HOST).") var clickhouseHost = environment["CLICKHOUSE_HOST"] ?? "127.0.0.1"
    @Option(help: "ClickHouse port (CLICKHOUSE_PORT).") var clickhousePort = Int(environment["CLICKHOUSE_PORT"] ?? "") ?? 9000
    @Option(help: "ClickHouse user (CLICKHOUSE_USER).") var clickhouseUser = environment["CLICKHOUSE_USER"] ?? "default"
    @Option(help: "ClickHouse password (CLICKHOUSE_PASSWORD).") var clickhousePassword = environment["CLICKHOUSE_PASSWORD"] ?? ""
    @Option(help: "Database the consumer writes (CLICKHOUSE_DATABASE).") var database = environment["CLICKHOUSE_DATABASE"] ?? "event_analytics"
    @Option(help: "Seconds to wait for the final state before failing.") var visibilityTimeout = 120.0
    @Option(help: "Requests for the bare-endpoint ceiling (0: skip it).") var ceilingRequests = 200_000
    @Flag(help: "Serve the ceiling's bare endpoint from this process (sharing the load generator's threads) instead of a process of its own, as the API runs.")
    var ceilingInProcess = false
    @Option(help: "Write all figures to this JSON file.") var jsonOutput = "benchmark-results/pipeline.json"

    /// The API's host and port. The load generator speaks plain HTTP/1.1 to the API's own routes, so
    /// an https URL or one with a path (a proxy's prefix) is refused rather than half-honoured.
    static func hostAndPort(_ text: String) throws -> (String, Int) {
        guard let url = URL(string: text), let host = url.host, !host.isEmpty else {
            throw ValidationError("API_BASE_URL \(text): not a URL with a host, e.g. http://localhost:8080")
        }
        guard url.scheme == "http" else {
            throw ValidationError("API_BASE_URL \(text): only http:// is supported (the load generator speaks plain HTTP/1.1)")
        }
        guard url.path.isEmpty || url.path == "/", url.query == nil else {
            throw ValidationError("API_BASE_URL \(text): give the API's root without a path, e.g. http://localhost:8080")
        }
        return (host, url.port ?? 80)
    }

    func validate() throws {
        _ = try Self.hostAndPort(apiBaseURL)
    }

    func run() async throws {
        let (host, port) = try Self.hostAndPort(apiBaseURL)
        let group = MultiThreadedEventLoopGroup.singleton
        let progress = isatty(2) == 1
        let runID = String(UUID().lowercasedString.prefix(8))
        let conversations = 1000
        print("event-bench pipeline: \(apiBaseURL), concurrency \(concurrency), inserts \(insertCount), updates \(updateCount), deletes \(deleteCount)"
              + (batch > 0 ? ", batch \(batch)" : "") + ", run \(runID)")
        let client = ClickHouseClient(hosts: [ClickHouseConfiguration(host: clickhouseHost, port: clickhousePort, user: clickhouseUser,
                                                                      password: clickhousePassword, compression: .lz4)])
        let repository = EventRepository(client: client, database: database)
        let tableBefore = await Self.tableSize(repository: repository)
        print("table \(repository.schema.table) before the run: "
              + (tableBefore.map { "\($0.rows) rows in \($0.parts) active parts" } ?? "not readable (no table yet, or ClickHouse is down)"))

        // Ceiling: a bare Hummingbird endpoint that reads and validates the same JSON body, in this run.
        var ceiling: PhaseResult?
        if ceilingRequests > 0 {
            ceiling = try await Self.measureCeiling(requests: ceilingRequests, concurrency: concurrency, group: group, progress: progress,
                                                    inProcess: ceilingInProcess)
        }

        // The API's CPU per request, when it runs on this machine (found by its listening port).
        let apiPID = ["localhost", "127.0.0.1", "::1", "[::1]"].contains(host) ? ProcessCPU.listener(port: port) : nil
        let eventWait = BrokerWaitReader(host: host, port: port, group: group, kind: "event")
        let batchWait = BrokerWaitReader(host: host, port: port, group: group, kind: "batch")

        let ids = Mutex<[UUID?]>([UUID?](repeating: nil, count: insertCount))
        let acceptedEvents = AtomicCounter()
        @Sendable func body(_ index: Int) -> String {
            #"{"conversation_id":"bench-\#(runID)-\#(index % conversations)","event_name":"llm_call_\#(index % 7)","input":"What is the capital of France? request \#(index)","output":"Paris is the capital of France.","latency":\#(index % 1000).5,"error":\#(index % 10 == 0)}"#
        }
        let firstRequest = ContinuousClock.now
        var phases: [PhaseResult] = []
        if batch > 0 {
            let requests = (insertCount + batch - 1) / batch
            let batchSize = batch
            let total = insertCount
            var result = try await PhaseResult.measuringCPU(server: apiPID, brokerWait: batchWait) { try await runLoad(
                name: "insert (batch \(batch))", host: host, port: port, concurrency: concurrency, count: requests, eventsPerRequest: batch,
                group: group, progress: progress,
                makeRequest: { r in
                    let range = (r * batchSize)..<min(total, (r + 1) * batchSize)
                    return (.POST, "/events/batch", ByteBuffer(string: #"{"events":["# + range.map(body).joined(separator: ",") + "]}"))
                },
                onResponse: { r, status, response in
                    guard status == 207, case let .array(results)? = try? JSONParser.parse(Array(response.readableBytesView))["results"] else { return }
                    var accepted = 0
                    ids.withLock { ids in
                        for item in results {
                            guard case .number(let index)? = item["index"], case let .string(id)? = item["event_id"] else { continue }
                            ids[r * batchSize + Int(index)] = UUID(uuidString: id)
                            accepted += 1
                        }
                    }
                    acceptedEvents.increment(by: accepted)
                }) }
            result.events = acceptedEvents.value
            phases.append(result)
        } else {
            phases.append(try await PhaseResult.measuringCPU(server: apiPID, brokerWait: eventWait) { try await runLoad(
                name: "insert", host: host, port: port, concurrency: concurrency, count: insertCount, group: group, progress: progress,
                makeRequest: { i in (.POST, "/event/", ByteBuffer(string: body(i))) },
                onResponse: { i, status, response in
                    guard status == 202, case let .string(id)? = try? JSONParser.parse(Array(response.readableBytesView))["event_id"] else { return }
                    ids.withLock { $0[i] = UUID(uuidString: id) }
                }) })
        }
        let created = ids.withLock { $0 }
        let createdCount = created.compactMap { $0 }.count
        // Updates: the first UPDATE_COUNT events; deletes: the last DELETE_COUNT (overlapping when they meet).
        let updateCount = min(self.updateCount, insertCount)
        let deleteCount = min(self.deleteCount, insertCount)
        phases.append(try await PhaseResult.measuringCPU(server: apiPID, brokerWait: eventWait) { try await runLoad(
            name: "update", host: host, port: port, concurrency: concurrency, count: updateCount, group: group, progress: progress,
            makeRequest: { i in
                let id = created[i]?.lowercasedString ?? "00000000-0000-0000-0000-000000000000"
                return (.PUT, "/event/\(id)", ByteBuffer(string: #"{"output":"updated \#(i)","latency":\#(i % 500).25}"#))
            }) })
        let deleteStart = insertCount - deleteCount
        phases.append(try await PhaseResult.measuringCPU(server: apiPID, brokerWait: eventWait) { try await runLoad(
            name: "delete", host: host, port: port, concurrency: concurrency, count: deleteCount, group: group, progress: progress,
            makeRequest: { i in
                let id = created[deleteStart + i]?.lowercasedString ?? "00000000-0000-0000-0000-000000000000"
                return (.DELETE, "/event/\(id)", nil)
            }) })
        let lastAccepted = ContinuousClock.now

        // End to end: poll ClickHouse until the final state shows, then verify it.
        let expectedLive = insertCount - deleteCount
        let updatedAndLive = max(0, min(updateCount, deleteStart))
        let verifier = Verifier(repository: repository, prefix: "bench-\(runID)-")
        // ClickHouse may be down for a while (scripts/faults stops it): keep asking until the deadline.
        let deadline = ContinuousClock.now + .seconds(visibilityTimeout)
        // The state is visible at the moment the query that shows it starts (its snapshot of the
        // table's parts is taken then); the query itself takes 0.3-1 s on a million rows here, and
        // counting that would make the visibility lag a measure of the verification query.
        var visible = ContinuousClock.now
        var state = (try? await verifier.state()) ?? Verifier.State()
        while !(state.live == expectedLive && state.updated == updatedAndLive && state.deletedRows == deleteCount) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            visible = ContinuousClock.now
            do {
                state = try await verifier.state()
            } catch {
                FileHandleStderr.write("verification query failed (\(error)); retrying\n")
                try await Task.sleep(for: .seconds(1))
            }
        }
        let deletedIDs = (deleteStart..<insertCount).compactMap { created[$0] }
        var deletedVisible = -1
        while deletedVisible < 0 && ContinuousClock.now < deadline + .seconds(30) {
            do { deletedVisible = try await verifier.visibleAmong(deletedIDs) } catch { try await Task.sleep(for: .seconds(1)) }
        }
        let serverVersion = (try? await client.withConnection { connection in await connection.server.version }) ?? "unknown"
        await client.shutdown()

        // The ceiling again, now that the pipeline is idle: this machine's speed drifts (other
        // tenants; by a sixth within one run, by 40% within an hour), so each phase is compared
        // with the ceiling before it and with the mean of the ceilings before and after.
        var ceilingAfter: PhaseResult?
        if ceilingRequests > 0 {
            ceilingAfter = try await Self.measureCeiling(requests: ceilingRequests, concurrency: concurrency, group: group, progress: progress,
                                                         inProcess: ceilingInProcess,
                                                         name: "bare endpoint (ceiling, after)")
        }

        var failures: [String] = []
        if createdCount != insertCount { failures.append("\(insertCount - createdCount) creates were not accepted") }
        for phase in phases where phase.transportErrors > 0 || phase.statusCounts.keys.contains(where: { !(200..<300).contains($0) }) {
            failures.append("\(phase.name): non-2xx answers \(phase.statusCounts.filter { !(200..<300).contains($0.key) }), transport errors \(phase.transportErrors)")
        }
        if state.live != expectedLive { failures.append("live events \(state.live), expected \(expectedLive)") }
        if state.updated != updatedAndLive { failures.append("events with their update visible \(state.updated), expected \(updatedAndLive)") }
        if state.distinct != state.live + state.deletedRows { failures.append("ids \(state.distinct) != live \(state.live) + deleted \(state.deletedRows): duplicates or strays") }
        if deletedVisible != 0 { failures.append("\(deletedVisible) deleted events still visible") }

        let endToEnd = Self.seconds(visible - firstRequest)
        let visibilityLag = Self.seconds(visible - lastAccepted)
        var table = "\n| phase | events/s | mean ms | broker ack ms | p50 ms | p95 ms | p99 ms | max ms | server CPU µs/request | machine idle | statuses |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
        for phase in (ceiling.map { [$0] } ?? []) + phases + (ceilingAfter.map { [$0] } ?? []) {
            table += String(format: "| %@ | %.0f | %.2f | %@ | %.2f | %.2f | %.2f | %.2f | %@ | %@ | %@ |\n", phase.name, phase.eventsPerSecond,
                            phase.meanMilliseconds, phase.brokerWaitMilliseconds.map { String(format: "%.2f", $0) } ?? "–", phase.percentile(0.5),
                            phase.percentile(0.95), phase.percentile(0.99), phase.percentile(1.0),
                            phase.serverCPUMicrosecondsPerRequest.map { String(format: "%.1f", $0) } ?? "–",
                            phase.machineIdleFraction.map { String(format: "%.0f%%", $0 * 100) } ?? "–",
                            phase.statusCounts.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "))
        }
        print(table)
        if let ceiling {
            let before = ceiling.requestsPerSecond
            let after = ceilingAfter?.requestsPerSecond ?? before
            // Single-event phases only: a batch request carries many events, so its requests/s
            // says nothing against a one-event endpoint (batch mode is judged by events/s).
            for phase in phases where phase.events <= phase.requests {
                print(String(format: "%@ rate vs bare endpoint: %.0f%% of the ceiling before (%.0f req/s), %.0f%% of the mean of before and after (%.0f req/s)",
                             phase.name, 100 * phase.requestsPerSecond / before, before, 200 * phase.requestsPerSecond / (before + after), (before + after) / 2))
            }
        }
        print(String(format: "end to end: %.2f s from the first request until ClickHouse showed the final state; visible %.2f s after the last 202", endToEnd, visibilityLag))
        print("verification: live \(state.live)/\(expectedLive), updated \(state.updated)/\(updatedAndLive), deleted rows \(state.deletedRows)/\(deleteCount), deleted visible \(deletedVisible): "
              + (failures.isEmpty ? "PASSED" : "FAILED\n  " + failures.joined(separator: "\n  ")))

        try writeJSON(phases: phases, ceiling: ceiling, ceilingAfter: ceilingAfter, endToEnd: endToEnd, visibilityLag: visibilityLag, state: state, failures: failures, runID: runID,
                      versions: ["clickhouse": serverVersion, "librdkafka (this process)": KafkaLibrary.version], tableBefore: tableBefore)
        if !failures.isEmpty { throw ExitCode(1) }
    }

    /// Rows and active parts of the events table. ClickHouse merges the run's parts with the ones
    /// already there, and on a table grown by earlier runs those merges take most of a core for
    /// seconds at a time during the phases; runs compare fairly only on tables of similar size
    /// (`scripts/bench` gives each run an empty one).
    static func tableSize(repository: EventRepository) async -> (rows: Int, parts: Int)? {
        let sql = """
            SELECT toUInt64(sum(rows)) AS rows, count() AS parts FROM system.parts
            WHERE active AND database IN (SELECT value FROM target) AND table = 'events'
            """
        guard let blocks = try? await repository.client.collect(sql, externalTables: [
            ExternalTable(name: "target", block: Block(columns: [NamedColumn("value", StringColumn([repository.schema.database]))])),
        ]), let block = blocks.first(where: { $0.rowCount > 0 }),
              let rows = (block["rows"] as? FixedWidthColumn<UInt64>)?.values.first,
              let parts = (block["parts"] as? FixedWidthColumn<UInt64>)?.values.first else { return nil }
        return (Int(rows), Int(parts))
    }

    static func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

    /// Requests/s of a bare Hummingbird endpoint that reads the body and validates it as the API does,
    /// served from a child process (as the API is a process of its own) unless `inProcess`.
    static func measureCeiling(requests: Int, concurrency: Int, group: EventLoopGroup, progress: Bool, inProcess: Bool,
                               name: String = "bare endpoint (ceiling)") async throws -> PhaseResult {
        let body = #"{"conversation_id":"ceiling","event_name":"llm_call","input":"What is the capital of France?","output":"Paris is the capital of France.","latency":12.5,"error":false}"#
        func load(port: Int) async throws -> PhaseResult {
            try await runLoad(name: name, host: "127.0.0.1", port: port, concurrency: concurrency, count: requests,
                              group: group, progress: progress, makeRequest: { _ in (.POST, "/event", ByteBuffer(string: body)) })
        }
        if !inProcess {
            let server = try BareEndpointProcess()
            defer { server.stop() }
            return try await PhaseResult.measuringCPU(server: server.process.processIdentifier) { try await load(port: server.port) }
        }
        // Port 0: the kernel picks a free port; the load starts once the server is bound (a fixed
        // wait lost that race on a loaded machine: "connection refused").
        let (bound, boundContinuation) = AsyncStream<Int>.makeStream()
        let services = BareEndpoint.makeServer(port: 0, gracefulShutdownSignals: []) { port in
            boundContinuation.yield(port)
            boundContinuation.finish()
        }
        // Stopped through a graceful shutdown, not by cancelling its task (which logs errors of
        // channels torn down mid-close).
        let server = Task {
            defer { boundContinuation.finish() }  // (a server that fails to bind ends the wait below)
            try await services.run()
        }
        var ports = bound.makeAsyncIterator()
        guard let port = await ports.next(), port > 0 else {
            server.cancel()
            throw ValidationError("the bare endpoint did not start: \(String(describing: await server.result))")
        }
        let result: PhaseResult
        do {
            result = try await PhaseResult.measuringCPU(server: nil) { try await load(port: port) }
        } catch {
            await services.triggerGracefulShutdown()
            _ = await server.result
            throw error
        }
        await services.triggerGracefulShutdown()
        try await server.value
        return result
    }

    func writeJSON(phases: [PhaseResult], ceiling: PhaseResult?, ceilingAfter: PhaseResult?, endToEnd: Double, visibilityLag: Double, state: Verifier.State,
                   failures: [String], runID: String, versions: [String: String], tableBefore: (rows: Int, parts: Int)?) throws {
        func phaseJSON(_ p: PhaseResult) -> [String: Any] {
            ["name": p.name, "requests": p.requests, "events": p.events, "seconds": p.seconds, "events_per_second": p.eventsPerSecond,
             "requests_per_second": p.requestsPerSecond, "p50_ms": p.percentile(0.5), "p90_ms": p.percentile(0.9), "p95_ms": p.percentile(0.95),
             "p99_ms": p.percentile(0.99), "p99_9_ms": p.percentile(0.999), "max_ms": p.percentile(1.0), "mean_ms": p.meanMilliseconds,
             "statuses": Dictionary(uniqueKeysWithValues: p.statusCounts.map { (String($0.key), $0.value) }),
             "transport_errors": p.transportErrors, "server_cpu_seconds": p.serverCPUSeconds.map { $0 as Any } ?? NSNull(),
             "machine_idle_fraction": p.machineIdleFraction.map { $0 as Any } ?? NSNull(),
             "broker_ack_mean_ms": p.brokerWaitMilliseconds.map { $0 as Any } ?? NSNull()]
        }
        var uts = utsname()
        uname(&uts)
        let machine = withUnsafeBytes(of: uts.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let kernel = withUnsafeBytes(of: uts.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let document: [String: Any] = [
            "run_id": runID, "date": ISO8601DateFormatter().string(from: Date()),
            "configuration": ["api_base_url": apiBaseURL, "concurrency": concurrency, "insert_count": insertCount, "update_count": updateCount,
                              "delete_count": deleteCount, "batch": batch,
                              "ceiling_server": ceilingInProcess ? "in the load generator's process" : "own process"],
            "machine": ["cores": ProcessInfo.processInfo.activeProcessorCount, "memory_bytes": ProcessInfo.processInfo.physicalMemory,
                        "arch": machine, "kernel": kernel, "os": ProcessInfo.processInfo.operatingSystemVersionString],
            "versions": versions,
            "ceiling": ceiling.map(phaseJSON) ?? NSNull(), "ceiling_after": ceilingAfter.map(phaseJSON) ?? NSNull(), "phases": phases.map(phaseJSON),
            "table_before": tableBefore.map { ["rows": $0.rows, "active_parts": $0.parts] as [String: Any] } ?? NSNull(),
            "end_to_end_seconds": endToEnd, "visible_after_last_accept_seconds": visibilityLag,
            "final_state": ["live": state.live, "updated": state.updated, "deleted_rows": state.deletedRows, "distinct_ids": state.distinct],
            "verification": failures.isEmpty ? "passed" : "failed", "failures": failures,
        ]
        let url = URL(fileURLWithPath: jsonOutput)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys]).write(to: url)
        print("figures written to \(jsonOutput)")
    }
}

/// Reads the benchmark's events back through the native client, deduplicated as the API reads them.
struct Verifier {
    struct State {
        var live = 0
        var updated = 0
        var deletedRows = 0
        var distinct = 0
    }

    let repository: EventRepository
    let prefix: String

    func state() async throws -> State {
        let table = repository.schema.table
        let sql = """
            SELECT countIf(deleted = 0) AS live, countIf(deleted = 0 AND startsWith(output, 'updated ')) AS updated,
                   countIf(deleted = 1) AS deleted_rows, count() AS distinct_ids
            FROM (SELECT event_id, argMax(is_deleted, version) AS deleted, argMax(output, version) AS output
                  FROM \(table) WHERE startsWith(conversation_id, (SELECT value FROM prefix LIMIT 1)) GROUP BY event_id)
            """
        let blocks = try await repository.client.collect(sql, externalTables: [
            ExternalTable(name: "prefix", block: Block(columns: [NamedColumn("value", StringColumn([prefix]))])),
        ])
        guard let block = blocks.first(where: { $0.rowCount > 0 }) else { return State() }
        func value(_ name: String) -> Int { Int((block[name] as? FixedWidthColumn<UInt64>)?.values.first ?? 0) }
        return State(live: value("live"), updated: value("updated"), deletedRows: value("deleted_rows"), distinct: value("distinct_ids"))
    }

    /// How many of `ids` the API would still show.
    func visibleAmong(_ ids: [UUID]) async throws -> Int {
        guard !ids.isEmpty else { return 0 }
        var column = FixedWidthColumn<Bits128>(type: .uuid)
        for id in ids {
            let (high, low) = id.halves
            column.append(Bits128(first: high, second: low))
        }
        let sql = """
            SELECT count() AS n FROM (SELECT event_id, argMax(is_deleted, version) AS deleted FROM \(repository.schema.table)
                                      WHERE event_id IN (SELECT id FROM deleted_ids) GROUP BY event_id) WHERE deleted = 0
            """
        let blocks = try await repository.client.collect(sql, externalTables: [ExternalTable(name: "deleted_ids", block: Block(columns: [NamedColumn("id", column)]))])
        return Int((blocks.first { $0.rowCount > 0 }?["n"] as? FixedWidthColumn<UInt64>)?.values.first ?? 0)
    }
}
