/// Entry point for fuzzing the server-packet decoder from outside the module.
public enum ServerPacketFuzzing {
    /// Decodes packets from `bytes` until the input ends, needs more data or fails; returns how many
    /// packets decoded. Never traps on any input (that is what the fuzzer checks).
    @discardableResult
    public static func decodeAll(_ bytes: UnsafeRawBufferPointer, revision: UInt64, compression: Bool) -> Int {
        let decoder = ServerPacketDecoder(revision: revision, compression: compression)
        var reader = ByteReader(bytes)
        var count = 0
        while !reader.isAtEnd {
            do {
                _ = try decoder.decode(&reader)
                count += 1
            } catch {
                break
            }
        }
        return count
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
