import ClickHouseNative
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Kafka
import Logging
import NIOCore

/// The HTTP API: a small table of routes over thin handlers. Writes are validated, encoded once
/// as Kafka envelopes and answered 202 after the broker's acknowledgement; reads go to ClickHouse
/// through ``EventRepository``. Every error is `{"error": "...", "field": ...}`.
public struct EventAPI: HTTPResponder {
    public typealias Context = BasicRequestContext

    public struct Options: Sendable {
        public var maximumBodyBytes: Int
        public var maximumBatchBytes = 5 << 20
        public var maximumBatchItems = 1000
        public var apiKeys: [String]
        /// How long a connection may wait on its client (no request, or a request not fully sent)
        /// before it is closed: idle keep-alive connections and stalled uploads hold file descriptors.
        public var idleTimeout: Duration
        public init(maximumBodyBytes: Int = 1 << 20, apiKeys: [String] = [], idleTimeout: Duration = .seconds(60)) {
            self.maximumBodyBytes = maximumBodyBytes
            self.apiKeys = apiKeys
            self.idleTimeout = idleTimeout
        }
    }

    let sink: any EventSink
    let repository: EventRepository
    let metrics: APIMetrics
    let options: Options
    let openAPIDocument: [UInt8]
    let logger: Logger
    let now: @Sendable () -> Int64

    public init(sink: any EventSink, repository: EventRepository, metrics: APIMetrics, options: Options, openAPIDocument: [UInt8],
                logger: Logger = Logger(label: "event-api"),
                now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }) {
        self.sink = sink
        self.repository = repository
        self.metrics = metrics
        self.options = options
        self.openAPIDocument = openAPIDocument
        self.logger = logger
        self.now = now
    }

    static let requestIDField = HTTPField.Name("X-Request-Id")!

    public func respond(to request: Request, context: Context) async throws -> Response {
        let started = ContinuousClock.now
        let requestID = self.requestID(request.headers)
        let route = Route(path: request.uri.path)
        var response: Response
        do {
            response = try await handle(request, route: route, requestID: requestID)
        } catch let error as APIError {
            response = Response(error.answer)
        } catch {
            logger.error("request failed", metadata: ["error": "\(error)", "path": "\(request.uri.path)", "request_id": "\(requestID)"])
            response = Response(APIError(.internalServerError, "internal error").answer)
        }
        // HEAD is GET without the body (RFC 9110, 9.3.2): the same status and fields, Content-Length included.
        if request.method == .head { response = response.createHeadResponse() }
        response.headers[Self.requestIDField] = requestID
        record(route: route, method: request.method, status: response.status, requestID: requestID, started: started)
        return response
    }

    /// The client's request id when acceptable, else a new one.
    func requestID(_ headers: HTTPFields) -> String {
        headers[Self.requestIDField].flatMap(Self.acceptableRequestID) ?? UUID.v7(milliseconds: now()).lowercasedString
    }

    /// The access log line (debug level) and the request metrics of an answered request.
    func record(route: Route, method: HTTPRequest.Method, status: HTTPResponse.Status, requestID: String, started: ContinuousClock.Instant) {
        // The metadata is built only when debug logging is on (LOG_LEVEL=debug).
        logger.debug("request", metadata: ["request_id": "\(requestID)", "method": "\(method.rawValue)",
                                          "route": "\(route.name)", "status": "\(status.code)"])
        metrics.observe(route: route.name, method: method.rawValue, status: status.code, duration: ContinuousClock.now - started)
    }

    /// A client's request id, if it is short printable ASCII (it is echoed into a header and logs).
    static func acceptableRequestID(_ value: String) -> String? {
        guard (1...128).contains(value.utf8.count), value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        return value
    }

    private func handle(_ request: Request, route: Route, requestID: String) async throws -> Response {
        try checkBeforeBody(route, request.method, request.headers)
        switch (route.kind, request.method) {
        case (.event, .get), (.event, .head): return try await getEvent(try route.eventID())
        case (.createEvent, _), (.event, _):
            // The same steps as ``FastWriteHandler``, which serves these routes in event-api's
            // server; these serve them wherever EventAPI runs as a plain responder.
            let coding = request.method == .delete ? .identity : try ContentCoding(request.headers)
            let body = request.method == .delete ? nil : try await Self.collectBody(request, limit: options.maximumBodyBytes)
            let envelope = try writeEnvelope(route: route, method: request.method, body: body, coding: coding)
            try checkSinkAvailable()
            let sent = ContinuousClock.now
            do {
                defer { metrics.kafkaEventSendDuration.record(.now - sent) }
                try await sink.send(envelope)
            } catch {
                throw sendFailure(error)
            }
            return Response(Self.accepted(envelope))
        case (.batch, _): return try await batch(request)
        case (.conversation, _):
            guard let conversationID = route.decodedParameter else {
                throw APIError(.badRequest, "invalid percent-encoding (escapes must spell UTF-8)", field: "conversation_id")
            }
            return try await conversation(conversationID, try QueryParameters(request.uri.query))
        case (.errors, _): return try await errorCounts(try QueryParameters(request.uri.query))
        case (.latency, _): return try await latency(try QueryParameters(request.uri.query))
        case (.topErrors, _): return try await topErrors(try QueryParameters(request.uri.query))
        case (.health, _): return Self.json(.ok, Array(#"{"status":"ok"}"#.utf8))
        case (.ready, _): return await ready()
        case (.metrics, _):
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: metrics.registry.emitToBuffer())))
        case (.openAPI, _):
            return Response(status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: ByteBuffer(bytes: openAPIDocument)))
        case (.unknown, _): throw APIError(.notFound, "not found")
        }
    }

    /// What the router checks before it reads a body: a known route (404), an allowed method
    /// (405), a valid key (401) and, for a batch, a `Content-Encoding` it can read (415).
    /// ``FastWriteHandler`` sends `100 Continue` only when these pass, so a refused client is not
    /// asked for its body (up to 5 MiB of batch).
    func checkBeforeBody(_ route: Route, _ method: HTTPRequest.Method, _ headers: HTTPFields) throws(APIError) {
        guard route.kind != .unknown else { throw APIError(.notFound, "not found") }
        guard route.allowed.contains(method) else {
            var error = APIError(.methodNotAllowed, "method \(method.rawValue) not allowed")
            error.headers[.allow] = route.allowed.map(\.rawValue).joined(separator: ", ")
            throw error
        }
        if route.kind != .health { try authorize(headers) }
        if route.kind == .batch { _ = try ContentCoding(headers) }
    }

    /// `Authorization: Bearer <key>` against every configured key, in time independent of where they
    /// differ; nothing to check when no keys are configured.
    func authorize(_ headers: HTTPFields) throws(APIError) {
        guard !options.apiKeys.isEmpty else { return }
        let header = headers[.authorization] ?? ""
        var matched = false
        // The scheme's name is case-insensitive (RFC 9110, section 11.1); the key is not.
        if header.utf8.count > 7, header.utf8.prefix(7).lazy.map({ $0 | 0x20 }).elementsEqual("bearer ".utf8) {
            // The scheme and the key are separated by one or more spaces (RFC 9110, section 11.4).
            let presented = Array(header.utf8.dropFirst(7).drop { $0 == 0x20 })
            for key in options.apiKeys where Self.constantTimeEquals(presented, Array(key.utf8)) { matched = true }
        }
        guard matched else {
            var error = APIError(.unauthorized, header.isEmpty ? "missing bearer token" : "invalid bearer token")
            error.headers[.wwwAuthenticate] = "Bearer"
            throw error
        }
    }

    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        let length = max(a.count, b.count)
        for index in 0..<length {
            difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
        }
        return difference == 0
    }

    // MARK: Writes

    /// A single-event write's body as it arrived: its bytes, or more than the limit.
    enum WriteBody: Sendable {
        case bytes([UInt8])
        case tooLarge
    }

    /// What a single-event write (`POST /event/`, `PUT` or `DELETE /event/:id`) sends, after its
    /// checks in this order: the id in the path, the body (decompressed as `coding` says), the
    /// fields. (The coding itself was accepted before: it is a property of the request's head,
    /// checked with the key, before the body is read.)
    func writeEnvelope(route: Route, method: HTTPRequest.Method, body: WriteBody?, coding: ContentCoding = .identity) throws(APIError) -> EventEnvelope {
        switch (route.kind, method) {
        case (.createEvent, _):
            let json = try Self.parseJSON(body, limit: options.maximumBodyBytes, coding: coding)
            let receivedAt = now()
            let create: EventCreate
            do {
                create = try EventValidation.create(json, receivedAtMilliseconds: receivedAt)
            } catch {
                throw APIError(.badRequest, error.message, field: error.field)
            }
            return EventEnvelope(eventID: create.id, operation: .create(create.fields, idSuppliedByClient: create.idSuppliedByClient),
                                 receivedAtMilliseconds: receivedAt)
        case (_, .put):
            let id = try route.eventID()
            let json = try Self.parseJSON(body, limit: options.maximumBodyBytes, coding: coding)
            let patch: EventPatch
            do {
                patch = try EventValidation.patch(json)
            } catch {
                throw APIError(.badRequest, error.message, field: error.field)
            }
            return EventEnvelope(eventID: id, operation: .update(patch), receivedAtMilliseconds: now())
        default:
            return EventEnvelope(eventID: try route.eventID(), operation: .delete, receivedAtMilliseconds: now())
        }
    }

    /// 503 at once while no broker is reachable (validation comes first, so clients learn of bad input).
    /// The `events` refused are counted as produce errors: an outage must show in the counter
    /// although nothing reaches the producer.
    func checkSinkAvailable(events: Int = 1) throws(APIError) {
        if let reason = sink.unavailableReason {
            metrics.produceErrors.increment(by: Int64(events))
            throw APIError.unavailable("Kafka unavailable: \(reason)")
        }
    }

    static func tooLargeForKafka(_ error: KafkaError) -> String { "the event is too large for Kafka: \(error.message)" }

    /// The answer to a write the sink refused.
    func sendFailure(_ error: any Error) -> APIError {
        if let error = error as? EventTooLarge { return APIError(.contentTooLarge, "\(error)") }
        // Over a limit of the producer's (KAFKA_PROPERTY_message.max.bytes) or the broker's: a 503
        // would have clients retry for ever what can never pass.
        if let error = error as? KafkaError, error.isMessageTooLarge { return APIError(.contentTooLarge, Self.tooLargeForKafka(error)) }
        metrics.produceErrors.increment()
        // Refused because no broker is reachable (found at the send, or queued just before the
        // outage was confirmed): the same answer as the check before the send gives.
        if let error = error as? KafkaError, error.isUnavailable { return APIError.unavailable(error.message) }
        return APIError.unavailable("Kafka did not accept the event: \(error)")
    }

    /// 202 with the event's id, once the broker acknowledged the write.
    static func accepted(_ envelope: EventEnvelope) -> Answer {
        var json = JSONWriter(capacity: 80)
        json.bytes.append(UInt8(ascii: "{"))
        json.key("event_id", first: true)
        json.string(envelope.eventID.lowercasedString)
        json.key("status")
        json.raw(#""accepted"}"#)
        return Answer(status: .accepted, body: json.bytes)
    }

    private func batch(_ request: Request) async throws -> Response {
        let body = try await Self.parseBody(request, limit: options.maximumBatchBytes, coding: try ContentCoding(request.headers))
        guard case let .array(items)? = body["events"] else {
            throw APIError(.badRequest, "request body must be a JSON object with an \"events\" array", field: "events")
        }
        if case let .object(pairs) = body, let unknown = pairs.first(where: { $0.0 != "events" }) {
            throw APIError(.badRequest, "unknown field", field: unknown.0)
        }
        guard (1...options.maximumBatchItems).contains(items.count) else {
            throw APIError(.badRequest, "events must hold 1 to \(options.maximumBatchItems) items", field: "events")
        }
        try checkSinkAvailable(events: items.count)
        let receivedAt = now()
        enum Outcome: Sendable {
            case accepted(UUID)
            case rejected(status: Int, message: String, field: String?)
        }
        var outcomes = [Outcome?](repeating: nil, count: items.count)
        var envelopes: [(Int, EventEnvelope)] = []
        for (index, item) in items.enumerated() {
            do {
                let create = try EventValidation.create(item, receivedAtMilliseconds: receivedAt)
                envelopes.append((index, EventEnvelope(eventID: create.id, operation: .create(create.fields, idSuppliedByClient: create.idSuppliedByClient),
                                                       receivedAtMilliseconds: receivedAt)))
            } catch {
                outcomes[index] = .rejected(status: 400, message: error.message, field: error.field)
            }
        }
        let sent = ContinuousClock.now
        let errors = await sink.sendAll(envelopes.map(\.1))
        if !envelopes.isEmpty { metrics.kafkaBatchSendDuration.record(.now - sent) }
        for ((index, envelope), error) in zip(envelopes, errors) {
            switch error {
            case nil:
                outcomes[index] = .accepted(envelope.eventID)
            case let error as EventTooLarge:
                outcomes[index] = .rejected(status: 413, message: "\(error)", field: nil)
            case let error as KafkaError where error.isMessageTooLarge:
                outcomes[index] = .rejected(status: 413, message: Self.tooLargeForKafka(error), field: nil)
            case let error?:
                metrics.produceErrors.increment()
                outcomes[index] = .rejected(status: 503, message: "Kafka did not accept the event: \(error)", field: nil)
            }
        }
        var json = JSONWriter(capacity: 64 * items.count)
        let accepted = outcomes.filter { if case .accepted = $0 { return true } else { return false } }.count
        json.raw(#"{"accepted":"#)
        json.integer(accepted)
        json.key("rejected")
        json.integer(items.count - accepted)
        json.key("results")
        json.array(outcomes.enumerated()) { json, item in
            json.raw(#"{"index":"#)
            json.integer(item.offset)
            switch item.element! {
            case let .accepted(id):
                json.raw(#","status":202,"event_id":"#)
                json.string(id.lowercasedString)
            case let .rejected(status, message, field):
                json.key("status")
                json.integer(status)
                json.key("error")
                json.string(message)
                json.key("field")
                if let field { json.string(field) } else { json.null() }
            }
            json.bytes.append(UInt8(ascii: "}"))
        }
        json.bytes.append(UInt8(ascii: "}"))
        return Self.json(.init(code: 207, reasonPhrase: "Multi-Status"), json.bytes)
    }

    // MARK: Reads

    private func read<T: Sendable>(_ operation: () async throws -> T) async throws -> T {
        let started = ContinuousClock.now
        do {
            let result = try await operation()
            metrics.clickHouseQueryDuration.record(ContinuousClock.now - started)
            return result
        } catch {
            metrics.clickHouseErrors.increment()
            // "Try again" only when that can help: ClickHouse unreachable, overloaded or short of a
            // replica, or the schema not created yet (the migration retries until it is). A query
            // the server refuses, or a result this client cannot read, is a fault: a retry would
            // fail the same way, so it is a 500, which clients do not retry.
            guard TransientErrors.contains(error) || Self.isSchemaPending(error) || error is CancellationError else {
                logger.error("ClickHouse read failed", metadata: ["error": "\(error)"])
                throw APIError(.internalServerError, "ClickHouse read failed: \(error)")
            }
            logger.warning("ClickHouse read failed", metadata: ["error": "\(error)"])
            throw APIError.unavailable("ClickHouse unavailable: \(error)")
        }
    }

    /// UNKNOWN_TABLE (60) and UNKNOWN_DATABASE (81): before the migration has run.
    static func isSchemaPending(_ error: Error) -> Bool {
        guard let exception = error as? ServerException else { return false }
        return exception.code == 60 || exception.code == 81
    }

    private func getEvent(_ id: UUID) async throws -> Response {
        guard let row = try await read({ try await repository.event(id) }) else {
            throw APIError(.notFound, "event not found", field: "id")
        }
        var json = JSONWriter(capacity: 256 + row.fields.input.utf8.count + row.fields.output.utf8.count)
        Self.writeEvent(row, to: &json)
        return Self.json(.ok, json.bytes)
    }

    private func conversation(_ conversationID: String, _ query: QueryParameters) async throws -> Response {
        guard (1...EventValidation.maximumNameLength).contains(conversationID.unicodeScalars.count) else {
            throw APIError(.badRequest, "must be 1 to \(EventValidation.maximumNameLength) characters", field: "conversation_id")
        }
        let limit = try Self.integer(query, "limit", default: 100, in: 1...1000)
        var cursor: ConversationCursor?
        if let raw = query["cursor"] {
            guard let parsed = ConversationCursor(encoded: raw) else { throw APIError(.badRequest, "invalid cursor", field: "cursor") }
            cursor = parsed
        }
        let page = try await read({ try await repository.conversation(conversationID, limit: limit, after: cursor) })
        var json = JSONWriter(capacity: 256 * page.events.count + 64)
        json.raw(#"{"events":"#)
        json.array(page.events) { json, row in Self.writeEvent(row, to: &json) }
        json.key("next_cursor")
        if let next = page.next { json.string(next.encoded) } else { json.null() }
        json.bytes.append(UInt8(ascii: "}"))
        return Self.json(.ok, json.bytes)
    }

    private func errorCounts(_ query: QueryParameters) async throws -> Response {
        let days = try Self.integer(query, "days", default: 7, in: 1...365)
        let eventName = query["event_name"]
        if let eventName, !(1...EventValidation.maximumNameLength).contains(eventName.unicodeScalars.count) {
            throw APIError(.badRequest, "must be 1 to \(EventValidation.maximumNameLength) characters", field: "event_name")
        }
        let counts = try await read({ try await repository.errorCounts(eventName: eventName, days: days) })
        var json = JSONWriter()
        json.raw(#"{"event_name":"#)
        if let eventName { json.string(eventName) } else { json.null() }
        json.key("days")
        json.integer(days)
        json.key("counts")
        json.array(counts) { json, day in
            json.raw(#"{"date":"#)
            json.string(day.date)
            json.key("errors")
            json.integer(day.errors)
            json.key("total")
            json.integer(day.total)
            json.bytes.append(UInt8(ascii: "}"))
        }
        json.bytes.append(UInt8(ascii: "}"))
        return Self.json(.ok, json.bytes)
    }

    private func latency(_ query: QueryParameters) async throws -> Response {
        let limit = try Self.integer(query, "limit", default: 100, in: 1...1000)
        let rows = try await read({ try await repository.latencyPercentiles(limit: limit) })
        var json = JSONWriter()
        json.raw(#"{"results":"#)
        json.array(rows) { json, row in
            json.raw(#"{"conversation_id":"#)
            json.string(row.conversationID)
            json.key("event_name")
            json.string(row.eventName)
            json.key("p95_latency")
            json.number(row.p95)
            json.key("count")
            json.integer(row.count)
            json.bytes.append(UInt8(ascii: "}"))
        }
        json.bytes.append(UInt8(ascii: "}"))
        return Self.json(.ok, json.bytes)
    }

    private func topErrors(_ query: QueryParameters) async throws -> Response {
        let limit = try Self.integer(query, "limit", default: 10, in: 1...1000)
        let rows = try await read({ try await repository.topErrorSessions(limit: limit) })
        var json = JSONWriter()
        json.raw(#"{"sessions":"#)
        json.array(rows) { json, row in
            json.raw(#"{"conversation_id":"#)
            json.string(row.conversationID)
            json.key("errors")
            json.integer(row.errors)
            json.key("total")
            json.integer(row.total)
            json.key("error_rate")
            json.number(row.errorRate)
            json.bytes.append(UInt8(ascii: "}"))
        }
        json.bytes.append(UInt8(ascii: "}"))
        return Self.json(.ok, json.bytes)
    }

    private func ready() async -> Response {
        async let clickHouse: String? = {
            do {
                try await withTimeout(.seconds(3)) { try await repository.client.withConnection { try await $0.ping() } }
                return nil
            } catch {
                return "\(error)"
            }
        }()
        async let kafka: String? = {
            if let reason = sink.unavailableReason { return reason }
            do {
                try await sink.checkReachable()
                return nil
            } catch {
                return "\(error)"
            }
        }()
        let (clickHouseProblem, kafkaProblem) = await (clickHouse, kafka)
        // Ready means writes are taken, which needs Kafka alone: without ClickHouse they still are
        // (the consumer stores them once it is back), so the instance stays in a load balancer's
        // rotation as "degraded" while reads answer 503 themselves. A 503 here would take every
        // instance out at once, and writes would stop too.
        let writable = kafkaProblem == nil
        var json = JSONWriter()
        json.raw(#"{"status":"#)
        json.string(!writable ? "unavailable" : clickHouseProblem == nil ? "ready" : "degraded")
        json.key("clickhouse")
        json.string(clickHouseProblem ?? "ok")
        json.key("kafka")
        json.string(kafkaProblem ?? "ok")
        if clickHouseProblem != nil || kafkaProblem != nil {
            json.key("error")
            json.string([clickHouseProblem.map { "ClickHouse: \($0)" }, kafkaProblem.map { "Kafka: \($0)" }].compactMap { $0 }.joined(separator: "; "))
            if !writable { json.raw(#","field":null"#) }
        }
        json.bytes.append(UInt8(ascii: "}"))
        var response = Self.json(writable ? .ok : .serviceUnavailable, json.bytes)
        if !writable { response.headers[.retryAfter] = "2" }
        return response
    }

    // MARK: Helpers

    static func writeEvent(_ row: EventRow, to json: inout JSONWriter) {
        json.raw(#"{"event_id":"#)
        json.string(row.id.lowercasedString)
        json.key("conversation_id")
        json.string(row.fields.conversationID)
        json.key("event_name")
        json.string(row.fields.eventName)
        json.key("input")
        json.string(row.fields.input)
        json.key("output")
        json.string(row.fields.output)
        json.key("latency")
        json.number(row.fields.latency)
        json.key("error")
        json.bool(row.fields.error)
        json.key("timestamp")
        json.string(Timestamp.format(milliseconds: row.fields.timestampMilliseconds))
        json.bytes.append(UInt8(ascii: "}"))
    }

    static func json(_ status: HTTPResponse.Status, _ bytes: [UInt8]) -> Response {
        Response(Answer(status: status, body: bytes))
    }

    static func integer(_ query: QueryParameters, _ name: String, default value: Int, in range: ClosedRange<Int>) throws -> Int {
        guard let raw = query[name] else { return value }
        guard let parsed = Int(raw), range.contains(parsed) else {
            throw APIError(.badRequest, "\(name) must be an integer from \(range.lowerBound) to \(range.upperBound)", field: name)
        }
        return parsed
    }

    /// The body as JSON, refusing bodies over `limit` bytes, as sent or decompressed (413), and
    /// anything but one JSON value (400).
    static func parseBody(_ request: Request, limit: Int, coding: ContentCoding = .identity) async throws -> JSONValue {
        try parseJSON(try await collectBody(request, limit: limit), limit: limit, coding: coding)
    }

    /// The body, or `.tooLarge` past `limit` bytes (declared or sent).
    static func collectBody(_ request: Request, limit: Int) async throws -> WriteBody {
        var collector = BodyCollector(limit: limit, declaredLength: request.headers[.contentLength].flatMap { Int($0) })
        do {
            for try await part in request.body {
                guard collector.append(part) else { break }
            }
        } catch {
            // Bad chunk framing, or the client went away mid-body: the client's fault, not a 500
            // (which would be logged as an error, counted, and invite a retry of the same bytes).
            throw APIError(.badRequest, "the request body did not arrive whole: \(error)")
        }
        return collector.finish()
    }

    /// The body (decompressed as `coding` says, within the same limit) as one JSON value.
    static func parseJSON(_ body: WriteBody?, limit: Int, coding: ContentCoding = .identity) throws(APIError) -> JSONValue {
        guard case let .bytes(bytes)? = try coding.decode(body, limit: limit) else { throw APIError.tooLarge(limit) }
        guard !bytes.isEmpty else { throw APIError(.badRequest, "request body is empty") }
        do {
            return try JSONParser.parse(bytes)
        } catch {
            throw APIError(.badRequest, "malformed JSON: \(error)")
        }
    }
}

/// A request body read once, up to a limit. Past the limit the rest is read and dropped (up to
/// 64 MiB), so a client that sends the whole body before reading gets its 413 instead of a stalled
/// upload.
struct BodyCollector {
    static let maximumDroppedBytes = 64 << 20
    let limit: Int
    private var buffer: ByteBuffer
    private var received = 0
    private var tooLarge: Bool

    init(limit: Int, declaredLength: Int?, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.limit = limit
        tooLarge = (declaredLength ?? 0) > limit
        buffer = allocator.buffer(capacity: tooLarge ? 0 : min(max(declaredLength ?? 0, 256), limit))
    }

    /// Adds a part of the body; false once enough was dropped to answer 413 without the rest.
    mutating func append(_ part: ByteBuffer) -> Bool {
        received += part.readableBytes
        if received > limit { tooLarge = true }
        if tooLarge { return received <= Self.maximumDroppedBytes }
        buffer.writeImmutableBuffer(part)
        return true
    }

    mutating func finish() -> EventAPI.WriteBody {
        defer { buffer = ByteBuffer() }
        return tooLarge ? .tooLarge : .bytes(buffer.readBytes(length: buffer.readableBytes) ?? [])
    }
}

/// A complete answer (status, headers, JSON body), written by the router's responses and by the
/// fast write path alike.
struct Answer: Sendable {
    var status: HTTPResponse.Status
    var headers: HTTPFields = [.contentType: "application/json"]
    var body: [UInt8]
}

extension Response {
    init(_ answer: Answer) {
        self.init(status: answer.status, headers: answer.headers, body: .init(byteBuffer: ByteBuffer(bytes: answer.body)))
    }
}

/// An error response.
struct APIError: Error {
    var status: HTTPResponse.Status
    var message: String
    var field: String?
    var headers: HTTPFields = [:]

    init(_ status: HTTPResponse.Status, _ message: String, field: String? = nil) {
        self.status = status
        self.message = message
        self.field = field
    }

    /// 413, closing the connection: the rest of the body is not read, so the connection cannot
    /// carry another request (and a client still sending learns at once).
    static func tooLarge(_ limit: Int) -> APIError {
        var error = APIError(.contentTooLarge, "request body is larger than \(limit) bytes")
        error.headers[.connection] = "close"
        return error
    }

    static func unavailable(_ message: String) -> APIError {
        var error = APIError(.serviceUnavailable, message)
        error.headers[.retryAfter] = "1"
        return error
    }

    var answer: Answer {
        var json = JSONWriter()
        json.raw(#"{"error":"#)
        json.string(message)
        json.key("field")
        if let field { json.string(field) } else { json.null() }
        json.bytes.append(UInt8(ascii: "}"))
        var answer = Answer(status: status, body: json.bytes)
        for field in headers { answer.headers.append(field) }
        return answer
    }
}

/// Which route a request path names, with its parameter.
struct Route {
    enum Kind: Sendable {
        case createEvent, event, batch, conversation, errors, latency, topErrors, health, ready, metrics, openAPI, unknown
    }

    let kind: Kind
    let parameter: String
    /// False when a segment's escapes are malformed or do not spell UTF-8: `parameter` then holds
    /// the segment as sent, which must not be taken for a name.
    let wellEncoded: Bool
    /// The parameter, unless its segment was malformed.
    var decodedParameter: String? { wellEncoded ? parameter : nil }

    init(path: some StringProtocol) {
        var wellEncoded = true
        let segments = path.split(separator: "/").map { segment in
            guard segment.utf8.contains(UInt8(ascii: "%")) else { return String(segment) }
            guard let decoded = percentDecoded(segment.utf8, plusIsSpace: false) else {
                wellEncoded = false
                return String(segment)
            }
            return decoded
        }
        self.wellEncoded = wellEncoded
        switch segments.count {
        case 1:
            switch segments[0] {
            case "event": kind = .createEvent
            case "health": kind = .health
            case "ready": kind = .ready
            case "metrics": kind = .metrics
            case "openapi.yaml": kind = .openAPI
            default: kind = .unknown
            }
            parameter = ""
        case 2 where segments[0] == "event":
            kind = .event
            parameter = segments[1]
        case 2 where segments == ["events", "batch"]: (kind, parameter) = (.batch, "")
        case 2 where segments == ["analytics", "errors"]: (kind, parameter) = (.errors, "")
        case 2 where segments == ["analytics", "latency"]: (kind, parameter) = (.latency, "")
        case 3 where segments[0] == "events" && segments[1] == "conversation": (kind, parameter) = (.conversation, segments[2])
        case 3 where segments == ["analytics", "sessions", "top-errors"]: (kind, parameter) = (.topErrors, "")
        default: (kind, parameter) = (.unknown, "")
        }
    }

    var allowed: [HTTPRequest.Method] {
        switch kind {
        case .createEvent, .batch: return [.post]
        case .event: return [.get, .head, .put, .delete]
        case .unknown: return []
        default: return [.get, .head]
        }
    }

    /// The route's name in metrics (the pattern, not the concrete path).
    var name: String {
        switch kind {
        case .createEvent: return "/event/"
        case .event: return "/event/:id"
        case .batch: return "/events/batch"
        case .conversation: return "/events/conversation/:conversation_id"
        case .errors: return "/analytics/errors"
        case .latency: return "/analytics/latency"
        case .topErrors: return "/analytics/sessions/top-errors"
        case .health: return "/health"
        case .ready: return "/ready"
        case .metrics: return "/metrics"
        case .openAPI: return "/openapi.yaml"
        case .unknown: return "unknown"
        }
    }

    func eventID() throws(APIError) -> UUID {
        guard let id = UUID(text: parameter) else {
            throw APIError(.badRequest, "must be a UUID", field: "id")
        }
        return id
    }
}

/// A request's query string, decoded as HTML forms and most clients encode it: `+` is a space,
/// `%XX` a byte, the bytes UTF-8. The first of repeated names counts. Malformed escapes or bytes
/// that are not UTF-8 are refused (400, naming the parameter) rather than read as other text.
struct QueryParameters {
    private var values: [String: String] = [:]

    init(_ query: String?) throws(APIError) {
        guard let query, !query.isEmpty else { return }
        for pair in query.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = percentDecoded(parts[0], plusIsSpace: true) else {
                throw APIError(.badRequest, "invalid percent-encoding in a query parameter name (escapes must spell UTF-8)", field: nil)
            }
            guard let value = percentDecoded(parts.count > 1 ? parts[1] : pair[pair.endIndex...], plusIsSpace: true) else {
                throw APIError(.badRequest, "invalid percent-encoding (escapes must spell UTF-8)", field: name)
            }
            if values[name] == nil { values[name] = value }
        }
    }

    subscript(name: String) -> String? { values[name] }
}

/// `bytes` with `%XX` escapes (and, in a query, `+`) decoded, or nil when an escape is malformed
/// or the result is not UTF-8.
func percentDecoded<Bytes: Collection>(_ bytes: Bytes, plusIsSpace: Bool) -> String? where Bytes.Element == UInt8 {
    func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
    var decoded: [UInt8] = []
    decoded.reserveCapacity(bytes.count)
    var index = bytes.startIndex
    while index != bytes.endIndex {
        let byte = bytes[index]
        if byte == UInt8(ascii: "%") {
            let high = bytes.index(after: index)
            guard high != bytes.endIndex, let first = hexValue(bytes[high]) else { return nil }
            let low = bytes.index(after: high)
            guard low != bytes.endIndex, let second = hexValue(bytes[low]) else { return nil }
            decoded.append(first << 4 | second)
            index = bytes.index(after: low)
        } else {
            decoded.append(plusIsSpace && byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
            index = bytes.index(after: index)
        }
    }
    return String(validating: decoded, as: UTF8.self)
}

/// Runs `operation`, failing with a timeout error when it takes longer than `limit`.
func withTimeout<T: Sendable>(_ limit: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: limit)
            throw TimeoutError(limit: limit)
        }
        let result = try await group.next()!
        group.cancelAll()
        return result
    }
}

struct TimeoutError: Error, CustomStringConvertible {
    let limit: Duration
    var description: String { "no answer within \(limit)" }
}
