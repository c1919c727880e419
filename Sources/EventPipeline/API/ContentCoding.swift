import CZlib
import Foundation
import HTTPTypes

/// The content coding of a write's body (`Content-Encoding`): none, or gzip. SDKs compress batches
/// (JSON events shrink five to ten times), and a body sent compressed to a server that ignored the
/// header used to be refused as "malformed JSON", which hid the cause.
///
/// The body limits apply twice: to the bytes as sent (so the early 413 on `Content-Length` holds)
/// and to the JSON once decompressed, which is what the server holds in memory. Inflating stops at
/// the limit, so a small body that would expand without end (a "zip bomb") costs no more than a
/// body of the limit.
enum ContentCoding: Sendable, Equatable {
    case identity
    case gzip

    /// The codings this server reads, for `Accept-Encoding` on a 415 (RFC 9110, 15.5.16).
    static let accepted = "gzip"

    /// The request's coding; a 415 for anything else, including more than one coding.
    init(_ headers: HTTPFields) throws(APIError) {
        // Several header lines are several codings, applied in order: joined as one list.
        let values = headers[values: .contentEncoding]
        let codings = values.flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            .filter { !$0.isEmpty && $0 != "identity" }
        switch codings {
        case []: self = .identity
        case ["gzip"], ["x-gzip"]: self = .gzip
        default:
            var error = APIError(.unsupportedMediaType,
                                 "unsupported Content-Encoding: \(values.joined(separator: ", ")) (this server accepts gzip, or none)")
            error.headers[.acceptEncoding] = Self.accepted
            throw error
        }
    }

    /// The body as the JSON parser must see it; `.tooLarge` stays as it is.
    func decode(_ body: EventAPI.WriteBody?, limit: Int) throws(APIError) -> EventAPI.WriteBody? {
        guard self == .gzip, case let .bytes(bytes)? = body, !bytes.isEmpty else { return body }
        return .bytes(try Gzip.decompress(bytes, limit: limit))
    }
}

/// gzip (RFC 1952) through zlib: decompression with a bound on the output, and compression for
/// clients of the API (`event-bench pipeline --batch N --gzip`, tests).
public enum Gzip {
    /// `input` as one gzip member; `level` 0 (stored) to 9, 6 as gzip(1).
    public static func compress(_ input: [UInt8], level: Int32 = 6) -> [UInt8] {
        var stream = z_stream()
        // 15 + 16: the largest window, with gzip's header and trailer. Fails only without memory.
        precondition(deflateInit2_(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
                                   Int32(MemoryLayout<z_stream>.size)) == Z_OK, "zlib: deflateInit2 failed")
        defer { deflateEnd(&stream) }
        // deflateBound is enough for one deflate(Z_FINISH) call.
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(input.count))))
        var input = input
        let written = input.withUnsafeMutableBufferPointer { inputBuffer in
            output.withUnsafeMutableBufferPointer { outputBuffer in
                stream.next_in = inputBuffer.baseAddress
                stream.avail_in = UInt32(inputBuffer.count)
                stream.next_out = outputBuffer.baseAddress
                stream.avail_out = UInt32(outputBuffer.count)
                precondition(deflate(&stream, Z_FINISH) == Z_STREAM_END, "zlib: deflate did not finish within deflateBound")
                return outputBuffer.count - Int(stream.avail_out)
            }
        }
        output.removeSubrange(written...)
        return output
    }

    /// The bytes of every gzip member in `input`, one after another (a stream may hold several, as
    /// `cat a.gz b.gz` makes); 413 past `limit` bytes of output, 400 for anything that is not gzip
    /// (a zlib stream or raw deflate included: `Content-Encoding: gzip` names the gzip format).
    static func decompress(_ input: [UInt8], limit: Int) throws(APIError) -> [UInt8] {
        var stream = z_stream()
        // 15 + 16: the largest window, gzip header and trailer (not zlib's, not raw deflate).
        guard inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw APIError(.internalServerError, "internal error")
        }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        output.reserveCapacity(min(limit, max(4096, input.count * 4)))
        let chunkSize = 64 << 10
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        var consumed = 0
        while true {
            let (status, read, written, message) = input.withUnsafeBufferPointer { inputBuffer in
                chunk.withUnsafeMutableBufferPointer { chunkBuffer in
                    stream.next_in = UnsafeMutablePointer(mutating: inputBuffer.baseAddress! + consumed)
                    stream.avail_in = UInt32(input.count - consumed)
                    stream.next_out = chunkBuffer.baseAddress!
                    stream.avail_out = UInt32(chunkSize)
                    let status = inflate(&stream, Z_NO_FLUSH)
                    let read = input.count - consumed - Int(stream.avail_in)
                    let message = stream.msg.map { String(cString: $0) }
                    return (status, read, chunkSize - Int(stream.avail_out), message)
                }
            }
            consumed += read
            guard output.count + written <= limit else {
                throw APIError(.contentTooLarge, "request body is larger than \(limit) bytes once decompressed")
            }
            output.append(contentsOf: chunk[..<written])
            switch status {
            case Z_STREAM_END:
                // Another member may follow, after zero bytes of padding or not (as Python's gzip
                // module reads them); anything else after a member is not gzip.
                while consumed < input.count, input[consumed] == 0 { consumed += 1 }
                guard consumed < input.count else { return output }
                guard input[consumed] == 0x1f else {
                    throw APIError(.badRequest, "invalid gzip body: \(input.count - consumed) bytes after its end")
                }
                inflateReset(&stream)
            case Z_OK:
                continue
            case Z_BUF_ERROR where consumed == input.count:
                throw APIError(.badRequest, "invalid gzip body: it ends early")
            default:
                throw APIError(.badRequest, "invalid gzip body: \(message ?? "zlib error \(status)")")
            }
        }
    }
}
