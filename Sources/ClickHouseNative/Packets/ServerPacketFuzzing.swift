/// Entry point for fuzzing the server-packet decoder from outside the module.
public enum ServerPacketFuzzing {
    /// Decodes packets from `bytes` until the input ends, needs more data or fails; returns how many
    /// packets decoded. Never traps on any input (that is what the fuzzer checks).
    @discardableResult
    public static func decodeAll(_ bytes: UnsafeRawBufferPointer, revision: UInt64, compression: Bool) -> Int {
        packetNames(bytes, revision: revision, compression: compression).count
    }

    /// Decodes `bytes` as the connection receives them: `piece` bytes at a time, each call given
    /// the input from where the last one said to resume. Traps when that gives other packets than
    /// decoding the whole input at once (``decodeAll(_:revision:compression:)``), or when the
    /// decoder asks to wait for bytes it already has. Returns how many packets decoded.
    @discardableResult
    public static func decodeInPieces(_ bytes: UnsafeRawBufferPointer, piece: Int, revision: UInt64, compression: Bool) -> Int {
        let whole = packetNames(bytes, revision: revision, compression: compression)
        let decoder = ServerPacketDecoder(revision: revision, compression: compression)
        var names: [String] = []
        var start = 0
        var available = 0
        while start < bytes.count {
            available = min(bytes.count, max(available, start) + max(piece, 1))
            var reader = ByteReader(UnsafeRawBufferPointer(rebasing: bytes[start..<available]))
            do {
                names.append(try decoder.decode(&reader).name)
                start += reader.offset
            } catch let need as NeedMoreData {
                start += need.resumeOffset
                precondition(need.minimumBytes > available - start,
                             "asked to wait for bytes it already had: \(need) at \(start) of \(available)")
                if available == bytes.count { break }
            } catch {
                break
            }
        }
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
