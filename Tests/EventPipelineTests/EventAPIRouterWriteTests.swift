import ClickHouseNative
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing
@testable import EventPipeline

/// The router's path of the single-event writes: event-api serves them through
/// ``FastWriteHandler`` (tested live in Tests/api), so these call ``EventAPI`` as a plain
/// responder, as any other embedding of it would, with a sink that records what it was given.
struct EventAPIRouterWriteTests {
    final class RecordingSink: EventSink {
        let sent = Mutex<[EventEnvelope]>([])
        func send(_ envelope: EventEnvelope) async throws { sent.withLock { $0.append(envelope) } }
        func send(_ envelope: EventEnvelope, completion: @escaping @Sendable ((any Error)?) -> Void) {
            sent.withLock { $0.append(envelope) }
            completion(nil)
        }
        func sendAll(_ envelopes: [EventEnvelope]) async -> [(any Error)?] {
            sent.withLock { $0.append(contentsOf: envelopes) }
            return envelopes.map { _ in nil }
        }
        var unavailableReason: String? { nil }
        func checkReachable() async throws {}
    }

    static func application(_ sink: RecordingSink, keys: [String] = [], maximumBodyBytes: Int = 1 << 20) -> some ApplicationProtocol {
        // Writes never reach ClickHouse: the client is only constructed (it connects lazily).
        let repository = EventRepository(client: ClickHouseClient(hosts: [ClickHouseConfiguration(host: "127.0.0.1", port: 9000)]),
                                         database: "unused")
        let api = EventAPI(sink: sink, repository: repository, metrics: APIMetrics(),
                           options: .init(maximumBodyBytes: maximumBodyBytes, apiKeys: keys), openAPIDocument: [])
        return Application(responder: api)
    }

    static let event = Array(#"{"conversation_id":"c-gzip","event_name":"routed","input":"é é","timestamp":"2026-12-07T10:00:00Z"}"#.utf8)

    @Test func gzipBodiesOnTheRoutersWrites() async throws {
        let sink = RecordingSink()
        try await Self.application(sink).test(.router) { client in
            let created = try await client.execute(uri: "/event/", method: .post, headers: [.contentEncoding: "gzip"],
                                                   body: ByteBuffer(bytes: Gzip.compress(Self.event)))
            #expect(created.status == .accepted)
            let id = UUID()
            let updated = try await client.execute(uri: "/event/\(id.lowercasedString)", method: .put, headers: [.contentEncoding: "x-gzip"],
                                                   body: ByteBuffer(bytes: Gzip.compress(Array(#"{"output":"zipped"}"#.utf8))))
            #expect(updated.status == .accepted)
            let batch = try await client.execute(uri: "/events/batch", method: .post, headers: [.contentEncoding: "gzip"],
                                                 body: ByteBuffer(bytes: Gzip.compress(Array(#"{"events":["#.utf8) + Self.event + Array("]}".utf8))))
            #expect(batch.status.code == 207)
        }
        let sent = sink.sent.withLock { $0 }
        #expect(sent.count == 3)
        guard sent.count == 3, case let .create(fields, _) = sent[0].operation, case let .update(patch) = sent[1].operation,
              case let .create(batchFields, _) = sent[2].operation else { return }
        #expect((fields.conversationID, fields.eventName, fields.input) == ("c-gzip", "routed", "é é"))
        #expect(patch.output == "zipped")
        #expect(batchFields == fields)
    }

    @Test func refusalsOnTheRoutersWrites() async throws {
        let sink = RecordingSink()
        try await Self.application(sink, keys: ["k"], maximumBodyBytes: 4096).test(.router) { client in
            func error(_ response: TestResponse) -> String { String(buffer: response.body) }
            let key: HTTPFields = [.authorization: "Bearer k", .contentEncoding: "br"]
            // The key comes first, then the coding (before the body or the id in the path).
            var response = try await client.execute(uri: "/event/", method: .post, headers: [.contentEncoding: "br"], body: ByteBuffer(string: "{}"))
            #expect(response.status == .unauthorized)
            for uri in ["/event/", "/event/not-a-uuid", "/events/batch"] {
                response = try await client.execute(uri: uri, method: uri == "/event/not-a-uuid" ? .put : .post, headers: key,
                                                    body: ByteBuffer(string: "{}"))
                #expect(response.status == .unsupportedMediaType, "\(uri)")
                #expect(response.headers[.acceptEncoding] == "gzip")
                #expect(error(response) == #"{"error":"unsupported Content-Encoding: br (this server accepts gzip, or none)","field":null}"#)
            }
            let gzip: HTTPFields = [.authorization: "Bearer k", .contentEncoding: "gzip"]
            response = try await client.execute(uri: "/event/", method: .post, headers: gzip, body: ByteBuffer(bytes: Self.event))
            #expect(response.status == .badRequest)
            #expect(error(response) == #"{"error":"invalid gzip body: incorrect header check","field":null}"#)
            let inflated = Array(#"{"conversation_id":"c","event_name":"e","input":""#.utf8) + [UInt8](repeating: 120, count: 5000) + Array(#""}"#.utf8)
            response = try await client.execute(uri: "/event/", method: .post, headers: gzip, body: ByteBuffer(bytes: Gzip.compress(inflated)))
            #expect(response.status == .contentTooLarge)
            #expect(error(response) == #"{"error":"request body is larger than 4096 bytes once decompressed","field":null}"#)
            #expect(response.headers[.connection] == nil)
        }
        #expect(sink.sent.withLock { $0.isEmpty })
    }
}
