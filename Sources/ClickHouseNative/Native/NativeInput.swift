#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a file descriptor (a file, a pipe, standard input) in pieces into one buffer it reuses,
/// so streaming a large input allocates nothing per read.
public final class FileDescriptorReader: @unchecked Sendable {
    // @unchecked: meant for one reader at a time (an iterator); the buffer is private.
    public let fileDescriptor: Int32
    private let chunk: UnsafeMutableRawBufferPointer

    public init(fileDescriptor: Int32, chunkSize: Int = 1 << 20) {
        self.fileDescriptor = fileDescriptor
        chunk = .allocate(byteCount: max(chunkSize, 1), alignment: 16)
    }

    deinit { chunk.deallocate() }

    /// Bytes asked for per read.
    public var chunkSize: Int { chunk.count }

    /// The next piece of input, valid until the next call; empty at the end of the input.
    public func read() throws -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: chunk[..<(try read(into: chunk))])
    }

    /// Whether input is ready within `milliseconds` (also true at its end or on an error, which
    /// the next read reports); false when the source stayed quiet that long.
    public func waitForInput(milliseconds: Int32) -> Bool {
        var descriptor = pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
        while true {
            let ready = poll(&descriptor, 1, milliseconds)
            if ready >= 0 { return ready > 0 }
            if errno != EINTR { return true }
        }
    }

    /// Reads the next piece of input into `destination`; returns its size, 0 at the end of the input.
    public func read(into destination: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            #if canImport(Glibc)
            let count = Glibc.read(fileDescriptor, destination.baseAddress, destination.count)
            #else
            let count = Darwin.read(fileDescriptor, destination.baseAddress, destination.count)
            #endif
            if count >= 0 { return count }
            if errno != EINTR { throw NativeFormatError("cannot read file descriptor \(fileDescriptor): \(String(cString: strerror(errno)))") }
        }
    }
}

/// A decoder fed bytes in pieces that yields blocks as they complete (``NativeStreamDecoder``,
/// ``TextInputDecoder``).
public protocol IncrementalBlockDecoder {
    mutating func append(contentsOf bytes: UnsafeRawBufferPointer)
    /// The next complete block, or nil when more bytes are needed (or, at the end of the input,
    /// when there are no more blocks).
    mutating func nextBlock(endOfInput: Bool) throws -> Block?
    /// As ``nextBlock(endOfInput:)`` when the input has gone quiet: whatever is complete now, even
    /// where the decoder would otherwise wait for more (a Native decoder retries a large block
    /// only once its bytes have doubled; a text decoder fills blocks of many rows).
    mutating func nextBlockNow() throws -> Block?
    /// Throws when the input ended inside a block.
    func finish() throws
    /// Appends the reader's next piece of input; returns its size, 0 at the end of the input.
    mutating func append(from reader: FileDescriptorReader) throws -> Int
}

extension IncrementalBlockDecoder {
    public mutating func nextBlockNow() throws -> Block? { try nextBlock(endOfInput: false) }

    public mutating func append(from reader: FileDescriptorReader) throws -> Int {
        let piece = try reader.read()
        append(contentsOf: piece)
        return piece.count
    }
}

extension NativeStreamDecoder: IncrementalBlockDecoder {
    public mutating func append(contentsOf bytes: UnsafeRawBufferPointer) { append(bytes) }

    public mutating func nextBlockNow() throws -> Block? { try nextBlock(endOfInput: false, now: true) }

    /// Reads straight into the decoder's buffer: no copy between the kernel and the blocks.
    public mutating func append(from reader: FileDescriptorReader) throws -> Int {
        try append(readingUpTo: reader.chunkSize) { try reader.read(into: $0) }
    }
}

extension TextInputDecoder: IncrementalBlockDecoder {
    public mutating func append(contentsOf bytes: UnsafeRawBufferPointer) { append(bytes) }

    public mutating func nextBlockNow() throws -> Block? { try nextBlock(endOfInput: false, now: true) }
}

/// The blocks a decoder makes of what a file descriptor delivers (a file, a pipe, standard
/// input), each yielded as soon as it is complete: memory stays bounded by the largest block, not
/// the input.
public struct FileDescriptorBlocks<Decoder: IncrementalBlockDecoder>: AsyncSequence {
    public typealias Element = Block
    public let fileDescriptor: Int32
    public let decoder: Decoder

    public init(fileDescriptor: Int32, decoder: Decoder) {
        self.fileDescriptor = fileDescriptor
        self.decoder = decoder
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let reader: FileDescriptorReader
        var decoder: Decoder
        var finished = false

        public mutating func next() async throws -> Block? {
            while true {
                try Task.checkCancellation()
                if let block = try decoder.nextBlock(endOfInput: finished) { return block }
                if finished {
                    try decoder.finish()
                    return nil
                }
                // A source that goes quiet (a live producer on a pipe) gets what is complete now:
                // a block whose last bytes came in a small piece waited for the next block (9 s
                // in review), and text rows waited for a block's worth of rows.
                if !reader.waitForInput(milliseconds: Self.quietMilliseconds) {
                    if let block = try decoder.nextBlockNow() { return block }
                    // Then sleeps between looks, not in a read that would block until input
                    // comes: a cancelled INSERT (chnative's Ctrl-C) stops while the source stays
                    // quiet, and a long quiet spell holds none of the concurrency pool's threads.
                    while !reader.waitForInput(milliseconds: 0) { try await Task.sleep(for: Self.quietPollInterval) }
                }
                if try decoder.append(from: reader) == 0 { finished = true }
            }
        }

        /// How long the source must stay quiet: a busy one costs no extra decoding attempts.
        static var quietMilliseconds: Int32 { 50 }
        /// How often a quiet source is looked at again.
        static var quietPollInterval: Duration { .milliseconds(20) }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(reader: FileDescriptorReader(fileDescriptor: fileDescriptor), decoder: decoder)
    }
}

extension FileDescriptorBlocks: Sendable where Decoder: Sendable {}

extension FileDescriptorBlocks where Decoder == NativeStreamDecoder {
    /// A Native stream; by default its columns stay encoded (``BlockDecoding/encoded``), which is
    /// what an INSERT of the stream needs.
    public init(nativeFrom fileDescriptor: Int32, decoding: BlockDecoding = .encoded) {
        self.init(fileDescriptor: fileDescriptor, decoder: NativeStreamDecoder(decoding: decoding))
    }
}
