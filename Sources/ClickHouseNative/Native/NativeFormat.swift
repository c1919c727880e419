/// A named column of a block.
public struct NamedColumn: Sendable {
    public var name: String
    public var column: any Column

    public init(_ name: String, _ column: any Column) {
        self.name = name
        self.column = column
    }
}

/// A block: columns of equal length, as the Native format and the native protocol carry them.
public struct Block: Sendable {
    public var columns: [NamedColumn]
    /// Rows of the block (needed on its own for blocks without columns).
    public var rowCount: Int

    public init(columns: [NamedColumn], rowCount: Int? = nil) {
        self.columns = columns
        self.rowCount = rowCount ?? columns.first?.column.count ?? 0
    }

    public subscript(name: String) -> (any Column)? {
        columns.first { $0.name == name }?.column
    }
}

/// A block that cannot be decoded or encoded, naming the column.
public struct NativeFormatError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    /// True when the input simply ended too early (more bytes may complete it).
    public var isTruncation: Bool

    public init(_ message: String, isTruncation: Bool = false) {
        self.message = message
        self.isTruncation = isTruncation
    }

    public var description: String { message }
}

/// How blocks are framed: the Native file format has neither BlockInfo nor the per-column custom
/// serialization byte; the TCP protocol adds them depending on the negotiated revision.
public struct BlockLayout: Sendable, Equatable {
    public var hasBlockInfo: Bool
    public var hasCustomSerializationFlag: Bool

    public init(hasBlockInfo: Bool, hasCustomSerializationFlag: Bool) {
        self.hasBlockInfo = hasBlockInfo
        self.hasCustomSerializationFlag = hasCustomSerializationFlag
    }

    /// The `FORMAT Native` file/stream layout.
    public static let nativeFormat = BlockLayout(hasBlockInfo: false, hasCustomSerializationFlag: false)

    /// Data packets of the TCP protocol at a negotiated revision.
    static func wire(revision: UInt64) -> BlockLayout {
        BlockLayout(hasBlockInfo: true, hasCustomSerializationFlag: revision >= ProtocolRevision.withCustomSerialization)
    }
}

/// What a reader makes of a block's column bytes.
public enum BlockDecoding: Sendable, Equatable {
    /// Typed columns with their values.
    case values
    /// ``EncodedColumn``s holding each column's bytes as read, checked but not decoded: for
    /// passing Native input on to an INSERT.
    case encoded
}

/// Reads and writes blocks in ClickHouse's Native encoding.
public enum NativeFormat {
    /// Reads one block (with `decoding: .encoded`, each column's bytes are copied out).
    public static func readBlock(_ reader: inout ByteReader, layout: BlockLayout = .nativeFormat, decoding: BlockDecoding = .values) throws -> Block {
        do {
            if layout.hasBlockInfo { try skipBlockInfo(&reader) }
            let columnCount = try reader.readLength()
            let rowCount = try reader.readVarUInt()
            guard rowCount <= UInt64(Int.max) else { throw NativeFormatError("block row count \(rowCount) is impossible") }
            var columns: [NamedColumn] = []
            columns.reserveCapacity(min(columnCount, 1024))  // (the count is the input's word)
            for _ in 0..<columnCount {
                columns.append(try readColumn(&reader, rows: Int(rowCount), layout: layout, decoding: decoding))
            }
            return Block(columns: columns, rowCount: Int(rowCount))
        } catch let error as NativeFormatError {
            throw error
        } catch let error as WireError {
            throw NativeFormatError("unexpected end of data in the block header: \(error)", isTruncation: true)
        } catch {
            throw NativeFormatError("\(error)")
        }
    }

    static func skipBlockInfo(_ reader: inout ByteReader) throws {
        while true {
            let field = try reader.readVarUInt()
            switch field {
            case 0: return
            case 1: _ = try reader.readUInt8()
            case 2: _ = try reader.readInteger(as: Int32.self)
            case 3:
                let n = try reader.readLength(minimumElementSize: 4)
                try reader.skip(n * 4)
            default: throw NativeFormatError("unknown BlockInfo field \(field)")
            }
        }
    }

    static func readColumn(_ reader: inout ByteReader, rows: Int, layout: BlockLayout, decoding: BlockDecoding = .values) throws -> NamedColumn {
        let (name, typeName, type) = try readColumnHeader(&reader, layout: layout)
        if rows == 0 {
            return NamedColumn(name, try emptyColumn(type))
        }
        do {
            if decoding == .encoded {
                let start = reader.offset
                try EncodedExtent.skip(&reader, type: type, rows: rows)
                let bytes = ArraySlice(UnsafeRawBufferPointer(rebasing: reader.base[start..<reader.offset]))
                return NamedColumn(name, EncodedColumn(type: type, count: rows, bytes: bytes))
            }
            return NamedColumn(name, try readColumnData(&reader, type: type, rows: rows))
        } catch {
            throw columnError(error, name: name, typeName: typeName)
        }
    }

    /// A column's values after its header. Errors are the codec's own (see ``columnError(_:name:typeName:)``).
    static func readColumnData(_ reader: inout ByteReader, type: ClickHouseType, rows: Int) throws -> any Column {
        if rows == 0 { return try emptyColumn(type) }
        return try readColumnData(&reader, codec: try makeCodec(for: type), rows: rows)
    }

    private static func readColumnData(_ reader: inout ByteReader, codec: any ColumnCodec, rows: Int) throws -> any Column {
        let prefix = try codec.readPrefix(&reader)
        return try codec.read(&reader, count: rows, prefix: prefix)
    }

    /// Like ``readColumnData(_:type:rows:)``, except that when the bytes of a fixed-width column
    /// are not all here its array is allocated at full size, takes what is here, and is returned to
    /// take the rest as it arrives.
    static func readColumnDataOrBeginFill(_ reader: inout ByteReader, name: String, type: ClickHouseType,
                                          rows: Int) throws -> ColumnDataRead {
        if rows == 0 { return .complete(try emptyColumn(type)) }
        let codec = try makeCodec(for: type)  // (once per column: the fill check and the read share it)
        if let width = codec.fixedWidth {
            let (bytes, overflow) = rows.multipliedReportingOverflow(by: width)
            if !overflow, bytes > reader.remaining, bytes <= maximumDirectFillBytes,
               let fill = codec.makeDirectFill(name: name, count: rows) {
                fill.take(from: &reader)
                return .filling(fill)
            }
        }
        return .complete(try readColumnData(&reader, codec: codec, rows: rows))
    }

    enum ColumnDataRead {
        case complete(any Column)
        case filling(any DirectColumnFill)
    }

    /// Largest column allocated on the server's word before its bytes are here (a corrupt row
    /// count must not make the client allocate without bound); larger ones wait until complete.
    static let maximumDirectFillBytes = 64 << 20

    /// A column's name and type (and, on the wire, its serialization flag).
    static func readColumnHeader(_ reader: inout ByteReader, layout: BlockLayout) throws -> (name: String, typeName: String, type: ClickHouseType) {
        let name = try reader.readString()
        let typeName = try reader.readString()
        let type: ClickHouseType
        do { type = try ClickHouseType.parse(typeName) } catch {
            throw NativeFormatError("column \(name): \(error.message)")
        }
        if layout.hasCustomSerializationFlag {
            let hasCustom = try reader.readUInt8()
            guard hasCustom == 0 else {
                throw NativeFormatError("column \(name) of type \(typeName) uses a custom (sparse or replicated) serialization, which this client does not request")
            }
        }
        return (name, typeName, type)
    }

    /// A failure inside a column's data, naming the column (and the row, when it ran out).
    static func columnError(_ error: any Error, name: String, typeName: String) -> any Error {
        switch error {
        case let error as ColumnCodecError:
            switch error {
            case let .unexpectedEnd(row):
                return NativeFormatError("unexpected end of data in column \(name) of type \(typeName) at row \(row)", isTruncation: true)
            default:
                return NativeFormatError("column \(name) of type \(typeName): \(error)")
            }
        case let error as WireError:
            return NativeFormatError("unexpected end of data in column \(name) of type \(typeName): \(error)", isTruncation: true)
        default:
            return error
        }
    }

    /// How far the walk of a block whose bytes are still arriving has got (encoded decoding):
    /// its header and the columns walked so far, at offsets from the block's start, so that the
    /// next attempt continues with the column that was cut instead of walking the block again.
    struct EncodedBlockScan {
        var header: (columnCount: Int, rowCount: Int)?
        var columns: [(name: String, type: ClickHouseType, data: Range<Int>)] = []
        /// Just past the last complete column (or the header).
        var end = 0
        /// Bytes there were past `end` when the walk last ran out.
        var availableAtLastAttempt = 0
    }

    /// Walks on from `scan.end` as far as the bytes go; true once the whole block is walked. When
    /// the bytes run out, `scan` keeps the last complete column and the reader's position is moot.
    static func scanEncodedBlock(_ reader: inout ByteReader, blockStart: Int, layout: BlockLayout, scan: inout EncodedBlockScan) throws -> Bool {
        do {
            if scan.header == nil {
                if layout.hasBlockInfo { try skipBlockInfo(&reader) }
                let columnCount = try reader.readLength()
                let rowCount = try reader.readVarUInt()
                guard rowCount <= UInt64(Int.max) else { throw NativeFormatError("block row count \(rowCount) is impossible") }
                scan.header = (columnCount, Int(rowCount))
                scan.end = reader.offset - blockStart
            }
        } catch is WireError {
            return false
        }
        let (columnCount, rowCount) = scan.header!
        while scan.columns.count < columnCount {
            do {
                let (name, typeName, type) = try readColumnHeader(&reader, layout: layout)
                let dataStart = reader.offset
                if rowCount > 0 {
                    do { try EncodedExtent.skip(&reader, type: type, rows: rowCount) } catch { throw columnError(error, name: name, typeName: typeName) }
                }
                scan.columns.append((name, type, (dataStart - blockStart)..<(reader.offset - blockStart)))
                scan.end = reader.offset - blockStart
            } catch let error as NativeFormatError where error.isTruncation {
                return false
            } catch is WireError {
                return false
            }
        }
        return true
    }

    /// An empty column of `type` (header blocks carry types but no data).
    public static func emptyColumn(_ type: ClickHouseType) throws -> any Column {
        let codec = try makeCodec(for: type)
        var reader = ByteReader(UnsafeRawBufferPointer(start: nil, count: 0))
        return try codec.read(&reader, count: 0, prefix: emptyPrefix(type))
    }

    private static func emptyPrefix(_ type: ClickHouseType) -> PrefixState {
        switch type.storageType {
        case let .variant(members): return .variant(mode: 0, members: members.map(emptyPrefix))
        case .dynamic:
            return .dynamic(DynamicStructure(version: DynamicCodec.v2, v1Slot: 0, typeNames: [], memberTypes: [.string], sharedVariantIndex: 0,
                                             memberCodecs: [StringCodec(type: .string)], variantMode: 0, memberPrefixes: [.none]))
        case let .json(parameters):
            // One prefix per typed path, in the path order the codec serializes them in.
            let typed = parameters.typedPathList.sorted { precedesByBytes($0.name ?? "", $1.name ?? "") }.map { emptyPrefix($0.type) }
            return .json(JSONStructure(version: JSONObjectCodec.v2, v1Slot: 0, dynamicPaths: [], typedPrefixes: typed, dynamicStructures: []))
        case let .tuple(elements): return .children(elements.map { emptyPrefix($0.type) })
        case let .map(k, v): return .children([emptyPrefix(k), emptyPrefix(v)])
        case let .array(inner), let .nullable(inner): return emptyPrefix(inner)
        case let .lowCardinality(inner): return .lowCardinality(inner: emptyPrefix(inner))
        default: return .none
        }
    }

    /// Writes one block. Every column must have the block's row count. The bytes of an
    /// ``EncodedColumn`` go through `encodedBytes` (by default appended to `writer`), so a caller
    /// can pass them on without another copy.
    public static func writeBlock(_ block: Block, to writer: inout ByteWriter, layout: BlockLayout = .nativeFormat,
                                  encodedBytes: (inout ByteWriter, ArraySlice<UInt8>) throws -> Void = { $0.writeBytes($1) }) throws {
        if layout.hasBlockInfo {
            writer.writeBytes([0x01, 0x00, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0x00])
        }
        writer.writeVarUInt(block.columns.count)
        writer.writeVarUInt(block.rowCount)
        for named in block.columns {
            let column = named.column
            guard column.count == block.rowCount else {
                throw NativeFormatError("column \(named.name) has \(column.count) rows, the block has \(block.rowCount)")
            }
            writer.writeString(named.name)
            writer.writeString(column.type.name)
            if layout.hasCustomSerializationFlag { writer.writeUInt8(0) }
            guard block.rowCount > 0 else { continue }
            if let encoded = column as? EncodedColumn {
                try encodedBytes(&writer, encoded.bytes)
                continue
            }
            do {
                let codec = try makeCodec(for: column.type)
                try codec.writePrefix(column, to: &writer)
                try codec.write(column, to: &writer)
            } catch {
                throw NativeFormatError("cannot encode column \(named.name) of type \(column.type.name): \(error)")
            }
        }
    }

    /// All blocks of a complete Native stream (e.g. a file written by `FORMAT Native`).
    public static func decodeBlocks(_ bytes: [UInt8]) throws -> [Block] {
        try bytes.withUnsafeBytes { raw -> [Block] in
            var reader = ByteReader(raw)
            var blocks: [Block] = []
            while !reader.isAtEnd {
                blocks.append(try readBlock(&reader))
            }
            return blocks
        }
    }

    /// The Native bytes of `blocks`.
    public static func encodeBlocks(_ blocks: [Block]) throws -> [UInt8] {
        var writer = ByteWriter()
        for block in blocks { try writeBlock(block, to: &writer) }
        return writer.bytes
    }
}

/// Decodes blocks from bytes that arrive in pieces (a file read in chunks, a pipe, a socket): feed
/// bytes with ``append(_:)`` and take complete blocks with ``nextBlock()``.
public struct NativeStreamDecoder: Sendable {
    /// Bytes `start..<end` are received and not yet decoded; the rest is room for more, so a file
    /// or pipe is read straight into it (``append(readingUpTo:_:)``).
    private var buffer: [UInt8] = []
    private var start = 0
    private var end = 0
    /// Buffered bytes at the last attempt that found the block incomplete: the next attempt waits
    /// until the buffer has doubled, so a large block is decoded O(log n) times, not once per chunk.
    private var lastIncompleteSize = 0
    public let layout: BlockLayout
    public let decoding: BlockDecoding
    /// The walk of the block being received, in encoded decoding.
    private var scan: NativeFormat.EncodedBlockScan?
    /// Largest block accepted; a block that claims more is an error rather than unbounded buffering.
    public let maximumBlockBytes: Int

    public init(layout: BlockLayout = .nativeFormat, decoding: BlockDecoding = .values, maximumBlockBytes: Int = 1 << 30) {
        self.layout = layout
        self.decoding = decoding
        self.maximumBlockBytes = maximumBlockBytes
    }

    public mutating func append<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        let count = bytes.count
        _ = append(readingUpTo: count) { room in
            room.copyBytes(from: bytes)
            return count
        }
    }

    /// Lets `read` write up to `maximumCount` bytes straight into the buffer (a `read(2)` of a file
    /// or pipe) and keeps the count it returns, which it also returns.
    public mutating func append(readingUpTo maximumCount: Int, _ read: (UnsafeMutableRawBufferPointer) throws -> Int) rethrows -> Int {
        if start > 0 && start >= (end - start) {
            // What is left is at most what was consumed: moving it to the front is cheap.
            buffer.withUnsafeMutableBytes { raw in
                raw.baseAddress!.copyMemory(from: raw.baseAddress! + start, byteCount: end - start)
            }
            end -= start
            start = 0
        }
        if buffer.count - end < maximumCount {
            buffer.append(contentsOf: repeatElement(0, count: max(maximumCount - (buffer.count - end), buffer.count)))
        }
        let offset = end
        let count = try buffer.withUnsafeMutableBytes { raw in
            try read(UnsafeMutableRawBufferPointer(rebasing: raw[offset..<(offset + maximumCount)]))
        }
        precondition(count >= 0 && count <= maximumCount, "read more than the room given")
        end += count
        return count
    }

    /// Bytes received but not yet decoded.
    public var bufferedByteCount: Int { end - start }

    /// The next complete block, or nil when more bytes are needed. Pass `endOfInput: true` once no
    /// more bytes will come, so the last block is attempted whatever its size.
    public mutating func nextBlock(endOfInput: Bool = false) throws -> Block? { try nextBlock(endOfInput: endOfInput, now: false) }

    /// `now`: try even when the bytes have not doubled since the last attempt (the input went quiet).
    public mutating func nextBlock(endOfInput: Bool, now: Bool) throws -> Block? {
        guard bufferedByteCount > 0 else { return nil }
        if decoding == .encoded { return try nextEncodedBlock(notWaiting: endOfInput || now) }
        if !endOfInput && !now && bufferedByteCount < 2 * lastIncompleteSize { return nil }
        let offset = start
        let layout = self.layout
        let end = self.end
        let result: (Block, Int)? = try buffer.withUnsafeBytes { raw -> (Block, Int)? in
            var reader = ByteReader(UnsafeRawBufferPointer(rebasing: raw[..<end]), offset: offset)
            do {
                let block = try NativeFormat.readBlock(&reader, layout: layout)
                return (block, reader.offset)
            } catch let error as NativeFormatError where error.isTruncation {
                return nil
            }
        }
        guard let (block, end) = result else {
            lastIncompleteSize = bufferedByteCount
            if bufferedByteCount > maximumBlockBytes {
                throw NativeFormatError("a block is larger than the \(maximumBlockBytes)-byte limit (or its lengths are corrupt)")
            }
            return nil
        }
        start = end
        lastIncompleteSize = 0
        return block
    }

    /// Encoded blocks: the walk resumes at the column the last attempt could not finish, and
    /// tries again once the bytes past it have doubled, so each byte is walked about twice at most.
    /// `notWaiting`: attempt even when the bytes have not doubled (the input ended or went quiet).
    private mutating func nextEncodedBlock(notWaiting: Bool) throws -> Block? {
        var scan = self.scan ?? NativeFormat.EncodedBlockScan()
        let blockStart = start
        let available = bufferedByteCount - scan.end
        if !notWaiting && available < 2 * scan.availableAtLastAttempt { return nil }
        let storage = buffer
        let layout = self.layout
        let end = self.end
        let complete = try storage.withUnsafeBytes { raw -> Bool in
            var reader = ByteReader(UnsafeRawBufferPointer(rebasing: raw[..<end]), offset: blockStart + scan.end)
            return try NativeFormat.scanEncodedBlock(&reader, blockStart: blockStart, layout: layout, scan: &scan)
        }
        guard complete, let header = scan.header else {
            scan.availableAtLastAttempt = bufferedByteCount - scan.end
            self.scan = scan
            if bufferedByteCount > maximumBlockBytes {
                throw NativeFormatError("a block is larger than the \(maximumBlockBytes)-byte limit (or its lengths are corrupt)")
            }
            return nil
        }
        self.scan = nil
        start = blockStart + scan.end
        let columns = try scan.columns.map { column -> NamedColumn in
            guard header.rowCount > 0 else { return NamedColumn(column.name, try NativeFormat.emptyColumn(column.type)) }
            let bytes = storage[(blockStart + column.data.lowerBound)..<(blockStart + column.data.upperBound)]
            return NamedColumn(column.name, EncodedColumn(type: column.type, count: header.rowCount, bytes: bytes))
        }
        return Block(columns: columns, rowCount: header.rowCount)
    }

    /// Call at the end of the input: leftover bytes mean the stream was cut inside a block.
    public func finish() throws {
        guard bufferedByteCount == 0 else {
            throw NativeFormatError("the stream ended inside a block (\(bufferedByteCount) bytes left over)", isTruncation: true)
        }
    }
}
