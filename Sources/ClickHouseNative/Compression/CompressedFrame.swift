/// Network compression methods of the native protocol.
public enum CompressionMethod: String, Sendable, CaseIterable {
    case none, lz4, zstd

    /// The method byte in a frame header.
    var methodByte: UInt8 {
        switch self {
        case .none: return 0x02
        case .lz4: return 0x82
        case .zstd: return 0x90
        }
    }
}

/// Errors of compressed frames: each names what was wrong, e.g. the checksum.
public enum CompressedFrameError: Error, Equatable, Sendable, CustomStringConvertible {
    case checksumMismatch(expected: String, actual: String)
    case unknownMethod(UInt8)
    case invalidSize(compressed: UInt32, uncompressed: UInt32)
    case decompression(String)
    /// The frame would decompress past the caller's limit (its size as the frame states it).
    case exceedsLimit(uncompressed: UInt32)

    public var description: String {
        switch self {
        case let .checksumMismatch(expected, actual):
            return "compressed frame checksum (CityHash128) mismatch: frame says \(expected), data hashes to \(actual)"
        case let .unknownMethod(byte):
            return "unknown compression method byte 0x\(String(byte, radix: 16))"
        case let .invalidSize(compressed, uncompressed):
            return "invalid compressed frame sizes (compressed \(compressed), uncompressed \(uncompressed))"
        case let .decompression(message):
            return "cannot decompress frame: \(message)"
        case let .exceedsLimit(uncompressed):
            return "a compressed frame of \(uncompressed) bytes uncompressed is over the limit"
        }
    }
}

/// ClickHouse's compressed frames: `checksum(16) | method(1) | compressed size(4) | uncompressed size(4) | body`,
/// where the checksum is CityHash128 v1.0.2 of everything after it and the compressed size counts
/// the 9 header bytes.
public enum CompressedFrame {
    public static let headerSize = 9
    public static let checksumSize = 16
    /// Data per frame when writing: ClickHouse flushes its compressing buffer every 1 MiB.
    public static let maximumUncompressedChunk = 1 << 20
    /// Reader limit for one frame (as the server's).
    public static let maximumCompressedSize = 0x4000_0000

    /// Appends `data` as one or more frames of at most 1 MiB of uncompressed data each.
    public static func write(_ data: UnsafeRawBufferPointer, method: CompressionMethod, zstdLevel: Int32 = 1, to writer: inout ByteWriter) throws {
        var start = 0
        repeat {
            let end = min(data.count, start + maximumUncompressedChunk)
            let chunk = UnsafeRawBufferPointer(rebasing: data[start..<end])
            // Written in place: the checksum and the compressed size are patched in after the body.
            let frameStart = writer.count
            writer.writeInteger(UInt64(0))
            writer.writeInteger(UInt64(0))
            writer.writeUInt8(method.methodByte)
            let sizeOffset = writer.count
            writer.writeInteger(UInt32(0))
            writer.writeInteger(UInt32(chunk.count))
            switch method {
            case .none: writer.writeBytes(chunk)
            case .lz4: try writer.writeInPlace(maximumCount: try LZ4Block.bound(chunk.count)) { try LZ4Block.compress(chunk, into: $0) }
            case .zstd:
                try writer.writeInPlace(maximumCount: ZSTDBlock.bound(chunk.count)) { try ZSTDBlock.compress(chunk, into: $0, level: zstdLevel) }
            }
            writer.patch(UInt32(writer.count - frameStart - checksumSize), at: sizeOffset)
            let checksum = writer.bytes.withUnsafeBytes { CityHash128.hash(UnsafeRawBufferPointer(rebasing: $0[(frameStart + checksumSize)...])) }
            writer.patch(checksum.first, at: frameStart)
            writer.patch(checksum.second, at: frameStart + 8)
            start = end
        } while start < data.count
    }

    /// Reads one frame and returns its uncompressed data; throws ``WireError`` when the frame is
    /// not complete yet, ``CompressedFrameError`` when it is corrupt.
    public static func read(_ reader: inout ByteReader) throws -> [UInt8] {
        let output = DecompressedBytes()
        try read(&reader, appendingTo: output)
        return output.withUnsafeBytes { Array($0) }
    }

    /// Reads one frame and appends its uncompressed data to `output`, decompressing in place.
    /// `maximumUncompressedBytes`: a frame stating more is refused before anything is allocated.
    static func read(_ reader: inout ByteReader, appendingTo output: DecompressedBytes, maximumUncompressedBytes: Int = maximumCompressedSize) throws {
        let start = reader.offset
        let first = try reader.readInteger(as: UInt64.self)
        let second = try reader.readInteger(as: UInt64.self)
        let method = try reader.readUInt8()
        let compressedSize = try reader.readInteger(as: UInt32.self)
        let uncompressedSize = try reader.readInteger(as: UInt32.self)
        guard compressedSize >= UInt32(headerSize), Int(compressedSize) <= maximumCompressedSize,
              Int(uncompressedSize) <= maximumCompressedSize else {
            throw CompressedFrameError.invalidSize(compressed: compressedSize, uncompressed: uncompressedSize)
        }
        guard Int(uncompressedSize) <= maximumUncompressedBytes else { throw CompressedFrameError.exceedsLimit(uncompressed: uncompressedSize) }
        reader.offset = start + checksumSize
        let framed = try reader.readBytes(count: Int(compressedSize))
        let actual = CityHash128.hash(framed)
        guard actual.first == first, actual.second == second else {
            throw CompressedFrameError.checksumMismatch(expected: hex(first, second), actual: hex(actual.first, actual.second))
        }
        let body = UnsafeRawBufferPointer(rebasing: framed[headerSize...])
        let size = Int(uncompressedSize)
        do {
            switch method {
            case CompressionMethod.none.methodByte:
                guard body.count == size else {
                    throw CompressedFrameError.invalidSize(compressed: compressedSize, uncompressed: uncompressedSize)
                }
                output.append(body)
            case CompressionMethod.lz4.methodByte:
                try LZ4Decoder.decode(body, into: output.reserveTail(size + LZ4Decoder.outputSlack), count: size)
                output.commitTail(size)
            case CompressionMethod.zstd.methodByte:
                try ZSTDBlock.decompress(body, into: UnsafeMutableRawBufferPointer(start: output.reserveTail(size), count: size))
                output.commitTail(size)
            default:
                throw CompressedFrameError.unknownMethod(method)
            }
        } catch let error as CompressionError {
            throw CompressedFrameError.decompression(error.description)
        }
    }

    static func hex(_ first: UInt64, _ second: UInt64) -> String {
        var writer = ByteWriter()
        writer.writeInteger(first)
        writer.writeInteger(second)
        return writer.bytes.map { byte in
            let digits = String(byte, radix: 16)
            return byte < 16 ? "0" + digits : digits
        }.joined()
    }
}

/// Growable bytes in memory of their own: a decompressor writes straight after what is there (LZ4
/// with its slack past the end), and a buffer reused for every block of a result keeps its pages
/// instead of allocating and faulting in fresh ones per block.
final class DecompressedBytes: @unchecked Sendable {
    // @unchecked: owned by one connection's decoding at a time, like PartialBlockProgress.
    private var storage: UnsafeMutableRawPointer?
    private(set) var count = 0
    private var capacity = 0
    /// Kept across `removeAll()` up to this size; a buffer grown by one huge block is released.
    static let retainedCapacity = 8 << 20

    init() {}
    deinit { storage?.deallocate() }

    /// Room for `count` more bytes after the current end; ``commitTail(_:)`` says how many were written.
    func reserveTail(_ extra: Int) -> UnsafeMutableRawPointer {
        let needed = count + extra
        // Also when nothing is asked for but nothing is allocated yet: an empty ZSTD frame (size 0)
        // on a fresh buffer must still get a valid pointer.
        if needed > capacity || storage == nil {
            let newCapacity = max(needed, capacity * 2, 4096)
            let grown = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
            if let storage {
                grown.copyMemory(from: storage, byteCount: count)
                storage.deallocate()
            }
            storage = grown
            capacity = newCapacity
        }
        return storage! + count
    }

    func commitTail(_ written: Int) {
        precondition(written >= 0 && count + written <= capacity, "committed more than was reserved")
        count += written
    }

    func append(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        reserveTail(bytes.count).copyMemory(from: base, byteCount: bytes.count)
        commitTail(bytes.count)
    }

    func removeAll() {
        count = 0
        if capacity > Self.retainedCapacity {
            storage?.deallocate()
            storage = nil
            capacity = 0
        }
    }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: storage, count: count))
    }
}
