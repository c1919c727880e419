import HTTPTypes
import Testing
@testable import EventPipeline

/// `Content-Encoding` of write bodies. The HTTP behaviour (both write paths, the order of the
/// checks, the answers' headers) is tested live in Tests/api/test_content_encoding.py; these cover
/// the decoder's edges.
struct ContentCodingTests {
    static func gzip(_ bytes: [UInt8], level: Int32 = 6) -> [UInt8] { Gzip.compress(bytes, level: level) }

    static func coding(_ values: [String]) throws(APIError) -> ContentCoding {
        var headers = HTTPFields()
        for value in values { headers.append(HTTPField(name: .contentEncoding, value: value)) }
        return try ContentCoding(headers)
    }

    @Test func headerValues() throws {
        #expect(try Self.coding([]) == .identity)
        #expect(try Self.coding(["identity"]) == .identity)
        #expect(try Self.coding(["Identity, "]) == .identity)
        #expect(try Self.coding(["gzip"]) == .gzip)
        #expect(try Self.coding([" GZip "]) == .gzip)
        #expect(try Self.coding(["x-gzip"]) == .gzip)
        #expect(try Self.coding(["identity", "gzip"]) == .gzip)
        for refused in [["br"], ["deflate"], ["gzip", "gzip"], ["gzip, br"], ["compress"]] {
            do {
                _ = try Self.coding(refused)
                Issue.record("\(refused) was accepted")
            } catch {
                #expect(error.status == .unsupportedMediaType)
                #expect(error.message == "unsupported Content-Encoding: \(refused.joined(separator: ", ")) (this server accepts gzip, or none)")
                #expect(error.headers[.acceptEncoding] == "gzip")
            }
        }
    }

    /// Output over several of the decoder's 64 KiB chunks, and the limit to the byte.
    @Test func largeBodiesAndTheExactLimit() throws {
        var json: [UInt8] = Array(#"{"input":""#.utf8)
        var state: UInt32 = 1
        while json.count < 300_000 {
            state = state &* 1_103_515_245 &+ 12345
            json.append(UInt8(ascii: "a") + UInt8(truncatingIfNeeded: (state >> 16) % 26))
        }
        json += Array(#""}"#.utf8)
        let compressed = Self.gzip(json)
        #expect(try Gzip.decompress(compressed, limit: json.count) == json)
        #expect(throws: APIError.self) { try Gzip.decompress(compressed, limit: json.count - 1) }
        do {
            _ = try Gzip.decompress(compressed, limit: json.count - 1)
        } catch {
            #expect(error.status == .contentTooLarge)
            #expect(error.message == "request body is larger than \(json.count - 1) bytes once decompressed")
            #expect(error.headers[.connection] == nil)  // the body was read in full: the connection goes on
        }
        // Stored without compression (level 0) too: the decoder does not depend on the ratio.
        #expect(try Gzip.decompress(Self.gzip(json, level: 0), limit: json.count) == json)
    }

    @Test func membersPaddingAndEmptyBodies() throws {
        let two = Self.gzip(Array("{\"a\":".utf8)) + Self.gzip(Array("1}".utf8)) + [0, 0, 0]
        #expect(try Gzip.decompress(two, limit: 100) == Array("{\"a\":1}".utf8))
        #expect(try Gzip.decompress(Self.gzip([]), limit: 100) == [])
        // An empty body is not inflated: the JSON parser reports it as empty.
        guard case let .bytes(empty)? = try ContentCoding.gzip.decode(.bytes([]), limit: 100) else {
            Issue.record("an empty body became something else")
            return
        }
        #expect(empty.isEmpty)
    }

    @Test(arguments: [
        ("not gzip", Array("{}".utf8), "invalid gzip body: incorrect header check"),
        ("ends early", Array(ContentCodingTests.gzip(Array("{\"a\":1}".utf8)).prefix(12)), "invalid gzip body: it ends early"),
        ("trailing bytes", ContentCodingTests.gzip(Array("{}".utf8)) + Array("xy".utf8), "invalid gzip body: 2 bytes after its end"),
        ("bad checksum", Array(ContentCodingTests.gzip(Array("{}".utf8)).dropLast(8)) + [0, 0, 0, 0, 2, 0, 0, 0],
         "invalid gzip body: incorrect data check"),
    ])
    func invalidBodies(name: String, body: [UInt8], message: String) {
        do {
            _ = try Gzip.decompress(body, limit: 1000)
            Issue.record("\(name): accepted")
        } catch {
            #expect(error.status == .badRequest, "\(name)")
            #expect(error.message == message, "\(name)")
        }
    }
}
