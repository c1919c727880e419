import ClickHouseNative
import Foundation
import Testing
@testable import EventPipeline

/// Reads against the live ClickHouse server started by scripts/test (18.16 here): the versions of
/// an event collapse to the latest, deleted events disappear, and `FINAL` with a filter on a
/// mutable column is shown to be the wrong tool on this server.
@Suite(.serialized) struct EventRepositoryTests {
    static let database = "repository_test_\(UInt32.random(in: 0...UInt32.max))"

    static func withRepository(database: String = database, settings: [QuerySetting] = [], _ body: (EventRepository) async throws -> Void) async throws {
        let port = Int(ProcessInfo.processInfo.environment["CLICKHOUSE_PORT"] ?? "") ?? 9000
        var configuration = ClickHouseConfiguration(host: "127.0.0.1", port: port)
        configuration.settings = settings
        let client = ClickHouseClient(hosts: [configuration])
        let repository = EventRepository(client: client, database: database)
        try await repository.schema.migrate(client)
        do {
            try await body(repository)
        } catch {
            try? await client.execute("DROP DATABASE IF EXISTS \(database)")
            await client.shutdown()
            throw error
        }
        try await client.execute("DROP DATABASE IF EXISTS \(database)")
        await client.shutdown()
    }

    static func row(_ id: UUID, conversation: String, output: String, version: UInt64, deleted: Bool = false, ms: Int64 = 1_764_000_000_000) -> EventRow {
        EventRow(id: id, fields: EventFields(conversationID: conversation, eventName: "e", output: output, latency: Double(version), error: version % 2 == 0,
                                            timestampMilliseconds: ms),
                 receivedAtMilliseconds: ms, version: version, isDeleted: deleted)
    }

    @Test func readsShowTheLatestVersionAndHideDeletedEvents() async throws {
        try await Self.withRepository { repository in
            let kept = UUID.v7(milliseconds: 1_764_000_000_000)
            let deleted = UUID.v7(milliseconds: 1_764_000_000_001)
            // Three inserts = three parts, so nothing is merged yet: reads must collapse versions themselves.
            try await repository.insert([Self.row(kept, conversation: "c", output: "v1", version: 1), Self.row(deleted, conversation: "c", output: "d1", version: 2)])
            try await repository.insert([Self.row(kept, conversation: "c", output: "v3", version: 3)])
            try await repository.insert([Self.row(deleted, conversation: "c", output: "d1", version: 4, deleted: true)])
            #expect(try await repository.event(kept)?.fields.output == "v3")
            #expect(try await repository.event(kept)?.version == 3)
            #expect(try await repository.event(deleted) == nil)
            let page = try await repository.conversation("c", limit: 10, after: nil)
            #expect(page.events.map(\.id) == [kept])
            #expect(page.next == nil)
            let current = try await repository.currentRows([kept, deleted])
            #expect(current[deleted]?.isDeleted == true)
            #expect(current[kept]?.fields.output == "v3")
            #expect(try await repository.liveEventCount() == 1)
        }
    }

    /// The consumer looks up the ids of a whole batch at once; as SQL literals 20 000 ids would be
    /// about 900 KiB of query text, over the server's 256 KiB `max_query_size`.
    @Test func currentRowsOfTwentyThousandIdsInOneLookup() async throws {
        try await Self.withRepository { repository in
            let ids = (0..<20_000).map { UUID.v7(milliseconds: 1_764_000_000_000 + Int64($0)) }
            let stored = ids.enumerated().filter { $0.offset % 2 == 0 }.map { Self.row($0.element, conversation: "c", output: "o\($0.offset)", version: UInt64($0.offset)) }
            try await repository.insert(stored)
            let current = try await repository.currentRows(ids)
            #expect(current.count == 10_000)
            #expect(current[ids[4]]?.fields.output == "o4")
            #expect(current[ids[19_998]]?.version == 19_998)
            #expect(current[ids[1]] == nil)
        }
    }

    @Test func finalWithAFilterOnAMutableColumnIsNotUsedForReads() async throws {
        try await Self.withRepository { repository in
            let id = UUID.v7(milliseconds: 1_764_000_000_000)
            try await repository.insert([Self.row(id, conversation: "c", output: "old", version: 1)])
            try await repository.insert([Self.row(id, conversation: "c", output: "new", version: 2, deleted: true)])
            // With FINAL, a WHERE on is_deleted may be evaluated before the versions collapse (moved to
            // PREWHERE), or after: the answer depends on the server version and settings. The
            // repository's argMax reads never depend on it; record what this server does.
            let table = repository.schema.table
            let final = try await repository.client.collect("SELECT count() AS n FROM \(table) FINAL WHERE is_deleted = 0")
            let finalCount = (final.first { $0.rowCount > 0 }?["n"] as? FixedWidthColumn<UInt64>)?.values.first ?? 0
            let prewhere = try await repository.client.collect("SELECT count() AS n FROM \(table) FINAL PREWHERE is_deleted = 0")
            let prewhereCount = (prewhere.first { $0.rowCount > 0 }?["n"] as? FixedWidthColumn<UInt64>)?.values.first ?? 0
            // PREWHERE filters rows before FINAL sees them: the deleted event's older version survives.
            #expect(prewhereCount == 1)
            print("FINAL WHERE is_deleted = 0 → \(finalCount) rows, FINAL PREWHERE is_deleted = 0 → \(prewhereCount) rows (the right answer is 0)")
            #expect(try await repository.event(id) == nil)
            #expect(try await repository.liveEventCount() == 0)
        }
    }
}

extension EventRepositoryTests {
    /// Found in review (2026-12-07): current ClickHouse refuses a block spanning more than 100 month
    /// partitions, and events may carry any timestamp from 1970 on, so one batch of them stalled the
    /// consumer. 18.16 has no such limit and would take the batch whole, so the server's query log
    /// shows that it came as three INSERTs of at most 100 months each.
    @Test func rowsSpanningMoreThanAHundredMonthsAreAllStored() async throws {
        try await Self.withRepository(settings: [QuerySetting("log_queries", "1")]) { repository in
            let startedAt = try await repository.client.collect("SELECT toUInt32(now()) AS t").flatMap { try $0.values("t", as: UInt32.self) }.first!
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "UTC")!
            let rows = (0..<250).map { month -> EventRow in
                // One per month from 1970-01: the 2nd at noon.
                let date = calendar.date(from: DateComponents(year: 1970 + month / 12, month: month % 12 + 1, day: 2, hour: 12))!
                let ms = Int64(date.timeIntervalSince1970) * 1000
                return Self.row(UUID.v7(milliseconds: 1_764_000_000_000 + Int64(month)), conversation: "months", output: "m\(month)", version: 1, ms: ms)
            }
            #expect(EventRepository.groupsByMonth(rows, maximumMonths: EventRepository.maximumMonthsPerInsert).count == 3)
            try await repository.insert(rows)
            #expect(try await repository.liveEventCount() == 250)
            let months = try await repository.client.collect("SELECT uniqExact(toYYYYMM(timestamp)) AS n FROM \(repository.schema.table)")
            #expect((months.first { $0.rowCount > 0 }?["n"] as? FixedWidthColumn<UInt64>)?.values == [250])
            try await repository.client.execute("SYSTEM FLUSH LOGS")
            let inserts = try await repository.client.collect("""
                SELECT written_rows FROM system.query_log
                WHERE type = 2 AND event_time >= toDateTime(\(startedAt)) AND query LIKE 'INSERT INTO \(repository.schema.table) %'
                ORDER BY event_time, query_start_time
                """).flatMap { try $0.values("written_rows", as: UInt64.self) }
            #expect(inserts == [100, 100, 50], "rows per INSERT")
        }
    }

    @Test func monthOfATimeIsTheTablesPartitionMonth() {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        var random = SystemRandomNumberGenerator()
        let edges: [Int64] = [0, 86_399_999, 2_678_399_999, 2_678_400_000, 951_868_799_999, 951_868_800_000, 4_291_747_199_999]
        for ms in edges + (0..<2000).map({ _ in Int64.random(in: 0...4_291_747_199_999, using: &random) }) {
            let date = calendar.dateComponents([.year, .month], from: Date(timeIntervalSince1970: TimeInterval(ms / 1000)))
            #expect(EventRepository.month(ofMilliseconds: ms) == (date.year! - 1970) * 12 + date.month! - 1, "\(ms) ms")
        }
    }

    @Test func groupsKeepEveryRowAndAtMostTheMonthsAllowed() {
        let rows = (0..<30).map { index in
            Self.row(UUID.v7(milliseconds: 1_764_000_000_000 + Int64(index)), conversation: "g", output: "", version: 1,
                     ms: Int64(index % 7) * 40 * 86_400_000)  // 7 months, rows interleaved
        }
        #expect(EventRepository.groupsByMonth(rows, maximumMonths: 7).map(\.count) == [30])
        let groups = EventRepository.groupsByMonth(rows, maximumMonths: 3)
        #expect(groups.count == 3)
        #expect(groups.map { Set($0.map { EventRepository.month(ofMilliseconds: $0.fields.timestampMilliseconds) }).count } == [3, 3, 1])
        #expect(Set(groups.joined().map(\.id)) == Set(rows.map(\.id)))
        #expect(groups.joined().count == rows.count)
    }
}
