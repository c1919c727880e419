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
    @Flag(help: "With --batch: send each batch gzip-compressed (Content-Encoding: gzip). The bodies are compressed before the phase, so the load generator's CPU goes to sending, as without it.")
    var gzip = false
    @Option(help: "ClickHouse host for verification (CLICKHOUSE_HOST).") var clickhouseHost = environment["CLICKHOUSE_HOST"] ?? "127.0.0.1"
    @Option(help: "ClickHouse port (CLICKHOUSE_PORT).") var clickhousePort = Int(environment["CLICKHOUSE_PORT"] ?? "") ?? 9000
    @Option(help: "ClickHouse user (CLICKHOUSE_USER).") var clickhouseUser = environment["CLICKHOUSE_USER"] ?? "default"
    // Read from the environment when used, not as the option's default: `--help` prints defaults.
    @Option(name: .customLong("clickhouse-password"), help: "ClickHouse password (default: CLICKHOUSE_PASSWORD).") var clickhousePasswordOption: String?
    var clickhousePassword: String { clickhousePasswordOption ?? Self.environment["CLICKHOUSE_PASSWORD"] ?? "" }
    @Option(help: "Database the consumer writes (CLICKHOUSE_DATABASE).") var database = environment["CLICKHOUSE_DATABASE"] ?? "event_analytics"
    @Option(help: "Seconds to wait for the final state before failing.") var visibilityTimeout = 120.0
    @Option(help: "Requests for the bare-endpoint ceiling (0: skip it).") var ceilingRequests = 200_000
    @Flag(help: "Serve the ceiling's bare endpoint from this process (sharing the load generator's threads) instead of a process of its own, as the API runs.")
    var ceilingInProcess = false
    @Option(help: "Write all figures to this JSON file.") var jsonOutput = "benchmark-results/pipeline.json"
    @Option(help: "Also write the index and id of every accepted create to this file (for `event-bench verify`).") var idsOutput: String?

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
        if gzip && batch <= 0 { throw ValidationError("--gzip needs --batch N (single-event writes are sent as they are)") }
    }

    func run() async throws {
        let (host, port) = try Self.hostAndPort(apiBaseURL)
        let group = MultiThreadedEventLoopGroup.singleton
        let progress = isatty(2) == 1
        let runID = String(UUID().lowercasedString.prefix(8))
        let workload = PipelineWorkload(runID: runID, insertCount: insertCount, updateCount: updateCount, deleteCount: deleteCount)
        print("event-bench pipeline: \(apiBaseURL), concurrency \(concurrency), inserts \(insertCount), updates \(updateCount), deletes \(deleteCount)"
              + (batch > 0 ? ", batch \(batch)" + (gzip ? " gzip" : "") : "") + ", run \(runID)")
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
        // Beside it, by phase name, a bare endpoint for the update's and the delete's own requests.
        var kindCeilings: [String: PhaseResult] = [:]
        for (phase, kind, method, count) in [("update", CeilingKind.update, "PUT", workload.updateCount),
                                             ("delete", CeilingKind.delete, "DELETE", workload.deleteCount)]
        where ceilingRequests > 0 && count > 0 {
            kindCeilings[phase] = try await Self.measureCeiling(requests: ceilingRequests, concurrency: concurrency, group: group,
                                                                progress: progress, inProcess: ceilingInProcess,
                                                                name: "bare endpoint, \(method) (ceiling)", kind: kind)
        }
        let local = ["localhost", "127.0.0.1", "::1", "[::1]"].contains(host)
        if !local && ceilingRequests > 0 {
            print("note: the ceiling is measured on this machine, the API runs on \(host): their ratio compares two machines")
        }

        // The API's CPU per request, when it runs on this machine (found by its listening port).
        let apiPID = local ? ProcessCPU.listener(port: port) : nil
        let eventWait = BrokerWaitReader(host: host, port: port, group: group, kind: "event")
        let batchWait = BrokerWaitReader(host: host, port: port, group: group, kind: "batch")

        let ids = Mutex<[UUID?]>([UUID?](repeating: nil, count: insertCount))
        let acceptedEvents = AtomicCounter()
        @Sendable func body(_ index: Int) -> String { workload.createBody(index) }
        let firstRequest = ContinuousClock.now
        var phases: [PhaseResult] = []
        if batch > 0 {
            let requests = (insertCount + batch - 1) / batch
            let batchSize = batch
            let total = insertCount
            @Sendable func batchBody(_ r: Int) -> String {
                let range = (r * batchSize)..<min(total, (r + 1) * batchSize)
                return #"{"events":["# + range.map(body).joined(separator: ",") + "]}"
            }
            // Compressed before the phase (the measured work is the API's, not the compression).
            let compressed = gzip ? (0..<requests).map { ByteBuffer(bytes: Gzip.compress(Array(batchBody($0).utf8))) } : []
            if gzip && requests > 0 {
                let wire = compressed.reduce(0) { $0 + $1.readableBytes }
                let json = (0..<min(requests, 100)).reduce(0) { $0 + batchBody($1).utf8.count }
                let sampled = (0..<min(requests, 100)).reduce(0) { $0 + compressed[$1].readableBytes }
                print("gzip batches: \(wire / requests) bytes per request on the wire, \(String(format: "%.1f", Double(json) / Double(max(sampled, 1))))× smaller than the JSON")
            }
            var result = try await PhaseResult.measuringCPU(server: apiPID, brokerWait: batchWait) { try await runLoad(
                name: "insert (batch \(batch)\(gzip ? ", gzip" : ""))", host: host, port: port, concurrency: concurrency, count: requests,
                eventsPerRequest: batch, expectedStatus: 207, contentEncoding: gzip ? "gzip" : nil, group: group, progress: progress,
                makeRequest: { r in
                    (.POST, "/events/batch", compressed.isEmpty ? ByteBuffer(string: batchBody(r)) : compressed[r])
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
        let accepted = created.enumerated().compactMap { index, id in id.map { (index: index, id: $0) } }
        let createdCount = accepted.count
        if let idsOutput { try Verifier.write(accepted: accepted, to: idsOutput) }
        // Updates: the first UPDATE_COUNT events; deletes: the last DELETE_COUNT (overlapping when they meet).
        let updateCount = workload.updateCount
        let deleteCount = workload.deleteCount
        phases.append(try await PhaseResult.measuringCPU(server: apiPID, brokerWait: eventWait) { try await runLoad(
            name: "update", host: host, port: port, concurrency: concurrency, count: updateCount, group: group, progress: progress,
            makeRequest: { i in
                let id = created[i]?.lowercasedString ?? "00000000-0000-0000-0000-000000000000"
                return (.PUT, "/event/\(id)", ByteBuffer(string: PipelineWorkload.updateBody(i)))
            }) })
        let deleteStart = workload.deleteStart
        phases.append(try await PhaseResult.measuringCPU(server: apiPID, brokerWait: eventWait) { try await runLoad(
            name: "delete", host: host, port: port, concurrency: concurrency, count: deleteCount, group: group, progress: progress,
            makeRequest: { i in
                let id = created[deleteStart + i]?.lowercasedString ?? "00000000-0000-0000-0000-000000000000"
                return (.DELETE, "/event/\(id)", nil)
            }) })
        // The last 202 of the run: the last answer of the delete phase (or of the last phase that had one).
        let lastAccepted = phases.compactMap(\.lastAnswer).max() ?? ContinuousClock.now

        var failures: [String] = []
        if createdCount != insertCount { failures.append("\(insertCount - createdCount) creates were not accepted") }
        failures += (phases + [ceiling].compactMap { $0 } + Array(kindCeilings.values)).compactMap(\.answerFailure)

        // End to end: poll ClickHouse with cheap counts until every write shows, then verify every
        // event. A run whose writes already failed cannot reach the counts: it waits 10 s, not the
        // whole timeout, before verifying what there is.
        let verifier = Verifier(repository: repository, workload: workload)
        let target = verifier.target(accepted: createdCount)
        // ClickHouse may be down for a while (scripts/faults stops it): keep asking until the deadline.
        let deadline = ContinuousClock.now + .seconds(failures.isEmpty ? visibilityTimeout : min(visibilityTimeout, 10))
        // The state became visible after the snapshot of the last query that missed it and by the
        // snapshot of the first that showed it (a query takes its snapshot of the table's parts
        // when it starts): the lag lies between the two.
        var lastMiss = lastAccepted
        var visible: ContinuousClock.Instant?
        while ContinuousClock.now < deadline {
            let started = ContinuousClock.now
            do {
                if try await verifier.progress() == target {
                    visible = started
                    break
                }
                lastMiss = started
                try await Task.sleep(for: .milliseconds(50))
            } catch {
                FileHandleStderr.write("verification query failed (\(error)); retrying\n")
                try await Task.sleep(for: .seconds(1))
            }
        }
        var report = Verifier.Report()
        var verified = false
        while !verified && ContinuousClock.now < deadline + .seconds(30) {
            do {
                report = try await verifier.verify(accepted: accepted)
                verified = true
            } catch {
                FileHandleStderr.write("verification query failed (\(error)); retrying\n")
                try await Task.sleep(for: .seconds(1))
            }
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

        if let failure = ceilingAfter?.answerFailure { failures.append(failure) }
        if visible == nil { failures.append("the stored counts did not reach every accepted write within the timeout") }
        if !verified { failures.append("the verification query did not run (ClickHouse unreachable)") }
        failures += report.failures(workload, accepted: createdCount)

        let endToEnd = visible.map { Self.seconds($0 - firstRequest) }
        let visibilityLag = visible.map { (lower: max(0, Self.seconds(lastMiss - lastAccepted)), upper: Self.seconds($0 - lastAccepted)) }
        var table = "\n| phase | events/s | mean ms | broker ack ms | p50 ms | p95 ms | p99 ms | max ms | server CPU µs/request | machine idle | statuses |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
        let kindCeilingRows = ["update", "delete"].compactMap { kindCeilings[$0] }
        for phase in (ceiling.map { [$0] } ?? []) + kindCeilingRows + phases + (ceilingAfter.map { [$0] } ?? []) {
            table += String(format: "| %@ | %.0f | %.2f | %@ | %.2f | %.2f | %.2f | %.2f | %@ | %@ | %@ |\n", phase.name, phase.eventsPerSecond,
                            phase.meanMilliseconds, phase.brokerWaitMilliseconds.map { String(format: "%.2f", $0) } ?? "–", phase.percentile(0.5),
                            phase.percentile(0.95), phase.percentile(0.99), phase.percentile(1.0),
                            phase.serverCPUMicrosecondsPerRequest.map { String(format: "%.1f", $0) } ?? "–",
                            phase.machineIdleFraction.map { String(format: "%.0f%%", $0 * 100) } ?? "–",
                            phase.statusCounts.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "))
        }
        print(table)
        var shares: [String: (before: Double, mean: Double)] = [:]
        if let ceiling {
            let before = ceiling.requestsPerSecond
            let after = ceilingAfter?.requestsPerSecond ?? before
            // Single-event phases only: a batch request carries many events, so its requests/s
            // says nothing against a one-event endpoint (batch mode is judged by events/s).
            for phase in phases where phase.events <= phase.requests {
                let share = (before: phase.requestsPerSecond / before, mean: 2 * phase.requestsPerSecond / (before + after))
                shares[phase.name] = share
                print(String(format: "%@ rate vs bare endpoint: %.0f%% of the ceiling before (%.0f req/s), %.0f%% of the mean of before and after (%.0f req/s)",
                             phase.name, 100 * share.before, before, 100 * share.mean, (before + after) / 2))
            }
        }
        for phase in phases {
            guard let own = kindCeilings[phase.name] else { continue }
            print(String(format: "%@ rate vs a bare endpoint for its own requests (not the issue's ceiling, which is the create's): %.0f%% of %.0f req/s",
                         phase.name, 100 * phase.requestsPerSecond / own.requestsPerSecond, own.requestsPerSecond))
        }
        if let endToEnd, let visibilityLag {
            print(String(format: "end to end: %.2f s from the first request until ClickHouse showed the final state; visible %.2f–%.2f s after the last 202",
                         endToEnd, visibilityLag.lower, visibilityLag.upper))
        } else {
            print("end to end: ClickHouse did not show every accepted write within the timeout")
        }
        print(report.line(workload, failures: failures))

        try writeJSON(phases: phases, ceiling: ceiling, ceilingAfter: ceilingAfter, shares: shares, kindCeilings: kindCeilings,
                      endToEnd: endToEnd, visibilityLag: visibilityLag,
                      report: report, workload: workload, failures: failures, runID: runID,
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

    /// What a ceiling run sends. `create`, the issue's ceiling: the bodies the insert phase sends
    /// (another run id, the same shape and lengths). `update` and `delete`: the update phase's
    /// bodies and the delete phase's requests, to a bare endpoint for each (shown beside the
    /// issue's figure: a smaller body or none is cheaper to serve, so their ceilings are higher).
    enum CeilingKind {
        case create, update, delete

        static func id(_ i: Int) -> String { String(format: "01a20000-0000-7000-8000-%012x", i) }

        var request: @Sendable (Int) -> (HTTPMethod, String, ByteBuffer?) {
            switch self {
            case .create: return { i in (.POST, "/event", ByteBuffer(string: PipelineWorkload.createBody(runID: "ceiling", i))) }
            case .update: return { i in (.PUT, "/event/\(CeilingKind.id(i))", ByteBuffer(string: PipelineWorkload.updateBody(i))) }
            case .delete: return { i in (.DELETE, "/event/\(CeilingKind.id(i))", nil) }
            }
        }
    }

    /// Requests/s of a bare Hummingbird endpoint that reads the body and validates it as the API does,
    /// served from a child process (as the API is a process of its own) unless `inProcess`.
    static func measureCeiling(requests: Int, concurrency: Int, group: EventLoopGroup, progress: Bool, inProcess: Bool,
                               name: String = "bare endpoint (ceiling)", kind: CeilingKind = .create) async throws -> PhaseResult {
        func load(port: Int) async throws -> PhaseResult {
            try await runLoad(name: name, host: "127.0.0.1", port: port, concurrency: concurrency, count: requests,
                              group: group, progress: progress, makeRequest: kind.request)
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

    func writeJSON(phases: [PhaseResult], ceiling: PhaseResult?, ceilingAfter: PhaseResult?, shares: [String: (before: Double, mean: Double)],
                   kindCeilings: [String: PhaseResult],
                   endToEnd: Double?, visibilityLag: (lower: Double, upper: Double)?, report: Verifier.Report, workload: PipelineWorkload,
                   failures: [String], runID: String, versions: [String: String], tableBefore: (rows: Int, parts: Int)?) throws {
        func phaseJSON(_ p: PhaseResult) -> [String: Any] {
            ["name": p.name, "expected_status": p.expectedStatus,
             "share_of_ceiling_before": shares[p.name].map { $0.before as Any } ?? NSNull(),
             "share_of_ceiling_mean": shares[p.name].map { $0.mean as Any } ?? NSNull(),
             "share_of_own_kind_ceiling": kindCeilings[p.name].map { p.requestsPerSecond / $0.requestsPerSecond as Any } ?? NSNull(), "requests": p.requests, "events": p.events, "seconds": p.seconds, "events_per_second": p.eventsPerSecond,
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
            "configuration": ["api_base_url": apiBaseURL, "concurrency": concurrency, "insert_count": workload.insertCount,
                              "update_count": workload.updateCount, "delete_count": workload.deleteCount,
                              "update_count_requested": updateCount, "delete_count_requested": deleteCount, "batch": batch, "batch_gzip": gzip,
                              "ceiling_server": ceilingInProcess ? "in the load generator's process" : "own process"],
            "machine": ["cores": ProcessInfo.processInfo.activeProcessorCount, "memory_bytes": ProcessInfo.processInfo.physicalMemory,
                        "arch": machine, "kernel": kernel, "os": ProcessInfo.processInfo.operatingSystemVersionString],
            "versions": versions,
            "ceiling": ceiling.map(phaseJSON) ?? NSNull(), "ceiling_after": ceilingAfter.map(phaseJSON) ?? NSNull(), "phases": phases.map(phaseJSON),
            "ceilings_per_request_kind": kindCeilings.mapValues(phaseJSON),
            "table_before": tableBefore.map { ["rows": $0.rows, "active_parts": $0.parts] as [String: Any] } ?? NSNull(),
            "end_to_end_seconds": endToEnd.map { $0 as Any } ?? NSNull(),
            "visible_after_last_accept_seconds": visibilityLag.map { $0.upper as Any } ?? NSNull(),
            "visible_after_last_accept_lower_bound_seconds": visibilityLag.map { $0.lower as Any } ?? NSNull(),
            "expected_state": ["live": workload.expectedLive, "updated_and_live": workload.updatedAndLive, "deleted": workload.deleteCount],
            "final_state": ["ids": report.ids, "live": report.live, "exact": report.exact, "deleted": report.deleted, "strays": report.strays,
                            "missing": report.missing, "deleted_visible": report.deletedVisible, "wrongly_deleted": report.wronglyDeleted],
            "verification": failures.isEmpty ? "passed" : "failed", "failures": failures,
        ]
        let url = URL(fileURLWithPath: jsonOutput)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys]).write(to: url)
        print("figures written to \(jsonOutput)")
    }
}
