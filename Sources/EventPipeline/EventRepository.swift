import ClickHouseNative
import Foundation

/// Reads and writes of the `events` table over the native client.
///
/// Every read deduplicates by itself: per event, the values of its highest version
/// (`argMax(column, version)`, grouped by `event_id`), with deleted events dropped afterwards. Not
/// `FINAL`: a filter on `is_deleted` that runs as PREWHERE (written so, or moved there by the
/// optimizer on versions that do that with FINAL) sees rows before their versions collapse and
/// shows an older, undeleted version of a deleted event. `EventRepositoryTests` shows it on the
/// live 18.16 server (`FINAL PREWHERE is_deleted = 0` returns the stale row; plain WHERE happens
/// to be right there). argMax reads do not depend on any of that. Filters on columns an update
/// cannot change (event_id, conversation_id, timestamp) are applied before grouping, all others
/// after. User-supplied strings travel as external tables, never in the SQL text; numbers and
/// UUIDs are validated before they are formatted into it.
public struct EventRepository: Sendable {
    public let client: ClickHouseClient
    public let schema: EventSchema

    public init(client: ClickHouseClient, database: String) {
        self.client = client
        self.schema = EventSchema(database: database)
    }

    /// The latest version of each event in `prefilter`'s scope, deleted ones included.
    func latestVersions(where prefilter: String) -> String {
        // Inner aliases differ from the column names: ClickHouse resolves an alias anywhere in its
        // SELECT, so `max(version) AS version` would turn every argMax(…, version) into a nested aggregate.
        let latest = ["conversation_id", "event_name", "input", "output", "latency", "error", "timestamp_ms", "received_at", "is_deleted"]
        return """
            SELECT event_id, \(latest.map { "latest_\($0) AS \($0)" }.joined(separator: ", ")), latest_version AS version
            FROM (SELECT event_id, \(latest.map { "argMax(\($0), version) AS latest_\($0)" }.joined(separator: ", ")), max(version) AS latest_version
                  FROM \(schema.table) WHERE \(prefilter) GROUP BY event_id)
            """
    }

    /// Runs a read on this repository's ClickHouse.
    func run<Value>(_ read: RepositoryRead<Value>) async throws -> Value {
        try read.decode(try await client.collect(read.sql, externalTables: read.externalTables))
    }

    static func uuidLiteral(_ id: UUID) -> String { "toUUID('\(id.lowercasedString)')" }

    static func stringTable(_ name: String, _ values: [String]) -> ExternalTable {
        ExternalTable(name: name, block: Block(columns: [NamedColumn("value", StringColumn(values))]))
    }

    // MARK: Writes (consumer)

    /// ClickHouse refuses a block whose rows fall in more than `max_partitions_per_insert_block`
    /// partitions (100 by default since 19.x; 18.16 has no such limit). The table is partitioned by
    /// month and events may carry any timestamp from 1970 to 2105, so one batch can span more
    /// months than that, and a refused batch would be retried forever.
    static let maximumMonthsPerInsert = 100

    /// Inserts rows in one native INSERT, or one per 100 months of event time when they span more.
    public func insert(_ rows: [EventRow]) async throws {
        for group in Self.groupsByMonth(rows, maximumMonths: Self.maximumMonthsPerInsert) {
            try await client.insert(into: schema.table, EventRow.block(group))
        }
    }

    /// The rows in groups that each span at most `maximumMonths` months (UTC, as the table's
    /// `toYYYYMM(timestamp)`), in month order; all rows in one group when they span no more.
    static func groupsByMonth(_ rows: [EventRow], maximumMonths: Int) -> [[EventRow]] {
        guard !rows.isEmpty else { return [] }
        let months = rows.map { Self.month(ofMilliseconds: $0.fields.timestampMilliseconds) }
        // Nearly every batch spans a month or two: no set of them to build for that.
        guard let first = months.min(), let last = months.max(), last - first >= maximumMonths else { return [rows] }
        let distinct = Set(months).sorted()
        guard distinct.count > maximumMonths else { return [rows] }
        var group: [Int: Int] = [:]
        for (index, month) in distinct.enumerated() { group[month] = index / maximumMonths }
        var groups = [[EventRow]](repeating: [], count: (distinct.count + maximumMonths - 1) / maximumMonths)
        for (row, month) in zip(rows, months) { groups[group[month]!].append(row) }
        return groups
    }

    /// Months since 1970-01 (UTC) of a time in milliseconds since the epoch (not before it).
    static func month(ofMilliseconds milliseconds: Int64) -> Int {
        let date = CivilDate.components(days: milliseconds / 86_400_000)
        return Int((date.year - 1970) * 12 + date.month - 1)
    }

    /// The ids as the external table `lookup_ids` (a `UUID` column `id`) sent with a query.
    static func lookupTable(_ ids: [UUID]) -> ExternalTable {
        var column = FixedWidthColumn<Bits128>(type: .uuid)
        column.reserveCapacity(ids.count)
        for id in ids { column.append(id.clickHouseValue) }
        return ExternalTable(name: "lookup_ids", block: Block(columns: [NamedColumn("id", column)]))
    }

    /// The latest stored version of each id (deleted ones included), in one query. The ids travel
    /// as an external table, not as SQL literals: a batch of thousands of ids would exceed the
    /// server's `max_query_size` (256 KiB) as text, and that error would stall the consumer.
    public func currentRows(_ ids: [UUID]) async throws -> [UUID: EventRow] {
        guard !ids.isEmpty else { return [:] }
        return try await run(currentRowsRead(ids))
    }

    func currentRowsRead(_ ids: [UUID]) -> RepositoryRead<[UUID: EventRow]> {
        RepositoryRead(sql: latestVersions(where: "event_id IN (SELECT id FROM lookup_ids)"), externalTables: [Self.lookupTable(ids)]) { blocks in
            var result: [UUID: EventRow] = [:]
            for block in blocks {
                for row in try EventRow.rows(block) { result[row.id] = row }
            }
            return result
        }
    }

    /// The string bytes of the latest stored version of each id (what ``RowCache/size(_:)`` counts
    /// besides its fixed 300), without reading the rows themselves.
    public func storedRowSizes(_ ids: [UUID]) async throws -> [UUID: Int] {
        guard !ids.isEmpty else { return [:] }
        return try await run(storedRowSizesRead(ids))
    }

    func storedRowSizesRead(_ ids: [UUID]) -> RepositoryRead<[UUID: Int]> {
        let sql = """
            SELECT event_id, argMax(length(conversation_id) + length(event_name) + length(input) + length(output), version) AS bytes
            FROM \(schema.table) WHERE event_id IN (SELECT id FROM lookup_ids) GROUP BY event_id
            """
        return RepositoryRead(sql: sql, externalTables: [Self.lookupTable(ids)]) { blocks in
            var result: [UUID: Int] = [:]
            for block in blocks where block.rowCount > 0 {
                let found = try block.fixed("event_id", Bits128.self)
                let bytes = try block.fixed("bytes", UInt64.self)
                for row in 0..<block.rowCount { result[UUID(clickHouse: found[row])] = Int(bytes[row]) }
            }
            return result
        }
    }

    // MARK: Reads (API)

    public func event(_ id: UUID) async throws -> EventRow? { try await run(eventRead(id)) }

    func eventRead(_ id: UUID) -> RepositoryRead<EventRow?> {
        let sql = "SELECT * FROM (\(latestVersions(where: "event_id = \(Self.uuidLiteral(id))"))) WHERE is_deleted = 0"
        return RepositoryRead(sql: sql) { blocks in try blocks.flatMap { try EventRow.rows($0) }.first }
    }

    /// A page of a conversation's events in (timestamp, event id) order, after `cursor`.
    public func conversation(_ conversationID: String, limit: Int, after cursor: ConversationCursor?) async throws
        -> (events: [EventRow], next: ConversationCursor?) {
        var page = try await run(conversationPageRead(conversationID, limit: limit, after: cursor))
        // One more than the page was asked for: whether another page follows.
        var next: ConversationCursor?
        if page.count > limit {
            page.removeLast(page.count - limit)
            next = page.last.map { ConversationCursor(timestampMilliseconds: $0.timestamp, eventID: $0.id) }
        }
        guard !page.isEmpty else { return ([], next) }
        // Then the rows of those ids alone (a delete that lands in between leaves its event out).
        let rows = try await currentRows(page.map(\.id))
        return (page.compactMap { rows[$0.id] }.filter { !$0.isDeleted }, next)
    }

    /// The ids and timestamps of up to `limit + 1` undeleted events of the conversation after `cursor`.
    func conversationPageRead(_ conversationID: String, limit: Int, after cursor: ConversationCursor?)
        -> RepositoryRead<[(id: UUID, timestamp: Int64)]> {
        var after = ""
        if let cursor {
            // Ties on the timestamp go by the id's text: ClickHouse orders UUID values by their last
            // 8 bytes first, which is not the order clients see.
            after = " AND (timestamp_ms > \(cursor.timestampMilliseconds) OR (timestamp_ms = \(cursor.timestampMilliseconds) AND toString(event_id) > '\(cursor.eventID.lowercasedString)'))"
        }
        // The page's ids first, from the light columns only: deduplicating the full rows of every
        // event after the cursor would hold the whole rest of the conversation's text in memory
        // (and page through it again for every page). A conversation's id and an event's
        // timestamp never change between versions, so filtering the stored rows on them is exact.
        let pageSQL = """
            SELECT event_id, page_timestamp FROM (
                SELECT event_id, argMax(timestamp_ms, version) AS page_timestamp, argMax(is_deleted, version) AS page_deleted
                FROM \(schema.table) WHERE conversation_id IN (SELECT value FROM conversation)\(after) GROUP BY event_id)
            WHERE page_deleted = 0 ORDER BY page_timestamp, toString(event_id) LIMIT \(limit + 1)
            """
        return RepositoryRead(sql: pageSQL, externalTables: [Self.stringTable("conversation", [conversationID])]) { blocks in
            var page: [(id: UUID, timestamp: Int64)] = []
            for block in blocks where block.rowCount > 0 {
                let found = try block.fixed("event_id", Bits128.self)
                let timestamps = try block.fixed("page_timestamp", Int64.self)
                for row in 0..<block.rowCount { page.append((UUID(clickHouse: found[row]), timestamps[row])) }
            }
            return page
        }
    }

    public struct DailyErrors: Sendable, Equatable {
        public var date: String
        public var errors: UInt64
        public var total: UInt64
    }

    /// Errors and events per UTC day over the last `days` days (today included), optionally of one event name.
    /// Events dated after today (a client's clock ahead, a typo in the year) are not counted: the
    /// answer covers exactly the `days` days it names.
    public func errorCounts(eventName: String?, days: Int, now: Date = Date()) async throws -> [DailyErrors] {
        try await run(errorCountsRead(eventName: eventName, days: days, now: now))
    }

    func errorCountsRead(eventName: String?, days: Int, now: Date) -> RepositoryRead<[DailyErrors]> {
        let today = Int64(now.timeIntervalSince1970) / 86_400
        let start = (today - Int64(days - 1)) * 86_400
        let end = (today + 1) * 86_400
        let nameFilter = eventName == nil ? "" : " AND event_name IN (SELECT value FROM filter)"
        let window = "timestamp >= toDateTime(\(start), 'UTC') AND timestamp < toDateTime(\(end), 'UTC')"
        let sql = """
            SELECT toDate(toDateTime(intDiv(timestamp_ms, 1000), 'UTC')) AS day, sum(error) AS errors, count() AS total
            FROM (\(latestVersions(where: window)))
            WHERE is_deleted = 0\(nameFilter) GROUP BY day ORDER BY day
            """
        let tables = eventName.map { [Self.stringTable("filter", [$0])] } ?? []
        return RepositoryRead(sql: sql, externalTables: tables) { blocks in
            var result: [DailyErrors] = []
            for block in blocks where block.rowCount > 0 {
                let day = try block.fixed("day", UInt16.self)
                let errors = try block.fixed("errors", UInt64.self)
                let total = try block.fixed("total", UInt64.self)
                for row in 0..<block.rowCount {
                    result.append(DailyErrors(date: Timestamp.formatDate(days: Int64(day[row])), errors: errors[row], total: total[row]))
                }
            }
            return result
        }
    }

    public struct LatencyPercentile: Sendable, Equatable {
        public var conversationID: String
        public var eventName: String
        public var p95: Double
        public var count: UInt64
    }

    /// The exact 95th percentile of latency per (session, event name), highest first.
    public func latencyPercentiles(limit: Int) async throws -> [LatencyPercentile] { try await run(latencyPercentilesRead(limit: limit)) }

    func latencyPercentilesRead(limit: Int) -> RepositoryRead<[LatencyPercentile]> {
        let sql = """
            SELECT conversation_id, event_name, quantileExact(0.95)(latency) AS p95, count() AS events
            FROM (\(latestVersions(where: "1"))) WHERE is_deleted = 0
            GROUP BY conversation_id, event_name ORDER BY p95 DESC, conversation_id, event_name LIMIT \(limit)
            """
        return RepositoryRead(sql: sql) { blocks in
            var result: [LatencyPercentile] = []
            for block in blocks where block.rowCount > 0 {
                let conversations = try block.stringColumn("conversation_id")
                let names = try block.stringColumn("event_name")
                let p95 = try block.fixed("p95", Double.self)
                let counts = try block.fixed("events", UInt64.self)
                for row in 0..<block.rowCount {
                    result.append(LatencyPercentile(conversationID: conversations[row], eventName: names[row], p95: p95[row], count: counts[row]))
                }
            }
            return result
        }
    }

    public struct SessionErrors: Sendable, Equatable {
        public var conversationID: String
        public var errors: UInt64
        public var total: UInt64
        public var errorRate: Double
    }

    /// Sessions with at least one error, by error rate, then error count, then id.
    public func topErrorSessions(limit: Int) async throws -> [SessionErrors] { try await run(topErrorSessionsRead(limit: limit)) }

    func topErrorSessionsRead(limit: Int) -> RepositoryRead<[SessionErrors]> {
        let sql = """
            SELECT conversation_id, sum(error) AS errors, count() AS total, errors / total AS rate
            FROM (\(latestVersions(where: "1"))) WHERE is_deleted = 0
            GROUP BY conversation_id HAVING errors > 0 ORDER BY rate DESC, errors DESC, conversation_id LIMIT \(limit)
            """
        return RepositoryRead(sql: sql) { blocks in
            var result: [SessionErrors] = []
            for block in blocks where block.rowCount > 0 {
                let conversations = try block.stringColumn("conversation_id")
                let errors = try block.fixed("errors", UInt64.self)
                let totals = try block.fixed("total", UInt64.self)
                let rates = try block.fixed("rate", Double.self)
                for row in 0..<block.rowCount {
                    result.append(SessionErrors(conversationID: conversations[row], errors: errors[row], total: totals[row], errorRate: rates[row]))
                }
            }
            return result
        }
    }

    /// Live (undeleted) events and their distinct ids, for verification.
    public func liveEventCount() async throws -> UInt64 { try await run(liveEventCountRead()) }

    func liveEventCountRead() -> RepositoryRead<UInt64> {
        let sql = "SELECT count() AS n FROM (\(latestVersions(where: "1"))) WHERE is_deleted = 0"
        return RepositoryRead(sql: sql) { blocks in try blocks.first { $0.rowCount > 0 }.map { try $0.fixed("n", UInt64.self)[0] } ?? 0 }
    }
}

/// A read as ClickHouse receives it (its SQL and the external tables sent with it) and how its
/// answer becomes values. Kept apart from running it, so that the tests can replay the very same
/// reads on a modern ClickHouse (26.x, in process) as well as on the live server.
struct RepositoryRead<Value> {
    var sql: String
    var externalTables: [ExternalTable] = []
    var decode: ([Block]) throws -> Value
}

/// Where a conversation page ended: opaque to clients (base64url of `timestamp_ms:event_id`).
public struct ConversationCursor: Sendable, Equatable {
    public var timestampMilliseconds: Int64
    public var eventID: UUID

    public init(timestampMilliseconds: Int64, eventID: UUID) {
        self.timestampMilliseconds = timestampMilliseconds
        self.eventID = eventID
    }

    public var encoded: String {
        Data("\(timestampMilliseconds):\(eventID.lowercasedString)".utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    public init?(encoded: String) {
        var base64 = encoded.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard encoded.count <= 128, let data = Data(base64Encoded: base64), let text = String(data: data, encoding: .utf8) else { return nil }
        let parts = text.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, let ms = Int64(parts[0]), let id = UUID(text: String(parts[1])) else { return nil }
        self.init(timestampMilliseconds: ms, eventID: id)
    }
}
