import CLZ4
import CZSTD

/// Errors of the raw compression codecs.
public enum CompressionError: Error, Equatable, Sendable, CustomStringConvertible {
    case inputTooLarge(Int)
    case corrupt(method: String, detail: String)
    case sizeMismatch(method: String, expected: Int, actual: Int)

    public var description: String {
        switch self {
        case let .inputTooLarge(size):
            return "cannot compress \(size) bytes in one frame"
        case let .corrupt(method, detail):
            return "\(method) data is corrupt: \(detail)"
        case let .sizeMismatch(method, expected, actual):
            return "\(method) data decompressed to \(actual) bytes, the frame header says \(expected)"
        }
    }
}

/// LZ4 block format (no frame header), as ClickHouse's compression method 0x82 carries it.
public enum LZ4Block {
    /// The largest compressed size of `count` input bytes.
    public static func bound(_ count: Int) throws -> Int {
        guard count <= Int(LZ4_MAX_INPUT_SIZE) else { throw CompressionError.inputTooLarge(count) }
        return Int(LZ4_compressBound(Int32(count)))
    }

    /// Compresses into `output` (at least ``bound(_:)`` bytes) and returns the compressed size.
    public static func compress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        let bound = try bound(input.count)
        precondition(output.count >= bound, "LZ4 output buffer smaller than the bound")
        let size = LZ4_compress_default(
            input.baseAddress?.assumingMemoryBound(to: CChar.self),
            output.baseAddress!.assumingMemoryBound(to: CChar.self),
            Int32(input.count), Int32(bound))
        return Int(max(size, 0))
    }

    public static func compress(_ input: UnsafeRawBufferPointer) throws -> [UInt8] {
        try [UInt8](unsafeUninitializedCapacity: bound(input.count)) { output, written in
            written = try compress(input, into: UnsafeMutableRawBufferPointer(output))
        }
    }

    /// Decompresses into exactly `uncompressedSize` bytes (with ``LZ4Decoder``); anything else is an error.
    public static func decompress(_ input: UnsafeRawBufferPointer, uncompressedSize: Int) throws -> [UInt8] {
        try [UInt8](unsafeUninitializedCapacity: uncompressedSize + LZ4Decoder.outputSlack) { buffer, written in
            written = 0
            try LZ4Decoder.decode(input, into: UnsafeMutableRawPointer(buffer.baseAddress!), count: uncompressedSize)
            written = uncompressedSize
        }
    }

    /// liblz4's `LZ4_decompress_safe`, the reference our decoder is tested and benchmarked against.
    /// Returns nil when liblz4 finds the block corrupt or of another size.
    public static func decompressWithLibLZ4(_ input: UnsafeRawBufferPointer, uncompressedSize: Int) -> [UInt8]? {
        var failed = false
        let output = [UInt8](unsafeUninitializedCapacity: uncompressedSize) { output, written in
            let size = LZ4_decompress_safe(
                input.baseAddress?.assumingMemoryBound(to: CChar.self),
                UnsafeMutableRawPointer(output.baseAddress ?? UnsafeMutablePointer<UInt8>(bitPattern: 1)!)
                    .assumingMemoryBound(to: CChar.self),
                Int32(input.count), Int32(uncompressedSize))
            failed = size != Int32(uncompressedSize)
            written = failed ? 0 : Int(size)
        }
        return failed ? nil : output
    }
}

/// One standard zstd frame, as ClickHouse's compression method 0x90 carries it.
public enum ZSTDBlock {
    /// The largest compressed size of `count` input bytes.
    public static func bound(_ count: Int) -> Int { ZSTD_compressBound(count) }

    /// Compresses into `output` (at least ``bound(_:)`` bytes) and returns the compressed size.
    public static func compress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, level: Int32 = 1) throws -> Int {
        let size = ZSTD_compress(output.baseAddress, output.count, input.baseAddress, input.count, level)
        if ZSTD_isError(size) != 0 { throw CompressionError.corrupt(method: "ZSTD", detail: String(cString: ZSTD_getErrorName(size))) }
        return size
    }

    public static func compress(_ input: UnsafeRawBufferPointer, level: Int32 = 1) throws -> [UInt8] {
        try [UInt8](unsafeUninitializedCapacity: bound(input.count)) { output, written in
            written = try compress(input, into: UnsafeMutableRawBufferPointer(output), level: level)
        }
    }

    /// Decompresses into exactly `output.count` bytes; anything else is an error.
    static func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws(CompressionError) {
        let size = ZSTD_decompress(output.baseAddress, output.count, input.baseAddress, input.count)
        if ZSTD_isError(size) != 0 { throw CompressionError.corrupt(method: "ZSTD", detail: String(cString: ZSTD_getErrorName(size))) }
        if size != output.count { throw CompressionError.sizeMismatch(method: "ZSTD", expected: output.count, actual: size) }
    }

    public static func decompress(_ input: UnsafeRawBufferPointer, uncompressedSize: Int) throws -> [UInt8] {
        try [UInt8](unsafeUninitializedCapacity: uncompressedSize) { output, written in
            written = 0
            try decompress(input, into: UnsafeMutableRawBufferPointer(output))
            written = uncompressedSize
        }
    }
}

extension ZSTDBlock {
    /// Decompresses one whole zstd frame (or several concatenated), whether or not its header records
    /// the content size (the `zstd` tool omits it when compressing a pipe). Output is capped at `maximumSize`.
    public static func decompressFrame(_ input: UnsafeRawBufferPointer, maximumSize: Int = 1 << 30) throws -> [UInt8] {
        let size = ZSTD_getFrameContentSize(input.baseAddress, input.count)
        if size != ZSTD_CONTENTSIZE_ERROR, size != ZSTD_CONTENTSIZE_UNKNOWN, size <= UInt64(maximumSize) {
            return try decompress(input, uncompressedSize: Int(size))
        }
        guard let stream = ZSTD_createDStream() else { throw CompressionError.corrupt(method: "ZSTD", detail: "cannot create a stream") }
        defer { ZSTD_freeDStream(stream) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var inBuffer = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        while true {
            let produced: Int = try chunk.withUnsafeMutableBytes { raw in
                var outBuffer = ZSTD_outBuffer(dst: raw.baseAddress, size: raw.count, pos: 0)
                let result = ZSTD_decompressStream(stream, &outBuffer, &inBuffer)
                if ZSTD_isError(result) != 0 {
                    throw CompressionError.corrupt(method: "ZSTD", detail: String(cString: ZSTD_getErrorName(result)))
                }
                return outBuffer.pos
            }
            output.append(contentsOf: chunk[0..<produced])
            guard output.count <= maximumSize else { throw CompressionError.inputTooLarge(output.count) }
            if inBuffer.pos == inBuffer.size && produced < chunk.count { return output }
        }
    }
}
