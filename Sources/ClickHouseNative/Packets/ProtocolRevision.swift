/// Native protocol revisions whose gates this client implements. The client announces
/// ``ProtocolRevision/client`` and uses `min(client, server)` for every encoding decision.
public enum ProtocolRevision {
    /// The revision this client announces. Every field gated at or below it is implemented.
    public static let client: UInt64 = 54460

    static let withClientInfo: UInt64 = 54032
    static let withServerTimezone: UInt64 = 54058
    static let withQuotaKeyInClientInfo: UInt64 = 54060
    static let withServerDisplayName: UInt64 = 54372
    static let withVersionPatch: UInt64 = 54401
    static let withServerLogs: UInt64 = 54406
    static let withColumnDefaultsMetadata: UInt64 = 54410
    static let withClientWriteInfo: UInt64 = 54420
    static let withSettingsSerializedAsStrings: UInt64 = 54429
    static let withInterserverSecret: UInt64 = 54441
    static let withOpenTelemetry: UInt64 = 54442
    static let withDistributedDepth: UInt64 = 54448
    static let withInitialQueryStartTime: UInt64 = 54449
    static let withIncrementalProfileEvents: UInt64 = 54451
    static let withParallelReplicas: UInt64 = 54453
    static let withCustomSerialization: UInt64 = 54454
    static let withAddendum: UInt64 = 54458
    static let withParameters: UInt64 = 54459
    static let withServerQueryTimeInProgress: UInt64 = 54460
}

/// Packet codes the client sends.
enum ClientPacketCode: UInt64 {
    case hello = 0, query = 1, data = 2, cancel = 3, ping = 4
}

/// Packet codes the server sends.
enum ServerPacketCode: UInt64 {
    case hello = 0, data = 1, exception = 2, progress = 3, pong = 4, endOfStream = 5, profileInfo = 6
    case totals = 7, extremes = 8, tablesStatusResponse = 9, log = 10, tableColumns = 11, partUUIDs = 12
    case readTaskRequest = 13, profileEvents = 14, timezoneUpdate = 17
}
