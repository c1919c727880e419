/// Our LZ4 block decoder. liblz4's `LZ4_decompress_safe` copies every literal run and match
/// exactly, with bounds checks sized to the last byte; on the short sequences typical of columns
/// (a sequential UInt64 column is one literal byte and a 7-byte match per value) that is most of a
/// reading client's CPU. This decoder copies in 8-, 16- and 32-byte words and lets a copy run up to
/// ``outputSlack`` bytes past the end of the output, so the caller's buffer must have that many
/// bytes of spare room. Every read of the input and every match source is checked; a corrupt
/// block is an error, never a read or write outside the two buffers.
enum LZ4Decoder {
    /// Bytes after the output's end that a copy may overwrite.
    static let outputSlack = 32

    /// Decodes the block `input` into exactly `count` bytes at `output`, which must have room for
    /// `count + outputSlack` bytes.
    static func decode(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawPointer, count: Int) throws(CompressionError) {
        guard let inputStart = input.baseAddress, !input.isEmpty else { throw corrupt("the block is empty") }
        var ip = inputStart
        let inputEnd = inputStart + input.count
        var op = output
        let outputEnd = output + count

        while true {
            let token = ip.load(as: UInt8.self)
            ip += 1
            var literals = Int(token >> 4)
            if literals == 15 { literals &+= try extendedLength(&ip, end: inputEnd) }
            guard literals <= inputEnd - ip else { throw corrupt("a literal run of \(literals) bytes passes the end of the block") }
            guard literals <= outputEnd - op else { throw overrun(literals, at: op - output, count: count) }
            let literalSource = ip
            ip += literals
            // The last sequence is literals only: the block ends after them.
            if ip == inputEnd {
                copyLiterals(to: op, from: literalSource, count: literals, end: inputEnd)
                op += literals
                break
            }

            guard inputEnd - ip >= 2 else { throw corrupt("the block ends inside a match offset") }
            let offset = Int(UInt16(littleEndian: ip.loadUnaligned(as: UInt16.self)))
            ip += 2
            var length = Int(token & 15)
            if length == 15 { length &+= try extendedLength(&ip, end: inputEnd) }
            length &+= 4
            let matchStart = op + literals
            guard offset != 0, offset <= matchStart - output else {
                throw corrupt("a match offset of \(offset) points before the start of the output (at byte \(matchStart - output))")
            }
            guard length <= outputEnd - matchStart else { throw overrun(length, at: matchStart - output, count: count) }
            if offset >= 8 && length <= 8 && offset >= literals + length {
                // A short match from before this sequence's literals (a sequential UInt64 column:
                // 1 literal byte, 7 match bytes at offset 8) is loaded before the literals are
                // written. Loaded after, its word would span the literal store and the previous
                // match's store, which the CPU cannot forward from: a stall of about ten cycles
                // per sequence, most of the decoder's time on such a column.
                let word = UnsafeRawPointer(matchStart - offset).loadUnaligned(as: UInt64.self)
                copyLiterals(to: op, from: literalSource, count: literals, end: inputEnd)
                matchStart.storeBytes(of: word, as: UInt64.self)
            } else {
                copyLiterals(to: op, from: literalSource, count: literals, end: inputEnd)
                copyMatch(to: matchStart, offset: offset, length: length)
            }
            op = matchStart + length
            guard ip < inputEnd else { throw corrupt("the block ends after a match; the last sequence must be literals") }
        }
        guard op == outputEnd else { throw CompressionError.sizeMismatch(method: "LZ4", expected: count, actual: op - output) }
    }

    /// Literal runs of up to 16 bytes copy as one 16-byte word when the input has 16 bytes there.
    @inline(__always)
    private static func copyLiterals(to destination: UnsafeMutableRawPointer, from source: UnsafeRawPointer, count: Int, end: UnsafeRawPointer) {
        if count <= 16 && end - source >= 16 {
            copy16(destination, source)
        } else {
            destination.copyMemory(from: source, byteCount: count)
        }
    }

    /// A length nibble of 15 continues in bytes up to and including the first that is not 255.
    @inline(__always)
    private static func extendedLength(_ ip: inout UnsafeRawPointer, end: UnsafeRawPointer) throws(CompressionError) -> Int {
        var total = 0
        while true {
            guard ip < end else { throw corrupt("the block ends inside a length") }
            let byte = ip.load(as: UInt8.self)
            ip += 1
            total &+= Int(byte)
            if byte != 255 { return total }
        }
    }

    /// Copies `length` bytes from `offset` bytes back. Matches may overlap their own output (a
    /// run of one repeated byte has offset 1), so word copies need the source at least a word back.
    @inline(__always)
    private static func copyMatch(to destination: UnsafeMutableRawPointer, offset: Int, length: Int) {
        var op = destination
        let end = destination + length
        var source = UnsafeRawPointer(destination - offset)
        if offset >= 32 {
            repeat { copy16(op, source); copy16(op + 16, source + 16); op += 32; source += 32 } while op < end
        } else if offset >= 16 {
            repeat { copy16(op, source); op += 16; source += 16 } while op < end
        } else if offset >= 8 {
            repeat { copy8(op, source); op += 8; source += 8 } while op < end
        } else {
            // The match repeats its first `offset` bytes, so it also repeats with any multiple of
            // that period. Written bytewise until the distance back reaches a multiple of at least
            // 8, the rest copies in words from the match's start.
            let distance = offset * ((8 + offset - 1) / offset)
            let head = min(length, distance - offset)
            for i in 0..<head { op.storeBytes(of: source.load(fromByteOffset: i, as: UInt8.self), toByteOffset: i, as: UInt8.self) }
            op += head
            while op < end { copy8(op, source); op += 8; source += 8 }
        }
    }

    @inline(__always)
    private static func copy8(_ destination: UnsafeMutableRawPointer, _ source: UnsafeRawPointer) {
        destination.storeBytes(of: source.loadUnaligned(as: UInt64.self), as: UInt64.self)
    }

    @inline(__always)
    private static func copy16(_ destination: UnsafeMutableRawPointer, _ source: UnsafeRawPointer) {
        destination.storeBytes(of: source.loadUnaligned(as: SIMD2<UInt64>.self), as: SIMD2<UInt64>.self)
    }

    private static func corrupt(_ detail: String) -> CompressionError { .corrupt(method: "LZ4", detail: detail) }

    private static func overrun(_ length: Int, at position: Int, count: Int) -> CompressionError {
        corrupt("a copy of \(length) bytes at byte \(position) passes the uncompressed size \(count)")
    }
}
