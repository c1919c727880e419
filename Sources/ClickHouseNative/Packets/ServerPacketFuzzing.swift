/// Entry point for fuzzing the server-packet decoder from outside the module.
public enum ServerPacketFuzzing {
    /// Decodes packets from `bytes` until the input ends, needs more data or fails; returns how many
    /// packets decoded. Never traps on any input (that is what the fuzzer checks).
    @discardableResult
    public static func decodeAll(_ bytes: UnsafeRawBufferPointer, revision: UInt64, compression: Bool) -> Int {
        packetNames(bytes, revision: revision, compression: compression).count
    }

    /// Decodes `bytes` as the connection receives them, `piece` bytes arriving at a time
    /// (``PiecewiseDecoding``). Traps when that gives other packets than decoding the whole input
    /// at once (``decodeAll(_:revision:compression:)``), or when the decoder asks to wait for bytes
    /// it already has. Returns how many packets decoded.
    @discardableResult
    public static func decodeInPieces(_ bytes: UnsafeRawBufferPointer, piece: Int, revision: UInt64, compression: Bool) -> Int {
        let whole = packetNames(bytes, revision: revision, compression: compression)
        let decoder = ServerPacketDecoder(revision: revision, compression: compression)
        let run = PiecewiseDecoding(bytes, arrivals: PiecewiseDecoding.pieces(of: piece, count: bytes.count), decoder: decoder)
        for wait in run.waits {
            precondition(wait.need.minimumBytes > wait.had, "asked to wait for bytes it already had: \(wait)")
        }
        let names = run.packets.map(\.name)
        precondition(names == whole, "in pieces of \(piece): \(names), at once: \(whole)")
        return names.count
    }

    /// The names of the packets in `bytes`, decoded at once, up to the first that fails or is cut.
    static func packetNames(_ bytes: UnsafeRawBufferPointer, revision: UInt64, compression: Bool) -> [String] {
        let decoder = ServerPacketDecoder(revision: revision, compression: compression)
        var reader = ByteReader(bytes)
        var names: [String] = []
        while !reader.isAtEnd {
            guard let packet = try? decoder.decode(&reader) else { break }
            names.append(packet.name)
        }
        return names
    }

    /// Runs the LZ4 block decoder on `bytes` after a 2-byte output size (frames reach it only behind
    /// a checksum, so the packet decoder alone would rarely feed it damaged blocks). The output is
    /// allocated with exactly the slack the decoder asks for, so an address sanitizer sees any
    /// write past it. Returns whether the block decoded.
    @discardableResult
    public static func decodeLZ4(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= 2 else { return false }
        let size = Int(bytes.load(as: UInt16.self).littleEndian) * 4
        return (try? LZ4Block.decompress(UnsafeRawBufferPointer(rebasing: bytes[2...]), uncompressedSize: size)) != nil
    }
}

/// How a decoder fares on input that arrives in pieces, as from a socket: after each arrival it
/// decodes every packet it can, and a wait (``NeedMoreData``) resumes at the offset it names once
/// the next piece is in. The fuzz target and the tests of resumption share this one feed loop.
struct PiecewiseDecoding {
    struct Wait: CustomStringConvertible {
        var need: NeedMoreData
        /// Bytes the decoder had from where it resumes, and bytes the whole input has from there.
        var had: Int
        var left: Int
        var description: String { "\(need) with \(had) bytes in hand, \(left) to come in all" }
    }

    var packets: [ServerPacket] = []
    var waits: [Wait] = []
    /// What ended the input early: a decoding error, or a wait when every byte was in.
    var failure: (any Error)?

    /// Arrivals of `piece` bytes at a time (the last one shorter), as ends of the input so far.
    static func pieces(of piece: Int, count: Int) -> [Int] {
        Array(stride(from: max(piece, 1), to: count, by: max(piece, 1))) + [count]
    }

    /// `arrivals`: increasing ends of the input received so far; the last should be `bytes.count`.
    init(_ bytes: UnsafeRawBufferPointer, arrivals: [Int], decoder: ServerPacketDecoder) {
        var start = 0
        for end in arrivals.map({ min($0, bytes.count) }) {
            while start < end {
                var reader = ByteReader(UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
                do {
                    packets.append(try decoder.decode(&reader))
                    start += reader.offset
                } catch let need as NeedMoreData {
                    start += need.resumeOffset
                    waits.append(Wait(need: need, had: end - start, left: bytes.count - start))
                    if end == bytes.count { failure = need; return }
                    break
                } catch {
                    failure = error
                    return
                }
            }
        }
    }
}
