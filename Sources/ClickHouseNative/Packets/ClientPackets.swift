import NIOCore
/// A query setting, sent as text (servers at 54429 and later) or in the binary form older servers
/// read (see ``LegacySettingKind``).
public struct QuerySetting: Sendable, Equatable {
    public var name: String
    public var value: String
    /// Ask the server to fail on a setting it does not know instead of ignoring it.
    public var isImportant: Bool

    public init(_ name: String, _ value: String, isImportant: Bool = false) {
        self.name = name
        self.value = value
        self.isImportant = isImportant
    }
}

/// How servers before revision 54429 (e.g. ClickHouse 18.16) read a setting's value. They cannot
/// skip an unknown setting, so the client only sends settings it knows the type of.
enum LegacySettingKind {
    case unsignedInteger  // UInt64, Bool, Seconds, Milliseconds, max_threads: VarUInt
    case signedInteger    // Int64: zigzag VarInt
    case float            // decimal text in a String
    case string           // strings and every enum-like setting

    static let known: [String: LegacySettingKind] = [
        "max_block_size": .unsignedInteger, "max_insert_block_size": .unsignedInteger, "max_threads": .unsignedInteger,
        "max_memory_usage": .unsignedInteger, "max_execution_time": .unsignedInteger, "max_result_rows": .unsignedInteger,
        "max_result_bytes": .unsignedInteger, "max_rows_to_read": .unsignedInteger, "readonly": .unsignedInteger,
        "send_timeout": .unsignedInteger, "receive_timeout": .unsignedInteger, "connect_timeout": .unsignedInteger,
        "insert_deduplicate": .unsignedInteger, "log_queries": .unsignedInteger, "join_use_nulls": .unsignedInteger,
        "allow_experimental_low_cardinality_type": .unsignedInteger, "low_cardinality_allow_in_native_format": .unsignedInteger,
        "optimize_move_to_prewhere": .unsignedInteger, "force_index_by_date": .unsignedInteger, "priority": .unsignedInteger,
        "select_sequential_consistency": .unsignedInteger, "extremes": .unsignedInteger, "use_uncompressed_cache": .unsignedInteger,
        "max_query_size": .unsignedInteger, "interactive_delay": .unsignedInteger, "max_bytes_before_external_group_by": .unsignedInteger,
        "max_bytes_before_external_sort": .unsignedInteger,
        "network_zstd_compression_level": .signedInteger,
        "totals_auto_threshold": .float,
        "send_logs_level": .string, "network_compression_method": .string, "load_balancing": .string,
        "distributed_product_mode": .string, "totals_mode": .string, "read_overflow_mode": .string,
        "result_overflow_mode": .string, "timeout_overflow_mode": .string,
        // Every name here is in 18.16's system.settings (checked): an unknown one is an exception
        // before any other answer, which closes the connection.
    ]
}

/// A client-side error raised before anything is sent (the connection stays usable).
public struct ClickHouseClientError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Identity the client reports in Hello and in each query's ClientInfo (they must match).
public struct ClientIdentity: Sendable {
    public var name = "ClickHouseNative (Swift)"
    public var versionMajor: UInt64 = 1
    public var versionMinor: UInt64 = 0
    public var versionPatch: UInt64 = 0
    public var osUser = ""
    public var hostname = ""
    public init() {}
}

/// Encoders of the packets a client sends. Every field gated on the protocol revision is written
/// only when the negotiated revision has it.
enum ClientPackets {
    static func hello(identity: ClientIdentity, database: String, user: String, password: String, to writer: inout ByteWriter) {
        writer.writeVarUInt(ClientPacketCode.hello.rawValue)
        writer.writeString(identity.name)
        writer.writeVarUInt(identity.versionMajor)
        writer.writeVarUInt(identity.versionMinor)
        writer.writeVarUInt(ProtocolRevision.client)
        writer.writeString(database)
        writer.writeString(user.isEmpty ? "default" : user)
        writer.writeString(password)
    }

    /// Sent right after the server's Hello when the revision has it: the quota key.
    static func addendum(quotaKey: String, revision: UInt64, to writer: inout ByteWriter) {
        if revision >= ProtocolRevision.withAddendum { writer.writeString(quotaKey) }
    }

    struct Query {
        var id: String
        var text: String
        var settings: [QuerySetting]
        var parameters: [String: String]
        var compression: Bool
        var quotaKey: String
    }

    static func query(_ query: Query, identity: ClientIdentity, revision: UInt64, to writer: inout ByteWriter) throws {
        // Validate everything before writing, so an error leaves nothing half-sent.
        if !query.parameters.isEmpty && revision < ProtocolRevision.withParameters {
            throw ClickHouseClientError("the server (protocol revision \(revision)) does not support query parameters; they need revision \(ProtocolRevision.withParameters) (ClickHouse 22.8 or later)")
        }
        if revision < ProtocolRevision.withSettingsSerializedAsStrings {
            for setting in query.settings where LegacySettingKind.known[setting.name] == nil {
                throw ClickHouseClientError("setting \(setting.name) cannot be sent to a server of protocol revision \(revision): such servers cannot skip settings they do not know, and this client does not know its type")
            }
        }

        writer.writeVarUInt(ClientPacketCode.query.rawValue)
        writer.writeString(query.id)
        if revision >= ProtocolRevision.withClientInfo {
            clientInfo(identity: identity, quotaKey: query.quotaKey, revision: revision, to: &writer)
        }
        try settings(query.settings, revision: revision, to: &writer)
        if revision >= ProtocolRevision.withInterserverSecret { writer.writeString("") }
        writer.writeVarUInt(2)  // QueryProcessingStage::Complete
        writer.writeVarUInt(query.compression ? 1 : 0)
        writer.writeString(query.text)
        if revision >= ProtocolRevision.withParameters {
            let types = query.parameters.isEmpty ? [:] : parameterTypes(in: query.text)
            for (name, value) in query.parameters.sorted(by: { $0.key < $1.key }) {
                writer.writeString(name)
                writer.writeVarUInt(2)  // CUSTOM: the value is a serialized field
                writer.writeString(quoteParameter(value, type: types[name]))
            }
            writer.writeString("")
        }
    }

    static func clientInfo(identity: ClientIdentity, quotaKey: String, revision: UInt64, to writer: inout ByteWriter) {
        writer.writeUInt8(1)  // INITIAL_QUERY
        writer.writeString("")  // initial user
        writer.writeString("")  // initial query id
        writer.writeString("0.0.0.0:0")  // initial address
        if revision >= ProtocolRevision.withInitialQueryStartTime { writer.writeInteger(Int64(0)) }
        writer.writeUInt8(1)  // interface: TCP
        writer.writeString(identity.osUser)
        writer.writeString(identity.hostname)
        writer.writeString(identity.name)
        writer.writeVarUInt(identity.versionMajor)
        writer.writeVarUInt(identity.versionMinor)
        writer.writeVarUInt(ProtocolRevision.client)
        if revision >= ProtocolRevision.withQuotaKeyInClientInfo { writer.writeString(quotaKey) }
        if revision >= ProtocolRevision.withDistributedDepth { writer.writeVarUInt(0) }
        if revision >= ProtocolRevision.withVersionPatch { writer.writeVarUInt(identity.versionPatch) }
        if revision >= ProtocolRevision.withOpenTelemetry { writer.writeUInt8(0) }
        if revision >= ProtocolRevision.withParallelReplicas {
            writer.writeVarUInt(0)
            writer.writeVarUInt(0)
            writer.writeVarUInt(0)
        }
    }

    static func settings(_ settings: [QuerySetting], revision: UInt64, to writer: inout ByteWriter) throws {
        if revision >= ProtocolRevision.withSettingsSerializedAsStrings {
            for setting in settings {
                writer.writeString(setting.name)
                writer.writeVarUInt(setting.isImportant ? 1 : 0)
                writer.writeString(setting.value)
            }
        } else {
            for setting in settings {
                writer.writeString(setting.name)
                switch LegacySettingKind.known[setting.name]! {
                case .unsignedInteger:
                    let normalized = setting.value == "true" ? "1" : setting.value == "false" ? "0" : setting.value
                    guard let value = UInt64(normalized) else {
                        throw ClickHouseClientError("setting \(setting.name) needs an unsigned integer, got '\(setting.value)'")
                    }
                    writer.writeVarUInt(value)
                case .signedInteger:
                    guard let value = Int64(setting.value) else {
                        throw ClickHouseClientError("setting \(setting.name) needs an integer, got '\(setting.value)'")
                    }
                    writer.writeVarUInt(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
                case .float, .string:
                    writer.writeString(setting.value)
                }
            }
        }
        writer.writeString("")
    }

    /// The declared type of each `{name:Type}` placeholder in `sql` (quoted text and comments are
    /// not skipped: a placeholder-like string in a literal only changes how that value is escaped).
    static func parameterTypes(in sql: String) -> [String: ClickHouseType] {
        var types: [String: ClickHouseType] = [:]
        var rest = sql[...]
        while let open = rest.firstIndex(of: "{") {
            rest = rest[rest.index(after: open)...]
            guard let close = rest.firstIndex(of: "}"), let colon = rest[..<close].firstIndex(of: ":") else { continue }
            let name = rest[..<colon].trimmingCharacters(in: .whitespaces)
            if let type = try? ClickHouseType.parse(String(rest[rest.index(after: colon)..<close]).trimmingCharacters(in: .whitespaces)) {
                types[name] = type
            }
            rest = rest[rest.index(after: close)...]
        }
        return types
    }

    /// A parameter value as the server expects it: the value's escaped text form (the server reads
    /// it as a TabSeparated field of the placeholder's type), single-quoted. The caller passes the
    /// text form: numbers as digits, dates as `2024-01-02`, strings as they are; arrays, tuples and
    /// maps in their literal syntax (`['a', 'it\'s']`), which is already their escaped form; for a
    /// Nullable placeholder `\N` is NULL (as clickhouse-client's `--param_` reads it).
    static func quoteParameter(_ value: String, type: ClickHouseType? = nil) -> String {
        // Step 1: the escaped form. Scalars are TSV-escaped; composite values and NULL are not (a
        // second layer made `['it\'s']` a parse error and `\N` the string "\N").
        var escaped = ""
        let isNull = value == "\\N" && type?.isNullable == true
        if isNull || type?.textInputShape == .composite {
            escaped = value
        } else {
            for scalar in value.unicodeScalars {
                switch scalar {
                case "\\": escaped += "\\\\"
                case "\t": escaped += "\\t"
                case "\n": escaped += "\\n"
                case "\r": escaped += "\\r"
                case "\0": escaped += "\\0"
                default: escaped.unicodeScalars.append(scalar)
                }
            }
        }
        // Step 2: quote as a string literal.
        var quoted = "'"
        for scalar in escaped.unicodeScalars {
            switch scalar {
            case "\\": quoted += "\\\\"
            case "'": quoted += "\\'"
            default: quoted.unicodeScalars.append(scalar)
            }
        }
        return quoted + "'"
    }

    /// A Data packet: table name (never compressed), then the block, in compressed frames when the
    /// query uses compression (the block always ends a frame).
    static func data(_ block: Block, table: String = "", compression: CompressionMethod?, zstdLevel: Int = 1, revision: UInt64,
                     to writer: inout ByteWriter) throws {
        var scratch = ByteWriter()
        try data(block, table: table, compression: compression, zstdLevel: zstdLevel, revision: revision, to: &writer, scratch: &scratch)
    }

    /// `scratch` holds the uncompressed block when compressing: a caller sending many blocks
    /// passes the same one (and the same `writer`, reset) so their memory is reused.
    static func data(_ block: Block, table: String = "", compression: CompressionMethod?, zstdLevel: Int = 1, revision: UInt64,
                     to writer: inout ByteWriter, scratch: inout ByteWriter) throws {
        writer.writeVarUInt(ClientPacketCode.data.rawValue)
        writer.writeString(table)
        let layout = BlockLayout.wire(revision: revision)
        if let compression {
            scratch.reset()
            try NativeFormat.writeBlock(block, to: &scratch, layout: layout)
            try scratch.bytes.withUnsafeBytes { try CompressedFrame.write($0, method: compression, zstdLevel: Int32(zstdLevel), to: &writer) }
        } else {
            try NativeFormat.writeBlock(block, to: &writer, layout: layout)
        }
    }

    /// An uncompressed Data packet written straight into the socket buffer: the bytes of encoded
    /// columns are copied once, from the column to `buffer`; everything else goes through `scratch`.
    static func data(_ block: Block, revision: UInt64, to buffer: inout ByteBuffer, scratch: inout ByteWriter) throws {
        scratch.reset()
        scratch.writeVarUInt(ClientPacketCode.data.rawValue)
        scratch.writeString("")
        let layout = BlockLayout.wire(revision: revision)
        try NativeFormat.writeBlock(block, to: &scratch, layout: layout, encodedBytes: { pending, bytes in
            buffer.writeBytes(pending.bytes)
            pending.reset()
            buffer.writeBytes(bytes)
        })
        buffer.writeBytes(scratch.bytes)
    }

    static func cancel(to writer: inout ByteWriter) { writer.writeVarUInt(ClientPacketCode.cancel.rawValue) }
    static func ping(to writer: inout ByteWriter) { writer.writeVarUInt(ClientPacketCode.ping.rawValue) }
}

/// A table sent along with a query (the protocol's external data): the query reads it by `name`
/// like a temporary table. It carries values into a query without putting them in its text, on
/// every server version (query parameters need revision 54459).
public struct ExternalTable: Sendable {
    public var name: String
    public var block: Block
    public init(name: String, block: Block) {
        self.name = name
        self.block = block
    }
}
