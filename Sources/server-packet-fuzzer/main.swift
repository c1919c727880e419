// Fuzz target over the server-packet decoder (and so over every column codec, compressed frames
// and the type-name parser) and over the LZ4 block decoder. scripts/fuzz builds it with
// `-sanitize=fuzzer,address -DFUZZING` and it hands control to libFuzzer's driver. Built normally,
// it replays the files given as arguments, so an input the fuzzer found can be rerun as a plain
// program.
import ClickHouseNative
import Foundation

/// Decodes every packet in `bytes` at a few protocol settings; errors are expected, traps are bugs.
func decodeEverything(_ bytes: UnsafeRawBufferPointer) {
    for (revision, compression) in [(UInt64(54412), false), (54460, false), (54460, true)] {
        // At once and in pieces, as from a socket (every resume point of the decoder), the two checked
        // against each other.
        // Pieces of 1/1 to 1/128 of the input (down to single bytes for small inputs), so a large
        // input costs a few times its whole decoding rather than thousands.
        let piece = bytes.isEmpty ? 1 : max(1, bytes.count >> (Int(bytes[bytes.count - 1]) % 8))
        ServerPacketFuzzing.decodeInPieces(bytes, piece: piece, revision: revision, compression: compression)
    }
    ServerPacketFuzzing.decodeLZ4(bytes)
}

#if FUZZING
typealias FuzzCallback = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<CInt>,
                     _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                     _ callback: FuzzCallback) -> CInt

var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
exit(runFuzzerDriver(&argc, &argv) { data, size in
    decodeEverything(UnsafeRawBufferPointer(start: data, count: size))
    return 0
})
#else
for path in CommandLine.arguments.dropFirst() {
    guard let data = FileManager.default.contents(atPath: path) else { continue }
    data.withUnsafeBytes { decodeEverything($0) }
    print("decoded \(path): \(data.count) bytes, no crash")
}
#endif
