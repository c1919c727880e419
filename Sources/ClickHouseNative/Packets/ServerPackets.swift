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

    public mutating func add(_ other: Progress) {
        rows += other.rows
        bytes += other.bytes
        totalRowsToRead += other.totalRowsToRead
        writtenRows += other.writtenRows
        writtenBytes += other.writtenBytes
        elapsedNanoseconds += other.elapsedNanoseconds
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

/// The input ends inside a packet: wait until at least `minimumBufferSize` bytes are buffered.
struct NeedMoreData: Error {
    var minimumBufferSize: Int
}

/// Decodes server packets from a buffer, given the negotiated revision and whether the current
/// query compresses its blocks. Pure: no I/O; a packet that is not complete yet throws ``NeedMoreData``.
struct ServerPacketDecoder: Sendable {
    var revision: UInt64 = ProtocolRevision.client
    var compression = false
    /// What earlier attempts at a block that was not all here yet found (its frames decompressed,
    /// its columns walked), shared by the copies of this decoder a connection makes.
    let partialBlock = PartialBlockProgress()

    var blockLayout: BlockLayout {
        BlockLayout.wire(revision: revision)
    }

    /// Decodes the packet at the reader's position; on ``NeedMoreData`` the reader's position is undefined
    /// and the caller retries from the packet's start once more bytes have arrived.
    func decode(_ reader: inout ByteReader) throws -> ServerPacket {
        do {
            return try decodePacket(&reader)
        } catch let error as WireError {
            switch error {
            case let .unexpectedEnd(offset, needed, _): throw NeedMoreData(minimumBufferSize: offset + needed)
            case let .lengthTooLarge(offset, length, _):
                throw NeedMoreData(minimumBufferSize: offset + Int(clamping: length))
            case .malformedVarUInt: throw ClickHouseProtocolError("malformed VarUInt in a server packet")
            }
        } catch let error as NativeFormatError where error.isTruncation {
            throw NeedMoreData(minimumBufferSize: reader.base.count + 1)
        }
    }

    private func decodePacket(_ reader: inout ByteReader) throws -> ServerPacket {
        let code = try reader.readVarUInt()
        guard let packet = ServerPacketCode(rawValue: code) else {
            throw ClickHouseProtocolError("unknown packet \(code) from the server")
        }
        switch packet {
        case .hello: return .hello(try hello(&reader))
        case .data: return .data(try dataBlock(&reader, compressed: compression))
        case .totals: return .totals(try dataBlock(&reader, compressed: compression))
        case .extremes: return .extremes(try dataBlock(&reader, compressed: compression))
        case .log: return .log(try dataBlock(&reader, compressed: false))
        case .profileEvents: return .profileEvents(try dataBlock(&reader, compressed: false))
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

    private func dataBlock(_ reader: inout ByteReader, compressed: Bool) throws -> Block {
        _ = try reader.readString()  // external table name; empty for results
        guard compressed else { return try uncompressedBlock(&reader) }
        // A block is one or more frames and always ends on a frame boundary. A packet that is not
        // all here yet is attempted again as bytes arrive: the frames decompressed so far are kept
        // (`partialBlock`), and completeness is found by walking the columns (resumed at the
        // column that was cut), so a block of n frames costs n decompressions, not n²/2.
        let progress = partialBlock
        let blockStart = reader.offset
        progress.begin(at: blockStart)
        if progress.frames > 0 { reader.offset = blockStart + progress.nextFrameOffset }
        let layout = blockLayout
        do {
            while true {
                do { try CompressedFrame.read(&reader, appendingTo: progress.decompressed) } catch let error as CompressedFrameError {
                    throw ClickHouseProtocolError("\(error)")
                }
                progress.frames += 1
                progress.nextFrameOffset = reader.offset - blockStart
                if progress.walking {
                    // Checked after every frame: the bytes after the block's last frame are the next
                    // packet, not a frame. The walk resumes at the column the last frame cut.
                    let complete = try progress.decompressed.withUnsafeBytes { raw -> Bool in
                        var walker = ByteReader(raw, offset: progress.scan.end)
                        return try NativeFormat.scanEncodedBlock(&walker, blockStart: 0, layout: layout, scan: &progress.scan)
                    }
                    guard complete else { continue }
                }
                let outcome: (Block, Bool)? = try progress.decompressed.withUnsafeBytes { raw in
                    var blockReader = ByteReader(raw)
                    do {
                        let block = try NativeFormat.readBlock(&blockReader, layout: layout)
                        return (block, blockReader.isAtEnd)
                    } catch let error as NativeFormatError where error.isTruncation && !progress.walking {
                        progress.walking = true  // more frames to come: a walk decides from now on
                        return nil
                    }
                }
                if let (block, consumedAll) = outcome {
                    progress.reset()
                    guard consumedAll else { throw ClickHouseProtocolError("a compressed block did not end on a frame boundary") }
                    return block
                }
            }
        } catch let error as WireError {
            // The next frame is not all here: keep what was decompressed, come back with more bytes.
            throw error
        } catch {
            progress.reset()
            throw error
        }
    }
}

extension ServerPacketDecoder {
    /// The first attempt decodes (most blocks arrive whole). When the block is cut, later attempts
    /// walk its columns, resumed at the column that was cut, and decode it once it is all here,
    /// instead of decoding it from the start again on every chunk.
    fileprivate func uncompressedBlock(_ reader: inout ByteReader) throws -> Block {
        let progress = partialBlock
        let blockStart = reader.offset
        let layout = blockLayout
        progress.begin(at: blockStart)
        if !progress.walking {
            do {
                return try NativeFormat.readBlock(&reader, layout: layout)
            } catch let error as NativeFormatError where error.isTruncation {
                progress.walking = true
                throw error
            }
        }
        var walker = reader
        walker.offset = blockStart + progress.scan.end
        let complete: Bool
        do {
            complete = try NativeFormat.scanEncodedBlock(&walker, blockStart: blockStart, layout: layout, scan: &progress.scan)
        } catch {
            progress.reset()
            throw error
        }
        guard complete else { throw NativeFormatError("block not complete yet", isTruncation: true) }
        progress.reset()
        return try NativeFormat.readBlock(&reader, layout: layout)
    }
}

/// A block being received: for a compressed one its frames decompressed so far, and the walk of
/// its columns.
final class PartialBlockProgress: @unchecked Sendable {
    // @unchecked: used by one connection's decoding at a time (the connection is an actor).
    var frames = 0
    /// After the last decompressed frame, from the start of the block's first frame.
    var nextFrameOffset = 0
    /// Reused from block to block (see ``DecompressedBytes``).
    let decompressed = DecompressedBytes()
    var scan = NativeFormat.EncodedBlockScan()
    /// A first attempt decoded the block and found it cut: later ones walk it until it is complete.
    var walking = false
    /// Where the block starts in the buffer being decoded: state for a block elsewhere is stale.
    var blockStart = -1

    /// Keeps the state when it belongs to the block at `offset`, starts afresh otherwise.
    func begin(at offset: Int) {
        if offset != blockStart { reset() }
        blockStart = offset
    }

    /// The buffer dropped its first `count` bytes (which hold no part of this block).
    func bufferDropped(_ count: Int) {
        if blockStart >= 0 { blockStart -= count }
    }

    func reset() {
        blockStart = -1
        frames = 0
        walking = false
        nextFrameOffset = 0
        decompressed.removeAll()
        scan = NativeFormat.EncodedBlockScan()
    }
}

/// The server sent something this client cannot understand; the connection is unusable.
public struct ClickHouseProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "protocol error: \(message)" }
}
