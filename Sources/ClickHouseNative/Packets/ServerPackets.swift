/// What the server said about itself in its Hello.
public struct ServerInfo: Sendable, Equatable {
    public var name: String
    public var versionMajor: UInt64
    public var versionMinor: UInt64
    public var versionPatch: UInt64
    /// The server's own protocol revision.
    public var revision: UInt64
    public var timeZone: String?
    public var displayName: String?

    /// The revision both sides use: `min(client, server)`.
    public var negotiatedRevision: UInt64 { min(revision, ProtocolRevision.client) }
    public var version: String { "\(versionMajor).\(versionMinor).\(versionPatch)" }
}

/// An exception the server sent, with its nested causes.
public struct ServerException: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: Int32
    /// e.g. `DB::Exception`.
    public var name: String
    public var message: String
    public var stackTrace: String
    public var nested: [ServerException]

    public init(code: Int32, name: String, message: String, stackTrace: String = "", nested: [ServerException] = []) {
        self.code = code
        self.name = name
        self.message = message
        self.stackTrace = stackTrace
        self.nested = nested
    }

    /// As clickhouse-client prints it: `Code: 60. DB::Exception: Table default.x doesn't exist.`
    /// (Older servers start the message with the name already; it is not repeated.)
    public var description: String {
        message.hasPrefix(name + ": ") ? "Code: \(code). \(message)" : "Code: \(code). \(name): \(message)"
    }
}

/// Progress of a query; each packet is an increment since the previous one.
public struct Progress: Sendable, Equatable {
    public var rows: UInt64 = 0
    public var bytes: UInt64 = 0
    public var totalRowsToRead: UInt64 = 0
    public var writtenRows: UInt64 = 0
    public var writtenBytes: UInt64 = 0
    public var elapsedNanoseconds: UInt64 = 0

    public init() {}

    /// Adds an increment. The counts stop at UInt64.max: they are the server's numbers, and a sum
    /// past it would trap the process (a broken or hostile server can send any).
    public mutating func add(_ other: Progress) {
        func sum(_ a: UInt64, _ b: UInt64) -> UInt64 {
            let (total, overflow) = a.addingReportingOverflow(b)
            return overflow ? .max : total
        }
        rows = sum(rows, other.rows)
        bytes = sum(bytes, other.bytes)
        totalRowsToRead = sum(totalRowsToRead, other.totalRowsToRead)
        writtenRows = sum(writtenRows, other.writtenRows)
        writtenBytes = sum(writtenBytes, other.writtenBytes)
        elapsedNanoseconds = sum(elapsedNanoseconds, other.elapsedNanoseconds)
    }
}

/// Summary the server sends at the end of a SELECT.
public struct ProfileInfo: Sendable, Equatable {
    public var rows: UInt64
    public var blocks: UInt64
    public var bytes: UInt64
    public var appliedLimit: Bool
    public var rowsBeforeLimit: UInt64
    public var calculatedRowsBeforeLimit: Bool
}

/// One packet from the server.
enum ServerPacket: Sendable {
    case hello(ServerInfo)
    case data(Block)
    case exception(ServerException)
    case progress(Progress)
    case pong
    case endOfStream
    case profileInfo(ProfileInfo)
    case totals(Block)
    case extremes(Block)
    case log(Block)
    case tableColumns(table: String, description: String)
    case profileEvents(Block)
    case timezoneUpdate(String)
    /// Packets a plain client never asks for but must be able to skip.
    case ignored(code: UInt64)
}

/// The input ends inside a packet. The bytes before `resumeOffset` are taken: the decoder keeps
/// what it made of them (a block's header and finished columns, a column being filled, frames
/// decompressed). The next call must present the input from `resumeOffset` on, at least
/// `minimumBytes` of it. `completingBytes` (at least `minimumBytes`) is how many would finish what
/// is being received (a column being filled, a frame): a reader may wait for that many at once.
struct NeedMoreData: Error, Equatable {
    var resumeOffset: Int
    var minimumBytes: Int
    var completingBytes: Int

    init(resumeOffset: Int, minimumBytes: Int, completingBytes: Int? = nil) {
        self.resumeOffset = resumeOffset
        self.minimumBytes = minimumBytes
        self.completingBytes = max(minimumBytes, completingBytes ?? minimumBytes)
    }
}

/// Decodes server packets from a buffer, given the negotiated revision and whether the current
/// query compresses its blocks. Pure: no I/O. A packet that is not complete yet throws
/// ``NeedMoreData``; a block is assembled across such calls (``assembly``), so each byte of it is
/// decoded about once however it is cut.
struct ServerPacketDecoder: Sendable {
    var revision: UInt64 = ProtocolRevision.client
    var compression = false
    /// The most one packet may take (a block's decompressed bytes); see ``ClickHouseConfiguration/maximumPacketBytes``.
    var maximumPacketBytes = ClickHouseConfiguration.defaultMaximumPacketBytes
    /// The block packet being received, shared by the copies of this decoder a connection makes.
    let assembly = BlockAssembly()

    var blockLayout: BlockLayout {
        BlockLayout.wire(revision: revision)
    }

    /// Decodes the packet at the reader's position, or resumes the block that an earlier call left
    /// unfinished (see ``NeedMoreData``).
    func decode(_ reader: inout ByteReader) throws -> ServerPacket {
        do {
            if !assembly.isIdle { return try resumeBlock(&reader) }
            let packetStart = reader.offset
            do {
                return try decodePacket(&reader)
            } catch let need as NeedMoreData {
                throw need
            } catch let error as WireError {
                throw Self.needMore(error, resumingAt: packetStart, reader)
            }
        } catch let need as NeedMoreData where assembly.bytesSoFar + need.minimumBytes > maximumPacketBytes {
            // A length over the limit, or a packet still incomplete after that many bytes (with
            // what its block took so far): the connection would otherwise buffer whatever the
            // server sends until it arrives.
            assembly.reset()
            throw tooLarge
        }
    }

    /// More rows than the limit has bytes: only columns that take no bytes per row (JSON or Dynamic
    /// with no paths, in the flattened form) could carry them, and every loop over the block's rows
    /// (rendering it as text, say) would run for as long.
    func checkRowCount(_ rows: Int) throws {
        guard rows <= maximumPacketBytes else { throw tooLarge }
    }

    /// Counts a column's bytes (decoded, or allocated for filling) against the limit.
    func count(_ bytes: Int) throws {
        assembly.receivedBytes += bytes
        guard assembly.receivedBytes <= maximumPacketBytes else { throw tooLarge }
    }

    var tooLarge: ClickHouseProtocolError {
        var error = ClickHouseProtocolError("a packet from the server is larger than the \(maximumPacketBytes)-byte limit"
                                            + " (ClickHouseConfiguration.maximumPacketBytes), or its lengths are corrupt")
        error.isOverLimit = true
        return error
    }

    private func decodePacket(_ reader: inout ByteReader) throws -> ServerPacket {
        let code = try reader.readVarUInt()
        guard let packet = ServerPacketCode(rawValue: code) else {
            throw ClickHouseProtocolError.unknownPacket(code)
        }
        switch packet {
        case .hello: return .hello(try hello(&reader))
        case .data: return try beginBlock(.data, compressed: compression, &reader)
        case .totals: return try beginBlock(.totals, compressed: compression, &reader)
        case .extremes: return try beginBlock(.extremes, compressed: compression, &reader)
        case .log: return try beginBlock(.log, compressed: false, &reader)
        case .profileEvents: return try beginBlock(.profileEvents, compressed: false, &reader)
        case .exception: return .exception(try exception(&reader))
        case .progress: return .progress(try progress(&reader))
        case .pong: return .pong
        case .endOfStream: return .endOfStream
        case .profileInfo:
            return .profileInfo(ProfileInfo(
                rows: try reader.readVarUInt(), blocks: try reader.readVarUInt(), bytes: try reader.readVarUInt(),
                appliedLimit: try reader.readUInt8() != 0, rowsBeforeLimit: try reader.readVarUInt(),
                calculatedRowsBeforeLimit: try reader.readUInt8() != 0))
        case .tableColumns:
            return .tableColumns(table: try reader.readString(), description: try reader.readString())
        case .timezoneUpdate:
            return .timezoneUpdate(try reader.readString())
        case .partUUIDs:
            let count = try reader.readLength(minimumElementSize: 16)
            try reader.skip(count * 16)
            return .ignored(code: code)
        case .readTaskRequest:
            return .ignored(code: code)
        case .tablesStatusResponse:
            throw ClickHouseProtocolError("unexpected TablesStatusResponse (never requested)")
        }
    }

    private func hello(_ reader: inout ByteReader) throws -> ServerInfo {
        var info = ServerInfo(name: try reader.readString(), versionMajor: try reader.readVarUInt(),
                              versionMinor: try reader.readVarUInt(), versionPatch: 0, revision: try reader.readVarUInt())
        let revision = info.negotiatedRevision
        if revision >= ProtocolRevision.withServerTimezone { info.timeZone = try reader.readString() }
        if revision >= ProtocolRevision.withServerDisplayName { info.displayName = try reader.readString() }
        info.versionPatch = revision >= ProtocolRevision.withVersionPatch ? try reader.readVarUInt() : info.revision
        return info
    }

    private func exception(_ reader: inout ByteReader) throws -> ServerException {
        var chain: [ServerException] = []
        while true {
            let code = try reader.readInteger(as: Int32.self)
            let name = try reader.readString()
            let message = try reader.readString()
            let stack = try reader.readString()
            chain.append(ServerException(code: code, name: name, message: message, stackTrace: stack))
            guard try reader.readUInt8() != 0 else { break }
            guard chain.count < 100 else { throw ClickHouseProtocolError("exception nested more than 100 levels") }
        }
        var first = chain.removeFirst()
        first.nested = chain
        return first
    }

    private func progress(_ reader: inout ByteReader) throws -> Progress {
        var progress = Progress()
        progress.rows = try reader.readVarUInt()
        progress.bytes = try reader.readVarUInt()
        progress.totalRowsToRead = try reader.readVarUInt()
        if revision >= ProtocolRevision.withClientWriteInfo {
            progress.writtenRows = try reader.readVarUInt()
            progress.writtenBytes = try reader.readVarUInt()
        }
        if revision >= ProtocolRevision.withServerQueryTimeInProgress {
            progress.elapsedNanoseconds = try reader.readVarUInt()
        }
        return progress
    }
}

// MARK: Blocks

extension ServerPacketDecoder {
    /// After the packet code: the external table name (empty for results), then the block. Until
    /// the name is read, a cut packet is retried from its start; after it, the block is assembled.
    private func beginBlock(_ kind: BlockAssembly.Kind, compressed: Bool, _ reader: inout ByteReader) throws -> ServerPacket {
        _ = try reader.readString()
        assembly.begin(kind, compressed: compressed)
        return try resumeBlock(&reader)
    }

    private func resumeBlock(_ reader: inout ByteReader) throws -> ServerPacket {
        let assembly = self.assembly
        do {
            let block = assembly.compressed ? try compressedBlock(&reader) : try uncompressedBlock(&reader)
            let kind = assembly.kind!
            assembly.reset()
            switch kind {
            case .data: return .data(block)
            case .totals: return .totals(block)
            case .extremes: return .extremes(block)
            case .log: return .log(block)
            case .profileEvents: return .profileEvents(block)
            }
        } catch let need as NeedMoreData {
            throw need
        } catch {
            assembly.reset()
            throw error
        }
    }

    /// Columns are decoded one by one as their bytes arrive and kept; a fixed-width column that is
    /// cut is filled from each later input as it comes (``DirectColumnFill``), so its bytes are
    /// copied once, straight from the socket's chunks into its array. A cut column of another
    /// type is walked until complete (cheaper than decoding) and then decoded.
    private func uncompressedBlock(_ reader: inout ByteReader) throws -> Block {
        let assembly = self.assembly
        let layout = blockLayout
        if assembly.header == nil {
            let headerStart = reader.offset
            do {
                if layout.hasBlockInfo { try NativeFormat.skipBlockInfo(&reader) }
                let columnCount = try reader.readLength()
                let rowCount = try reader.readVarUInt()
                guard rowCount <= UInt64(Int.max) else { throw NativeFormatError("block row count \(rowCount) is impossible") }
                try checkRowCount(Int(rowCount))
                assembly.header = (columnCount, Int(rowCount))
                // Not more up front: the count is the server's word, bounded only by the bytes buffered.
                assembly.columns.reserveCapacity(min(columnCount, 1024))
            } catch let error as WireError {
                throw Self.needMore(error, resumingAt: headerStart, reader)
            }
        }
        let (columnCount, rowCount) = assembly.header!
        while assembly.columns.count < columnCount {
            if let fill = assembly.fill {
                fill.take(from: &reader)
                guard fill.remainingBytes == 0 else {
                    throw NeedMoreData(resumeOffset: reader.offset, minimumBytes: 1, completingBytes: fill.remainingBytes)
                }
                assembly.columns.append(NamedColumn(fill.name, fill.finish()))
                assembly.fill = nil
                continue
            }
            let columnStart = reader.offset
            let header: (name: String, typeName: String, type: ClickHouseType)
            do { header = try NativeFormat.readColumnHeader(&reader, layout: layout) } catch let error as WireError {
                throw Self.needMore(error, resumingAt: columnStart, reader)
            }
            do {
                if assembly.walkingColumn {
                    var walker = reader
                    try EncodedExtent.skip(&walker, type: header.type, rows: rowCount)
                    assembly.walkingColumn = false
                }
                switch try NativeFormat.readColumnDataOrBeginFill(&reader, name: header.name, type: header.type, rows: rowCount) {
                case let .complete(column):
                    try count(reader.offset - columnStart)
                    assembly.columns.append(NamedColumn(header.name, column))
                case let .filling(fill):
                    try count(reader.offset - columnStart + fill.remainingBytes)
                    assembly.fill = fill
                    // It took all there was.
                    throw NeedMoreData(resumeOffset: reader.offset, minimumBytes: 1, completingBytes: fill.remainingBytes)
                }
            } catch let need as NeedMoreData {
                throw need
            } catch {
                let error = NativeFormat.columnError(error, name: header.name, typeName: header.typeName)
                guard let truncation = error as? NativeFormatError, truncation.isTruncation else { throw error }
                assembly.walkingColumn = true
                throw NeedMoreData(resumeOffset: columnStart, minimumBytes: reader.base.count - columnStart + 1)
            }
        }
        return Block(columns: assembly.columns, rowCount: rowCount)
    }

    /// A block is one or more frames and always ends on a frame boundary. Each frame is taken
    /// (decompressed and kept) as soon as it is all here; completeness is found by walking the
    /// decompressed columns, resumed at the column the last frame cut, so a block of n frames costs
    /// n decompressions and about one walk.
    private func compressedBlock(_ reader: inout ByteReader) throws -> Block {
        let assembly = self.assembly
        let layout = blockLayout
        while true {
            let frameStart = reader.offset
            do {
                try CompressedFrame.read(&reader, appendingTo: assembly.decompressed,
                                         maximumUncompressedBytes: maximumPacketBytes - assembly.decompressed.count)
            } catch CompressedFrameError.exceedsLimit {
                throw tooLarge
            } catch let error as CompressedFrameError {
                throw ClickHouseProtocolError("\(error)")
            } catch let error as WireError {
                throw Self.needMore(error, resumingAt: frameStart, reader)
            }
            if assembly.walking {
                // Checked after every frame: the bytes after the block's last frame are the next
                // packet, not a frame.
                let complete = try assembly.decompressed.withUnsafeBytes { raw -> Bool in
                    var walker = ByteReader(raw, offset: assembly.scan.end)
                    return try NativeFormat.scanEncodedBlock(&walker, blockStart: 0, layout: layout, scan: &assembly.scan)
                }
                guard complete else { continue }
            }
            let outcome: (Block, Bool)? = try assembly.decompressed.withUnsafeBytes { raw in
                var blockReader = ByteReader(raw)
                do {
                    let block = try NativeFormat.readBlock(&blockReader, layout: layout)
                    return (block, blockReader.isAtEnd)
                } catch let error as NativeFormatError where error.isTruncation && !assembly.walking {
                    assembly.walking = true  // more frames to come: a walk decides from now on
                    return nil
                }
            }
            if let (block, consumedAll) = outcome {
                guard consumedAll else { throw ClickHouseProtocolError("a compressed block did not end on a frame boundary") }
                try checkRowCount(block.rowCount)
                return block
            }
        }
    }

    /// What to wait for after `error`: at least one byte more than there is (a length that does
    /// not fit what is left can be short of the bytes its read needs).
    fileprivate static func needMore(_ error: WireError, resumingAt offset: Int, _ reader: ByteReader) -> any Error {
        guard let end = error.requiredEnd else { return ClickHouseProtocolError("malformed VarUInt in a server packet") }
        return NeedMoreData(resumeOffset: offset, minimumBytes: max(end, reader.base.count + 1) - offset)
    }
}

extension WireError {
    /// How long the input must be for the read that failed to get further; nil when more input
    /// cannot help.
    var requiredEnd: Int? {
        switch self {
        case let .unexpectedEnd(offset, needed, _):
            let (end, overflow) = offset.addingReportingOverflow(needed)
            return overflow ? Int.max : end
        case let .lengthTooLarge(offset, length, _):
            return offset + Int(clamping: min(length, UInt64(Int.max - offset)))
        case .malformedVarUInt:
            return nil
        }
    }
}

/// The block packet being received: its kind, and for an uncompressed block its header, the
/// columns decoded so far and the column being filled; for a compressed one its frames
/// decompressed so far and the walk of their columns.
final class BlockAssembly: @unchecked Sendable {
    // @unchecked: used by one connection's decoding at a time (the connection is an actor).
    enum Kind { case data, totals, extremes, log, profileEvents }

    private(set) var kind: Kind?
    private(set) var compressed = false
    var header: (columnCount: Int, rowCount: Int)?
    var columns: [NamedColumn] = []
    /// Bytes the uncompressed block's columns took so far (a column being filled counted whole).
    var receivedBytes = 0
    var fill: (any DirectColumnFill)?
    /// The column at the resume point was cut in its data: walk it before decoding it.
    var walkingColumn = false
    /// Reused from block to block (see ``DecompressedBytes``).
    let decompressed = DecompressedBytes()
    var scan = NativeFormat.EncodedBlockScan()
    /// A first attempt decoded the decompressed frames and found them cut: later ones walk them.
    var walking = false

    /// True when no block is being received.
    var isIdle: Bool { kind == nil }

    /// What the block took so far, against the limit; a column being filled was counted whole
    /// when its filling began, so its remaining bytes are not counted again.
    var bytesSoFar: Int { fill != nil ? 0 : receivedBytes + decompressed.count }

    func begin(_ kind: Kind, compressed: Bool) {
        reset()
        self.kind = kind
        self.compressed = compressed
    }

    func reset() {
        kind = nil
        header = nil
        columns = []
        receivedBytes = 0
        fill = nil
        walkingColumn = false
        walking = false
        decompressed.removeAll()
        scan = NativeFormat.EncodedBlockScan()
    }
}

/// The server sent something this client cannot understand; the connection is unusable.
public struct ClickHouseProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    /// The code, when the error is a packet this client does not know (what a port of another
    /// service sends first).
    var unknownPacketCode: UInt64?
    /// A packet over ``ClickHouseConfiguration/maximumPacketBytes``: the same request fails the same
    /// way when sent again.
    var isOverLimit = false
    public init(_ message: String) { self.message = message }
    public var description: String { "protocol error: \(message)" }
    /// Errors are equal by what they say.
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.message == rhs.message }

    static func unknownPacket(_ code: UInt64) -> Self {
        var error = Self("unknown packet \(code) from the server")
        error.unknownPacketCode = code
        return error
    }
}
