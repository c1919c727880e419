import NIOCore
import NIOSSL

/// How to reach and talk to one ClickHouse server.
public struct ClickHouseConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Default database of the connection; empty means the server's default.
    public var database: String
    public var user: String
    public var password: String
    /// Compression of data blocks in both directions.
    public var compression: CompressionMethod
    /// zstd level of data blocks in both directions when ``compression`` is `.zstd`: the server's
    /// for its blocks (`network_zstd_compression_level`), this client's for INSERT data and
    /// external tables.
    public var zstdLevel: Int
    /// TLS (the secure native port, usually 9440); nil for plain TCP.
    public var tls: TLSConfiguration?
    /// Host name for SNI and certificate checks; defaults to ``host``.
    public var tlsServerName: String?
    public var connectTimeout: Duration
    /// Longest silence from the server after the client's Hello went out (TLS included) before its
    /// first answer: it bounds a port of some other service that accepts TCP and then says
    /// nothing. Timed on the event loop, so a process whose tasks are slow to run (every
    /// cooperative thread blocked for a while) does not trip it.
    public var handshakeTimeout: Duration
    /// Longest silence from the server while a response is expected (servers send progress every
    /// 100 ms while a query runs, so this bounds stalls, not query length).
    public var readTimeout: Duration
    /// Settings sent with every query (per-query settings override them by name).
    public var settings: [QuerySetting]
    public var identity: ClientIdentity
    public var quotaKey: String
    /// The most one packet from the server may take: a block, decompressed (servers cut results
    /// into blocks of about 65 000 rows, or fewer when rows are large). A larger packet, or one
    /// whose lengths claim more, fails the request and closes the connection rather than being
    /// buffered for as long as the server goes on sending. Raise it for single values near 1 GiB.
    public var maximumPacketBytes: Int
    public static let defaultMaximumPacketBytes = 1 << 30

    public init(host: String = "127.0.0.1", port: Int = 9000, database: String = "", user: String = "default",
                password: String = "", compression: CompressionMethod = .lz4) {
        self.host = host
        self.port = port
        self.database = database
        self.user = user
        self.password = password
        self.compression = compression
        self.zstdLevel = 1
        self.tls = nil
        self.tlsServerName = nil
        self.connectTimeout = .seconds(10)
        self.handshakeTimeout = .seconds(30)
        self.readTimeout = .seconds(300)
        self.settings = []
        self.identity = ClientIdentity()
        self.quotaKey = ""
        self.maximumPacketBytes = Self.defaultMaximumPacketBytes
    }
}

extension Duration {
    /// In nanoseconds, capped at about 292 years (`Int64.max`): `.seconds(Int64.max)` written to mean
    /// "no timeout" would overflow otherwise and stop the program.
    var timeAmount: TimeAmount { TimeAmount(max(self, .zero)) }  // NIO's conversion clamps at Int64.max nanoseconds
}

extension TimeAmount {
    /// Whole milliseconds, for messages.
    var milliseconds: Int64 { nanoseconds / 1_000_000 }
}
