import Foundation
import Testing
@testable import ClickHouseNative
@testable import EventPipeline

/// The schema must work on 18.16 and on current ClickHouse alike, and no modern server runs here.
/// chdb is ClickHouse 26.x in process: these tests replay the migrations and every read of
/// ``EventRepository`` on it (`Fixtures/chdb_replay.py`), statement for statement, with the
/// external tables loaded as the temporary tables a server makes of them, and the same rows as
/// separate inserts (separate parts, so nothing is merged). Each read must give the live server's
/// answer, and the answer worked out by hand.
@Suite(.serialized) struct ModernClickHouseTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Steps for chdb_replay.py, run in one chdb session.
    final class Replay {
        private var steps: [[String: Any]] = []
        private var answers: [URL] = []
        let directory: URL

        init() throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("modern-clickhouse-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        }

        deinit { try? FileManager.default.removeItem(at: directory) }

        private func nativeFile(_ block: Block) throws -> String {
            let file = directory.appendingPathComponent("input-\(steps.count)-\(UUID().uuidString).native")
            try Data(NativeFormat.encodeBlocks([block])).write(to: file)
            return file.path
        }

        func execute(_ sql: String) { steps.append(["sql": sql]) }

        func insert(into table: String, _ block: Block) throws { steps.append(["insert": table, "native": try nativeFile(block)]) }

        /// Adds a query; its answer is `run()[returned index]`.
        func query(_ sql: String, externalTables: [ExternalTable] = []) throws -> Int {
            let out = directory.appendingPathComponent("answer-\(answers.count).native")
            let tables = try externalTables.map { ["name": $0.name, "native": try nativeFile($0.block)] }
            steps.append(["sql": sql, "tables": tables, "out": out.path])
            answers.append(out)
            return answers.count - 1
        }

        /// Runs every step; the answers of the reads, decoded, in the order they were added.
        func run() throws -> [[Block]] {
            let job = directory.appendingPathComponent("job.json")
            try JSONSerialization.data(withJSONObject: steps).write(to: job)
            let process = Process()
            process.executableURL = ModernClickHouseTests.root.appendingPathComponent(".venv/bin/python")
            process.arguments = [ModernClickHouseTests.root.appendingPathComponent("Fixtures/chdb_replay.py").path, job.path]
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw ReplayFailure(message: message) }
            return try answers.map { try NativeFormat.decodeBlocks([UInt8](Data(contentsOf: $0))) }
        }
    }

    struct ReplayFailure: Error, CustomStringConvertible {
        var message: String
        var description: String { "chdb_replay.py failed: \(message)" }
    }

    /// What chdb reports of itself, for the migrations meant for a server of that version.
    static let modernServer = ServerInfo(name: "ClickHouse", versionMajor: 26, versionMinor: 9, versionPatch: 2, revision: 54479,
                                         timeZone: "UTC", displayName: nil)

    static let day: Int64 = 86_400_000
    /// "Now" for the error counts: 2025-11-24 16:00 UTC.
    static let now: Int64 = 1_764_000_000_000

    static func row(_ id: UUID, conversation: String, name: String = "chat", output: String = "", latency: Double = 1, error: Bool = false,
                    ms: Int64 = now, version: UInt64, deleted: Bool = false) -> EventRow {
        EventRow(id: id, fields: EventFields(conversationID: conversation, eventName: name, input: "in-\(output)", output: output, latency: latency,
                                            error: error, timestampMilliseconds: ms),
                 receivedAtMilliseconds: ms + 5, version: version, isDeleted: deleted)
    }

    /// Ids by role, sorted so that the tie in conversation "c" has a known order.
    struct Ids {
        let updated = UUID.v7(milliseconds: now)
        let deleted = UUID.v7(milliseconds: now + 1)
        let tie: [UUID] = [UUID.v7(milliseconds: now + 2), UUID.v7(milliseconds: now + 3)].sorted { $0.lowercasedString < $1.lowercasedString }
        let later = UUID.v7(milliseconds: now + 4)
        let failing = (0..<3).map { UUID.v7(milliseconds: now + 10 + Int64($0)) }
        let future = UUID.v7(milliseconds: now + 20)
        let old = UUID.v7(milliseconds: now + 21)
        let unknown = UUID.v7(milliseconds: now + 30)
    }

    /// The rows, as four inserts: versions of one event never share an insert.
    static func inserts(_ ids: Ids) -> [[EventRow]] {
        [
            [row(ids.updated, conversation: "c", output: "v1", latency: 100, ms: now - 1000, version: 1),
             row(ids.deleted, conversation: "c", output: "d", latency: 50, ms: now - 500, version: 2),
             row(ids.tie[1], conversation: "c", output: "t1", latency: 7, ms: now, version: 5),
             row(ids.tie[0], conversation: "c", output: "t0", latency: 8, ms: now, version: 6),
             row(ids.later, conversation: "c", output: "l", latency: 9, ms: now + 1000, version: 7)],
            [row(ids.updated, conversation: "c", output: "v3", latency: 3, error: true, ms: now - 1000, version: 3),
             row(ids.failing[0], conversation: "s2", name: "tool", latency: 20, error: true, ms: now - day, version: 8),
             row(ids.failing[1], conversation: "s2", name: "tool", latency: 30, ms: now - 3 * day, version: 9),
             row(ids.failing[2], conversation: "s3", name: "tool", latency: 40, error: true, ms: now - 3 * day, version: 10)],
            [row(ids.deleted, conversation: "c", output: "d", latency: 50, ms: now - 500, version: 4, deleted: true),
             row(ids.future, conversation: "s3", latency: 60, error: true, ms: now + 2 * day, version: 11),
             row(ids.old, conversation: "s3", latency: 70, error: true, ms: now - 10 * day, version: 12)],
            [row(ids.failing[1], conversation: "s2", name: "tool", latency: 35, error: true, ms: now - 3 * day, version: 13)],
        ]
    }

    /// A read with its answer rendered as text (dictionaries sorted), so that answers compare whatever their type.
    struct RenderedRead {
        var name: String
        var sql: String
        var externalTables: [ExternalTable]
        var render: ([Block]) throws -> String

        init<Value>(_ name: String, _ read: RepositoryRead<Value>, _ render: @escaping (Value) -> String = { "\($0)" }) {
            self.name = name
            sql = read.sql
            externalTables = read.externalTables
            self.render = { try render(read.decode($0)) }
        }

        var asRead: RepositoryRead<String> { RepositoryRead(sql: sql, externalTables: externalTables, decode: render) }
    }

    static func version(_ row: EventRow) -> String { "\(row.fields.output) v\(row.version)\(row.isDeleted ? " deleted" : "")" }

    static func sortedByID<Value>(_ values: [UUID: Value]) -> String {
        values.sorted { $0.key.lowercasedString < $1.key.lowercasedString }.map { "\($0.key.lowercasedString): \($0.value)" }.joined(separator: "\n")
    }

    static func reads(_ repository: EventRepository, _ ids: Ids) -> [(read: RenderedRead, expected: String?)] {
        let now = Date(timeIntervalSince1970: TimeInterval(Self.now / 1000))
        let all = [ids.updated, ids.deleted, ids.unknown] + ids.tie + ids.failing
        let tieCursor = ConversationCursor(timestampMilliseconds: Self.now, eventID: ids.tie[0])
        func page(_ entries: [(id: UUID, timestamp: Int64)]) -> String { entries.map { "\($0.id.lowercasedString)@\($0.timestamp)" }.joined(separator: " ") }
        return [
            (RenderedRead("event, updated", repository.eventRead(ids.updated)) { "\($0?.fields.output ?? "nil") v\($0?.version ?? 0) error \($0?.fields.error ?? false)" },
             "v3 v3 error true"),
            (RenderedRead("event, deleted", repository.eventRead(ids.deleted)), "nil"),
            (RenderedRead("event, unknown", repository.eventRead(ids.unknown)), "nil"),
            // Whole rows, compared between the servers; then what the dataset says of them.
            (RenderedRead("current rows", repository.currentRowsRead(all), sortedByID), nil),
            (RenderedRead("current rows, latest versions", repository.currentRowsRead(all)) { sortedByID($0.mapValues(version)) },
             sortedByID([ids.updated: "v3 v3", ids.deleted: "d v4 deleted", ids.tie[1]: "t1 v5", ids.tie[0]: "t0 v6",
                         ids.failing[0]: " v8", ids.failing[1]: " v13", ids.failing[2]: " v10"])),
            // conversation_id + event_name + input + output of the latest version.
            (RenderedRead("stored row sizes", repository.storedRowSizesRead(all), sortedByID),
             sortedByID([ids.updated: 1 + 4 + 5 + 2, ids.deleted: 1 + 4 + 4 + 1, ids.tie[1]: 1 + 4 + 5 + 2, ids.tie[0]: 1 + 4 + 5 + 2,
                         ids.failing[0]: 2 + 4 + 3, ids.failing[1]: 2 + 4 + 3, ids.failing[2]: 2 + 4 + 3])),
            (RenderedRead("conversation, first page", repository.conversationPageRead("c", limit: 2, after: nil), page),
             page([(ids.updated, Self.now - 1000), (ids.tie[0], Self.now), (ids.tie[1], Self.now)])),
            (RenderedRead("conversation, after the tie's first", repository.conversationPageRead("c", limit: 2, after: tieCursor), page),
             page([(ids.tie[1], Self.now), (ids.later, Self.now + 1000)])),
            (RenderedRead("conversation, unknown", repository.conversationPageRead("nobody", limit: 2, after: nil), page), ""),
            (RenderedRead("errors, 7 days", repository.errorCountsRead(eventName: nil, days: 7, now: now)),
             "\([EventRepository.DailyErrors(date: "2025-11-21", errors: 2, total: 2), EventRepository.DailyErrors(date: "2025-11-23", errors: 1, total: 1), EventRepository.DailyErrors(date: "2025-11-24", errors: 1, total: 4)])"),
            (RenderedRead("errors, 7 days, tool", repository.errorCountsRead(eventName: "tool", days: 7, now: now)),
             "\([EventRepository.DailyErrors(date: "2025-11-21", errors: 2, total: 2), EventRepository.DailyErrors(date: "2025-11-23", errors: 1, total: 1)])"),
            (RenderedRead("latency p95", repository.latencyPercentilesRead(limit: 3)) { $0.map { "\($0.conversationID)/\($0.eventName) \($0.p95) ×\($0.count)" }.joined(separator: ", ") },
             "s3/chat 70.0 ×2, s3/tool 40.0 ×1, s2/tool 35.0 ×2"),
            (RenderedRead("sessions by error rate", repository.topErrorSessionsRead(limit: 10)) { $0.map { "\($0.conversationID) \($0.errors)/\($0.total) \($0.errorRate)" }.joined(separator: ", ") },
             "s3 3/3 1.0, s2 2/2 1.0, c 1/4 0.25"),
            (RenderedRead("live events", repository.liveEventCountRead()), "9"),
        ]
    }

    @Test func migrationsAndEveryReadGiveTheLiveServersAnswerOnModernClickHouse() async throws {
        let ids = Ids()
        try await EventRepositoryTests.withRepository(database: "modern_replay_\(UInt32.random(in: 0...UInt32.max))") { repository in
            let replay = try Replay()
            for statement in repository.schema.bootstrapStatements { replay.execute(statement) }
            let migrations = repository.schema.migrations(for: Self.modernServer)
            #expect(migrations.map(\.id) == [1, 2], "the bloom filter index is part of a modern server's schema")
            for migration in migrations {
                for statement in migration.statements { replay.execute(statement) }
                try replay.insert(into: repository.schema.migrationsTable, migration.record(appliedAt: Date()))
            }
            for rows in Self.inserts(ids) {
                try await repository.insert(rows)
                try replay.insert(into: repository.schema.table, EventRow.block(rows))
            }
            let reads = Self.reads(repository, ids)
            let logged = try replay.query("SELECT id FROM \(repository.schema.migrationsTable) ORDER BY id")
            let indexes = try reads.map { try replay.query($0.read.sql, externalTables: $0.read.externalTables) }
            let answers = try replay.run()
            #expect(try answers[logged].flatMap { try $0.values("id", as: UInt32.self) } == [1, 2])
            for ((read, expected), index) in zip(reads, indexes) {
                let modern = try read.render(answers[index])
                let live = try await repository.run(read.asRead)
                #expect(modern == live, "\(read.name): ClickHouse 26.x answered differently from the live server")
                if let expected { #expect(live == expected, "\(read.name)") }
            }
        }
    }

    /// The replay must be able to fail: a read the modern server refuses is reported with its step.
    @Test func aReadModernClickHouseRefusesFailsTheReplay() throws {
        let replay = try Replay()
        _ = try replay.query("SELECT no_such_column FROM system.one")
        #expect {
            try replay.run()
        } throws: { error in
            "\(error)".hasPrefix("chdb_replay.py failed: step 0: ") && "\(error)".contains("no_such_column")
        }
    }
}
