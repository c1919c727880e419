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
}
