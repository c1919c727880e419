import ClickHouseNative
import Foundation
import Logging
import ServiceLifecycle

/// One stored version of an event: a row of the `events` table.
public struct EventRow: Sendable, Equatable {
    public var id: UUID
    public var fields: EventFields
    public var receivedAtMilliseconds: Int64
    /// Kafka order of the message that produced this version (its partition offset).
    public var version: UInt64
    public var isDeleted: Bool

    public init(id: UUID, fields: EventFields, receivedAtMilliseconds: Int64, version: UInt64, isDeleted: Bool = false) {
        self.id = id
        self.fields = fields
        self.receivedAtMilliseconds = receivedAtMilliseconds
        self.version = version
        self.isDeleted = isDeleted
    }
}

/// The `events` table and its migrations.
///
/// `ReplacingMergeTree(version)` keeps, per sorting key (`event_id`), the row with the highest
/// version once parts merge; reads deduplicate themselves (see ``EventRepository``) because merges
/// happen whenever the server likes. `PARTITION BY toYYYYMM(timestamp)`: the timestamp is fixed at
/// create and copied into every later version, so all versions of an event share a partition.
public struct EventSchema: Sendable {
    public struct Migration: Sendable {
        public var id: Int
        public var description: String
        public var statements: [String]

        /// The migrations log's row for this migration.
        func record(appliedAt date: Date) -> Block {
            Block(columns: [
                NamedColumn("id", FixedWidthColumn(type: .uint32, values: [UInt32(id)])),
                NamedColumn("description", StringColumn([description])),
                NamedColumn("applied_at", FixedWidthColumn(type: .dateTime(timeZone: "UTC"), values: [UInt32(date.timeIntervalSince1970)])),
            ])
        }
    }

    public let database: String
    public var table: String { "\(database).events" }

    public init(database: String) { self.database = database }

    public static let columns = "event_id, conversation_id, event_name, input, output, latency, error, timestamp, timestamp_ms, received_at, version, is_deleted"

    /// The migrations for a server: every statement is idempotent, so concurrent starts are safe.
    public func migrations(for server: ServerInfo) -> [Migration] {
        var list = [
            Migration(id: 1, description: "events table", statements: [
                """
                CREATE TABLE IF NOT EXISTS \(table) (
                    event_id UUID,
                    conversation_id String,
                    event_name String,
                    input String,
                    output String,
                    latency Float64,
                    error UInt8,
                    timestamp DateTime('UTC'),
                    timestamp_ms Int64,
                    received_at DateTime('UTC'),
                    version UInt64,
                    is_deleted UInt8
                ) ENGINE = ReplacingMergeTree(version)
                PARTITION BY toYYYYMM(timestamp)
                ORDER BY event_id
                """,
            ]),
        ]
        // Data-skipping bloom filters exist without experimental flags from 20.1; on older servers
        // conversation reads scan the conversation_id column instead.
        if (server.versionMajor, server.versionMinor) >= (20, 1) {
            list.append(Migration(id: 2, description: "conversation_id bloom filter index", statements: [
                "ALTER TABLE \(table) ADD INDEX IF NOT EXISTS conversation_bloom conversation_id TYPE bloom_filter(0.01) GRANULARITY 4",
            ]))
        }
        return list
    }

    /// ``migrate(_:)``, retried while ClickHouse is not reachable yet (containers start in any
    /// order), with a wait from 200 ms doubling up to `maximumBackoff`. False when the task was
    /// cancelled or a graceful shutdown began first, which also ends a wait at once.
    public func migrateWhenReachable(_ client: ClickHouseClient, logger: Logger, maximumBackoff: Duration = .seconds(5)) async -> Bool {
        var delay = Duration.milliseconds(200)
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await migrate(client)
                return true
            } catch {
                if Task.isCancelled || Task.isShuttingDownGracefully { return false }
                logger.warning("schema migration failed; retrying", metadata: ["error": "\(error)", "retry_in": "\(delay)"])
                let wait = delay
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
                delay = min(delay * 2, maximumBackoff)
            }
        }
        return false
    }

    /// Creates the database, the migrations log and whatever migrations are missing.
    public func migrate(_ client: ClickHouseClient) async throws {
        try await client.withConnection { connection in
            let server = await connection.server
            for statement in bootstrapStatements { try await connection.execute(statement) }
            var applied = Set<UInt32>()
            for block in try await connection.collect("SELECT id FROM \(database).schema_migrations") where block.rowCount > 0 {
                applied.formUnion(try block.fixed("id", UInt32.self).values)
            }
            for migration in migrations(for: server) where !applied.contains(UInt32(migration.id)) {
                for statement in migration.statements { try await connection.execute(statement) }
                try await connection.insert(into: migrationsTable, migration.record(appliedAt: Date()))
            }
        }
    }

    var migrationsTable: String { "\(database).schema_migrations" }

    /// The database and the migrations log, before any migration.
    var bootstrapStatements: [String] {
        [
            "CREATE DATABASE IF NOT EXISTS \(database)",
            """
            CREATE TABLE IF NOT EXISTS \(migrationsTable) (id UInt32, description String, applied_at DateTime('UTC'))
            ENGINE = MergeTree ORDER BY id
            """,
        ]
    }
}

extension EventRow {
    /// Rows as one block in the table's column order.
    public static func block(_ rows: [EventRow]) -> Block {
        var ids = FixedWidthColumn<Bits128>(type: .uuid)
        var conversations = StringColumn()
        var names = StringColumn()
        var inputs = StringColumn()
        var outputs = StringColumn()
        var latencies = FixedWidthColumn<Double>(type: .float64)
        var errors = FixedWidthColumn<UInt8>(type: .uint8)
        var timestamps = FixedWidthColumn<UInt32>(type: .dateTime(timeZone: "UTC"))
        var timestampMilliseconds = FixedWidthColumn<Int64>(type: .int64)
        var received = FixedWidthColumn<UInt32>(type: .dateTime(timeZone: "UTC"))
        var versions = FixedWidthColumn<UInt64>(type: .uint64)
        var deleted = FixedWidthColumn<UInt8>(type: .uint8)
        ids.reserveCapacity(rows.count)
        latencies.reserveCapacity(rows.count)
        for row in rows {
            ids.append(row.id.clickHouseValue)
            conversations.append(row.fields.conversationID)
            names.append(row.fields.eventName)
            inputs.append(row.fields.input)
            outputs.append(row.fields.output)
            latencies.append(row.fields.latency)
            errors.append(row.fields.error ? 1 : 0)
            timestamps.append(UInt32(clamping: row.fields.timestampMilliseconds / 1000))
            timestampMilliseconds.append(row.fields.timestampMilliseconds)
            received.append(UInt32(clamping: row.receivedAtMilliseconds / 1000))
            versions.append(row.version)
            deleted.append(row.isDeleted ? 1 : 0)
        }
        return Block(columns: [
            NamedColumn("event_id", ids), NamedColumn("conversation_id", conversations), NamedColumn("event_name", names),
            NamedColumn("input", inputs), NamedColumn("output", outputs), NamedColumn("latency", latencies),
            NamedColumn("error", errors), NamedColumn("timestamp", timestamps), NamedColumn("timestamp_ms", timestampMilliseconds),
            NamedColumn("received_at", received), NamedColumn("version", versions), NamedColumn("is_deleted", deleted),
        ], rowCount: rows.count)
    }

    /// Rows of a block with (at least) the table's columns, as the repository's queries return them.
    static func rows(_ block: Block) throws -> [EventRow] {
        guard block.rowCount > 0 else { return [] }
        let ids = try block.fixed("event_id", Bits128.self)
        let conversations = try block.stringColumn("conversation_id")
        let names = try block.stringColumn("event_name")
        let inputs = try block.stringColumn("input")
        let outputs = try block.stringColumn("output")
        let latencies = try block.fixed("latency", Double.self)
        let errors = try block.fixed("error", UInt8.self)
        let timestamps = try block.fixed("timestamp_ms", Int64.self)
        let received = try block.fixed("received_at", UInt32.self)
        let versions = try block.fixed("version", UInt64.self)
        let deleted = try block.fixed("is_deleted", UInt8.self)
        return (0..<block.rowCount).map { row in
            EventRow(id: UUID(clickHouse: ids[row]),
                     fields: EventFields(conversationID: conversations[row], eventName: names[row], input: inputs[row],
                                         output: outputs[row], latency: latencies[row], error: errors[row] != 0,
                                         timestampMilliseconds: timestamps[row]),
                     receivedAtMilliseconds: Int64(received[row]) * 1000, version: versions[row], isDeleted: deleted[row] != 0)
        }
    }
}

extension Block {
    /// The library's typed access (its error names the column's actual type), in this module's spelling.
    func fixed<T: BitwiseCopyable & Sendable>(_ name: String, _: T.Type) throws -> FixedWidthColumn<T> {
        try column(name, as: FixedWidthColumn<T>.self)
    }

    func stringColumn(_ name: String) throws -> StringColumn { try column(name, as: StringColumn.self) }
}
