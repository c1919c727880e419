import ArgumentParser
import ClickHouseNative
import EventPipeline
import Foundation

/// What `event-bench pipeline` sends, so that the final state can be checked field by field: the
/// i-th create's body, the i-th update's fields, and which events are updated and deleted.
struct PipelineWorkload: Sendable {
    static let conversations = 1000
    let runID: String
    let insertCount: Int
    /// The first `updateCount` events are updated, the last `deleteCount` deleted (they overlap
    /// when they meet); both are at most `insertCount`.
    let updateCount: Int
    let deleteCount: Int

    init(runID: String, insertCount: Int, updateCount: Int, deleteCount: Int) {
        self.runID = runID
        self.insertCount = insertCount
        self.updateCount = min(updateCount, insertCount)
        self.deleteCount = min(deleteCount, insertCount)
    }

    var prefix: String { "bench-\(runID)-" }
    var deleteStart: Int { insertCount - deleteCount }
    var expectedLive: Int { insertCount - deleteCount }
    var updatedAndLive: Int { max(0, min(updateCount, deleteStart)) }

    /// The create body of event `index`: its number is in `input`, which no update changes, so the
    /// verification can tell from a stored row which event it is and what it must hold.
    static func createBody(runID: String, _ index: Int) -> String {
        #"{"conversation_id":"bench-\#(runID)-\#(index % conversations)","event_name":"llm_call_\#(index % 7)","input":"What is the capital of France? request \#(index)","output":"Paris is the capital of France.","latency":\#(index % 1000).5,"error":\#(index % 10 == 0)}"#
    }

    func createBody(_ index: Int) -> String { Self.createBody(runID: runID, index) }

    static func updateBody(_ index: Int) -> String { #"{"output":"updated \#(index)","latency":\#(index % 500).25}"# }
}

/// Reads a run's events back through the native client, deduplicated as the API reads them
/// (latest version per id), and compares every one with what the workload sent and got 202 for.
struct Verifier {
    /// Cheap counts (no row values) that reach the workload's totals once every message is written.
    struct Progress: Equatable {
        var ids = 0
        var deleted = 0
        var updated = 0
    }

    struct Report {
        /// Distinct ids stored under the run's prefix, and how they split.
        var ids = 0
        var live = 0
        var deleted = 0
        /// Live events whose every field holds what was sent (the update's output and latency for
        /// updated ones, the create's values otherwise).
        var exact = 0
        /// Ids stored that no accepted create returned (duplicates, strays), or whose row is
        /// another event's.
        var strays = 0
        /// Accepted ids with no row at all.
        var missing = 0
        /// Live events that were deleted (the API would still show them).
        var deletedVisible = 0
        /// Deleted events that were not.
        var wronglyDeleted = 0

        func failures(_ workload: PipelineWorkload, accepted: Int) -> [String] {
            var failures: [String] = []
            if live != workload.expectedLive { failures.append("live events \(live), expected \(workload.expectedLive)") }
            if deleted != workload.deleteCount { failures.append("deleted events \(deleted), expected \(workload.deleteCount)") }
            if exact != live { failures.append("\(live - exact) live events with a field other than the one sent") }
            if strays > 0 { failures.append("\(strays) stored ids that no accepted create returned (duplicates or strays)") }
            if missing > 0 { failures.append("\(missing) of \(accepted) accepted events not stored") }
            if deletedVisible > 0 { failures.append("\(deletedVisible) deleted events still visible") }
            if wronglyDeleted > 0 { failures.append("\(wronglyDeleted) events deleted that were not") }
            return failures
        }

        func line(_ workload: PipelineWorkload, failures: [String]) -> String {
            "verification: live \(live)/\(workload.expectedLive), exact \(exact)/\(live) (\(workload.updatedAndLive) with their update), "
                + "deleted \(deleted)/\(workload.deleteCount), deleted visible \(deletedVisible), strays \(strays), missing \(missing): "
                + (failures.isEmpty ? "PASSED" : "FAILED\n  " + failures.joined(separator: "\n  "))
        }
    }

    let repository: EventRepository
    let workload: PipelineWorkload

    private var prefixTable: ExternalTable {
        ExternalTable(name: "prefix", block: Block(columns: [NamedColumn("value", StringColumn([workload.prefix]))]))
    }

    /// The run's stored rows: those of its conversations (the prefix travels as the table `prefix`).
    private var runRows: String {
        "\(repository.schema.table) WHERE startsWith(conversation_id, (SELECT value FROM prefix LIMIT 1))"
    }

    /// Each named UInt64 of a one-row result (0 when there is none).
    private func counts(_ sql: String, _ tables: [ExternalTable]) async throws -> [String: Int] {
        let blocks = try await repository.client.collect(sql, externalTables: tables)
        guard let block = blocks.first(where: { $0.rowCount > 0 }) else { return [:] }
        var result: [String: Int] = [:]
        for column in block.columns {
            if let values = column.column as? FixedWidthColumn<UInt64>, let first = values.values.first { result[column.name] = Int(first) }
        }
        return result
    }

    func progress() async throws -> Progress {
        let sql = """
            SELECT uniqExact(event_id) AS ids, uniqExactIf(event_id, is_deleted = 1) AS deleted,
                   uniqExactIf(event_id, startsWith(output, 'updated ')) AS updated
            FROM \(runRows)
            """
        let value = try await counts(sql, [prefixTable])
        return Progress(ids: value["ids"] ?? 0, deleted: value["deleted"] ?? 0, updated: value["updated"] ?? 0)
    }

    /// The counts the progress reaches once every accepted write is stored.
    func target(accepted: Int) -> Progress {
        Progress(ids: accepted, deleted: workload.deleteCount, updated: workload.updateCount)
    }

    /// `accepted`: the index and id of every create answered 202.
    func verify(accepted: [(index: Int, id: UUID)]) async throws -> Report {
        var indexes = FixedWidthColumn<UInt64>(type: .uint64)
        var ids = FixedWidthColumn<Bits128>(type: .uuid)
        for (index, id) in accepted {
            indexes.append(UInt64(index))
            ids.append(id.clickHouseValue)
        }
        let acceptedTable = ExternalTable(name: "accepted", block: Block(columns: [NamedColumn("event_id", ids), NamedColumn("idx", indexes)]))
        let latest = ["is_deleted", "conversation_id", "event_name", "input", "output", "latency", "error"]
        let w = workload
        // The expected values of event `idx`, as PipelineWorkload writes them (all integers here).
        let exact = """
            latest_conversation_id = concat((SELECT value FROM prefix LIMIT 1), toString(idx % \(PipelineWorkload.conversations)))
            AND latest_event_name = concat('llm_call_', toString(idx % 7))
            AND latest_input = concat('What is the capital of France? request ', toString(idx))
            AND latest_error = if(idx % 10 = 0, 1, 0)
            AND if(idx < \(w.updateCount), latest_output = concat('updated ', toString(idx)) AND latest_latency = (idx % 500) + 0.25,
                   latest_output = 'Paris is the capital of France.' AND latest_latency = (idx % 1000) + 0.5)
            """
        let sql = """
            SELECT count() AS ids, countIf(latest_is_deleted = 0) AS live, countIf(latest_is_deleted = 1) AS deleted,
                   countIf(latest_is_deleted = 0 AND \(exact)) AS exact,
                   countIf(NOT ((event_id, idx) IN (SELECT event_id, idx FROM accepted))) AS strays,
                   countIf(latest_is_deleted = 0 AND idx >= \(w.deleteStart)) AS deleted_visible,
                   countIf(latest_is_deleted = 1 AND idx < \(w.deleteStart)) AS wrongly_deleted
            FROM (SELECT event_id, \(latest.map { "argMax(\($0), version) AS latest_\($0)" }.joined(separator: ", ")),
                         toUInt64OrZero(extract(latest_input, 'request ([0-9]+)$')) AS idx
                  FROM \(runRows) GROUP BY event_id)
            """
        let value = try await counts(sql, [prefixTable, acceptedTable])
        let missing = try await counts("SELECT count() AS missing FROM accepted WHERE event_id NOT IN (SELECT event_id FROM \(runRows))",
                                       [prefixTable, acceptedTable])["missing"] ?? accepted.count
        return Report(ids: value["ids"] ?? 0, live: value["live"] ?? 0, deleted: value["deleted"] ?? 0, exact: value["exact"] ?? 0,
                      strays: value["strays"] ?? 0, missing: missing, deletedVisible: value["deleted_visible"] ?? 0,
                      wronglyDeleted: value["wrongly_deleted"] ?? 0)
    }

    /// The accepted creates as `index id` lines, the form `--ids-output` writes and `verify --ids` reads.
    static func write(accepted: [(index: Int, id: UUID)], to path: String) throws {
        let text = accepted.map { "\($0.index) \($0.id.lowercasedString)\n" }.joined()
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    static func read(acceptedFrom path: String) throws -> [(index: Int, id: UUID)] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            let parts = line.split(separator: " ")
            guard parts.count == 2, let index = Int(parts[0]), let id = UUID(uuidString: String(parts[1])) else {
                throw ValidationError("\(path): not an \"index id\" line: \(line)")
            }
            return (index, id)
        }
    }
}

/// `event-bench verify`: the verification of a finished `pipeline` run again, from the ids it
/// wrote with `--ids-output` (CI changes a stored row and checks that this then fails).
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Verifies the stored state of an earlier `pipeline` run (its --ids-output file).", shouldDisplay: false)

    @OptionGroup var server: ServerOptions
    @Option(help: "Database the consumer wrote.") var database: String
    @Option(help: "The run's id (printed by pipeline).") var run: String
    @Option(help: "The run's INSERT_COUNT.") var inserts: Int
    @Option(help: "The run's UPDATE_COUNT.") var updates: Int
    @Option(help: "The run's DELETE_COUNT.") var deletes: Int
    @Option(help: "The file pipeline wrote with --ids-output.") var ids: String

    func run() async throws {
        let workload = PipelineWorkload(runID: run, insertCount: inserts, updateCount: updates, deleteCount: deletes)
        let accepted = try Verifier.read(acceptedFrom: ids)
        let client = ClickHouseClient(hosts: [server.configuration()])
        let report: Verifier.Report
        do {
            report = try await Verifier(repository: EventRepository(client: client, database: database), workload: workload).verify(accepted: accepted)
        } catch {
            await client.shutdown()
            throw error
        }
        await client.shutdown()
        let failures = report.failures(workload, accepted: accepted.count)
        print(report.line(workload, failures: failures))
        if !failures.isEmpty { throw ExitCode(1) }
    }
}
