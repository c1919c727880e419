import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// Serves the single-event writes (`POST /event/`, `PUT /event/:id`, `DELETE /event/:id`) inside
/// the server's channel pipeline, on the connection's event loop, and passes every other request
/// on to the Hummingbird router.
///
/// Why: through the router each request is read into an async sequence, answered on Swift's
/// executor, suspended for the broker's acknowledgement and written back through an async writer,
/// a hop between threads at each step. `event-bench pipeline` measured the API at 36-48 µs of CPU
/// per write, against 23-31 µs for a bare Hummingbird endpoint that only decodes the body (and
/// 13-15 µs for the same work in a plain NIO handler). Here a write costs the event loop its
/// parsing and one hop back from librdkafka's delivery thread.
///
/// The checks, their order and every answer are ``EventAPI``'s own (`writeEnvelope`, `authorize`,
/// `checkSinkAvailable`, `sendFailure`, `accepted`, `record`), so both paths answer alike; the
/// router's path still serves these routes in tests that call the responder directly.
///
/// HTTP/1.1 order: a connection's requests are answered in the order they came. While a write
/// waits for its acknowledgement, later requests wait here (and no more is read); a write that
/// arrives while a request handed to the router is unanswered waits for that answer.
///
/// Connection handling that Hummingbird leaves out, for both paths since every part passes here:
/// a connection waiting on its client (no request, or one not fully sent) longer than the idle
/// timeout is closed; `Expect: 100-continue` is answered with 100 when the body will be read; a
/// request whose `Connection` header lists `close` (Hummingbird only closes on the exact value) or
/// an answer that says `Connection: close` ends the connection once written.
final class FastWriteHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private enum State {
        case idle
        /// A request for the router is arriving; its parts go on.
        case forwarding
        /// A write's body is arriving (in `write`).
        case collecting
        /// A write waits for its answer.
        case answering
        /// Answered with `Connection: close`; nothing more is served.
        case closing
    }

    /// The write whose body is arriving.
    private struct PendingWrite {
        var route: Route
        var method: HTTPRequest.Method
        var requestID: String
        /// The answer when the request's head is refused: its credentials (checked first, as on
        /// the router's path), then its `Content-Encoding`.
        var refusal: APIError?
        var coding: ContentCoding
        var closeAfter: Bool
        var started: ContinuousClock.Instant
        var body: BodyCollector
    }

    private let api: EventAPI
    private let serverName: String
    private var state = State.idle
    private var pending: PendingWrite?
    /// Requests handed to the router whose answer has not been written yet.
    private var unansweredForwarded = 0
    /// Parts that came while they could not be served, in order.
    private var held = CircularBuffer<HTTPRequestPart>()
    private var readHeld = false
    private var skippingRestOfBody = false
    private var forwardedSinceReadComplete = false
    private var quiesceHeld = false
    /// The client closed its side while a write was in progress or requests waited; passed on
    /// once they are answered (Hummingbird closes the connection when it sees it).
    private var inputClosedHeld = false
    /// The server is shutting down: requests not started yet are not served (the connection
    /// closes once the one in progress is answered).
    private var quiescing = false
    /// A forwarded request asked for `Connection: close` (Hummingbird then stops after it), or the
    /// router answered with it: nothing after that request is served.
    private var closeAfterForwarded = false
    private var responseCloses = false
    /// Inside ``serveHeld(context:)``: an answer given while serving held parts does not start
    /// another pass (one per request would nest as deep as the requests held).
    private var servingHeld = false
    /// An error of the HTTP decoder that came after parts still waiting (it belongs after them).
    private var errorHeld: (any Error)?
    private var context: ChannelHandlerContext?
    /// The last request part read or answer written: the idle timeout counts from here.
    private var lastActivity = NIODeadline.now()
    private var idleCheck: Scheduled<Void>?
    /// The HTTP decoder's error, for the answer Hummingbird writes to it (see `write`).
    private var decoderError: (any Error)?
    /// The single write whose own bytes the decoder could not read: its answer (the decoder
    /// error's) keeps the client's request id and is counted like any other.
    private var decoderErrorWrite: PendingWrite?

    /// How long a write that is still arriving when the server shuts down may take to arrive.
    static let bodyGraceOnShutdown = TimeAmount.seconds(5)

    private let idleTimeout: TimeAmount

    init(api: EventAPI, serverName: String) {
        self.api = api
        self.serverName = serverName
        idleTimeout = TimeAmount(api.options.idleTimeout)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        scheduleIdleCheck(context: context, at: .now() + idleTimeout)
        // Right after the HTTP decoder, where the request's version is still known.
        if let decoder = try? context.pipeline.syncOperations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self) {
            try? context.pipeline.syncOperations.addHandler(HTTP10ConnectionHandler(), position: .after(decoder))
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleCheck?.cancel()
        idleCheck = nil
        self.context = nil
    }

    // MARK: Idle timeout

    /// Whether the connection is waiting for its client: no request at all, or one whose body is
    /// still arriving. (Not while a write waits for Kafka or the router works on a request.)
    private var waitsOnClient: Bool {
        // Answers the client does not read (the channel stays unwritable) wait on the client too:
        // one that pipelines requests and never reads would otherwise hold its connection and
        // answers for ever (Linux answers its zero-window probes). A client that reads, however
        // slowly, makes the channel writable again now and then, which counts as activity.
        if let channel = context?.channel, !channel.isWritable { return true }
        switch state {
        case .collecting, .forwarding: return true
        case .idle: return unansweredForwarded == 0 && held.isEmpty
        case .answering, .closing: return false
        }
    }

    private func scheduleIdleCheck(context: ChannelHandlerContext, at deadline: NIODeadline) {
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        idleCheck = context.eventLoop.scheduleTask(deadline: deadline) { loopBound.value.checkIdle() }
    }

    private func checkIdle() {
        idleCheck = nil
        guard let context else { return }
        let deadline = lastActivity + idleTimeout
        if waitsOnClient && NIODeadline.now() >= deadline {
            api.logger.debug("closing a connection idle for \(api.options.idleTimeout)")
            state = .closing
            context.close(promise: nil)
            return
        }
        // Activity moved the deadline on; a busy connection is looked at again a timeout later.
        scheduleIdleCheck(context: context, at: waitsOnClient ? deadline : max(deadline, .now() + idleTimeout))
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        lastActivity = .now()
        if !held.isEmpty || !serve(part, context: context) { held.append(part) }
    }

    /// Serves one part now, or returns false when it has to wait.
    private func serve(_ part: HTTPRequestPart, context: ChannelHandlerContext) -> Bool {
        if skippingRestOfBody {
            // What is left of a body answered before its end (over 64 MiB).
            if case .end = part { skippingRestOfBody = false }
            return true
        }
        switch (state, part) {
        case (.answering, _), (.closing, _):
            return false
        case let (.idle, .head(head)):
            // Shutting down, or after a request that closes the connection: not served.
            guard !quiescing, !closeAfterForwarded else { return false }
            let route = Route(path: head.path.map { Self.pathWithoutQuery($0) } ?? "")
            guard Self.isSingleWrite(route, head.method) else {
                // A request that expects a 100 waits until every earlier answer is out: a 100 must
                // not come before them, and none would be sent once it is forwarded.
                if Self.expectsContinue(head), unansweredForwarded > 0 { return false }
                // Not for a body over the batch limit: the router refuses it (once it was read and dropped).
                if Self.expectsContinue(head),
                   (head.headerFields[.contentLength].flatMap { Int($0) } ?? 0) <= api.options.maximumBatchBytes,
                   (try? api.checkBeforeBody(route, head.method, head.headerFields)) != nil {
                    sendContinue(context: context)
                }
                unansweredForwarded += 1
                state = .forwarding
                // Nothing after this request is served; the connection closes once it is answered.
                if Self.asksToClose(head) { closeAfterForwarded = true }
                forward(part, context: context)
                return true
            }
            guard unansweredForwarded == 0 else { return false }
            var refusal: APIError?
            var coding = ContentCoding.identity
            do throws(APIError) {
                try api.authorize(head.headerFields)
                if head.method != .delete { coding = try ContentCoding(head.headerFields) }
            } catch {
                refusal = error
            }
            let limit = refusal == nil ? api.options.maximumBodyBytes : 0
            let declaredLength = head.headerFields[.contentLength].flatMap { Int($0) }
            pending = PendingWrite(route: route, method: head.method, requestID: api.requestID(head.headerFields),
                                   refusal: refusal, coding: coding, closeAfter: Self.asksToClose(head), started: .now,
                                   // A body to be refused is dropped as it arrives (limit 0), never buffered.
                                   body: BodyCollector(limit: limit, declaredLength: declaredLength, allocator: context.channel.allocator))
            state = .collecting
            if Self.expectsContinue(head) {
                if refusal == nil, (declaredLength ?? 0) <= limit {
                    sendContinue(context: context)
                } else {
                    // A body that will be refused is not asked for: the answer comes at once, and
                    // the connection closes (the client may or may not send the body after all).
                    pending!.closeAfter = true
                    skippingRestOfBody = true
                    startWrite(context: context)
                }
            }
            return true
        case (.forwarding, _):
            if case .end = part { state = .idle }
            forward(part, context: context)
            return true
        case let (.collecting, .body(chunk)):
            if !pending!.body.append(chunk) {
                // Answered before the body's end: the rest is not read, the connection closes
                // (a client could otherwise stream without end).
                pending!.closeAfter = true
                skippingRestOfBody = true
                startWrite(context: context)
            }
            return true
        case (.collecting, .end):
            startWrite(context: context)
            return true
        case (.collecting, .head), (.idle, _):
            // The HTTP decoder never sends these; pass them on for the router to refuse.
            forward(part, context: context)
            return true
        }
    }

    /// The body is complete (or too large): check, send, answer on the acknowledgement.
    private func startWrite(context: ChannelHandlerContext) {
        guard let pending else { return }
        state = .answering
        let body = pending.method == .delete ? nil : self.pending!.body.finish()
        let envelope: EventEnvelope
        do throws(APIError) {
            if let refusal = pending.refusal { throw refusal }
            envelope = try api.writeEnvelope(route: pending.route, method: pending.method, body: body, coding: pending.coding)
            try api.checkSinkAvailable()
        } catch {
            return answer(error.answer)
        }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let api = self.api
        let sent = ContinuousClock.now
        api.sink.send(envelope) { error in
            api.metrics.kafkaEventSendDuration.record(.now - sent)
            let answer = error.map { api.sendFailure($0).answer } ?? EventAPI.accepted(envelope)
            if eventLoop.inEventLoop {
                loopBound.value.answer(answer)
            } else {
                eventLoop.execute { loopBound.value.answer(answer) }
            }
        }
    }

    /// Writes the answer of the pending write, then serves what waited.
    private func answer(_ answer: Answer) {
        guard let pending else { return }
        self.pending = nil
        api.record(route: pending.route, method: pending.method, status: answer.status, requestID: pending.requestID, started: pending.started)
        guard let context else { return }  // the connection is gone
        var headers = answer.headers
        headers[EventAPI.requestIDField] = pending.requestID
        headers[.contentLength] = String(answer.body.count)
        headers[.date] = HTTPDate.now()
        headers[.server] = serverName
        let close = pending.closeAfter || headers[.connection]?.lowercased() == "close"
        if close { headers[.connection] = "close" }
        lastActivity = .now()
        context.write(wrapOutboundOut(.head(HTTPResponse(status: answer.status, headerFields: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(context.channel.allocator.buffer(bytes: answer.body))), promise: nil)
        if close {
            state = .closing
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        state = .idle
        if quiesceHeld {
            // Hummingbird's connection handler closes the idle connection now: what waited is
            // dropped unserved (never sent to Kafka), and the client sees the connection close.
            quiesceHeld = false
            quiescing = true
            state = .closing
            held.removeAll()
            context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
            return
        }
        serveHeld(context: context)
    }

    /// `HTTP/1.1 100 Continue`: the client may send the body now.
    private func sendContinue(context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponse(status: .continue))), promise: nil)
    }

    private func forward(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        forwardedSinceReadComplete = true
        context.fireChannelRead(wrapInboundOut(part))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        forwardedSinceReadComplete = false
        context.fireChannelReadComplete()
    }

    /// Serves the parts that waited, as far as they can go now.
    private func serveHeld(context: ChannelHandlerContext) {
        // An answer given while this loop serves comes back here: the loop goes on instead.
        guard !servingHeld else { return }
        servingHeld = true
        defer { servingHeld = false }
        // Taken off before it is served: serving may answer at once.
        while let part = held.popFirst() {
            guard serve(part, context: context) else {
                held.prepend(part)
                break
            }
        }
        if forwardedSinceReadComplete {
            // Hummingbird's async channel hands reads on at the end of a read burst.
            forwardedSinceReadComplete = false
            context.fireChannelReadComplete()
        }
        guard held.isEmpty, state != .answering, state != .closing else { return }
        if let error = errorHeld {
            errorHeld = nil
            if state == .collecting { dropMalformedWrite(error) }
            context.fireErrorCaught(error)
        }
        if state == .idle || state == .forwarding, inputClosedHeld {
            inputClosedHeld = false
            context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            return
        }
        // (In `.collecting` the rest of that write's body is still to be read.)
        if readHeld, context.channel.isWritable {
            readHeld = false
            context.read()
        }
    }

    /// The write's own request is malformed: it is not served, the router answers the error, and
    /// that answer keeps the write's request id and is counted (``writeDecoderErrorAnswer``).
    private func dropMalformedWrite(_ error: any Error) {
        if error is HTTPParserError { decoderErrorWrite = pending }
        pending = nil
        state = .idle
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError { decoderError = error }
        switch state {
        case .closing:
            // Bytes after a `Connection: close` request (the decoder refuses them): nothing more is served.
            return
        case .collecting:
            dropMalformedWrite(error)
        case .answering:
            errorHeld = errorHeld ?? error
            return
        case .idle, .forwarding:
            if !held.isEmpty {
                errorHeld = errorHeld ?? error
                return
            }
        }
        context.fireErrorCaught(error)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Hummingbird's connection handler (after this one) closes an idle connection when the
        // server shuts down; a write in progress must be answered first.
        if event is ChannelShouldQuiesceEvent {
            // A body still arriving (a write's, or a batch's for the router) gets a few seconds,
            // not as long as a stalled client likes: nothing of it went to Kafka, and the client
            // sees the connection close. (Hummingbird would wait for a batch's as long as the idle
            // timeout allows.)
            if state == .collecting || state == .forwarding { closeIfStill(state, after: Self.bodyGraceOnShutdown, context: context) }
            if state == .collecting || state == .answering {
                quiesceHeld = true
                return
            }
            quiescing = true
            held.removeAll()  // not started: never served
        }
        // A half-closed client still gets the answers to what it sent.
        if case ChannelEvent.inputClosed = event, state == .collecting || state == .answering || !held.isEmpty {
            inputClosedHeld = true
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Closes the connection after `delay` if it is still in `state` then.
    private func closeIfStill(_ state: State, after delay: TimeAmount, context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: delay) {
            let handler = loopBound.value
            if handler.state == state, let context = handler.context {
                handler.state = .closing
                context.close(promise: nil)
            }
        }
    }

    // MARK: Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var data = data
        let part = unwrapOutboundIn(data)
        if case var .head(response) = part {
            if unansweredForwarded == 0, response.status == .badRequest, let error = decoderError {
                // Hummingbird's answer to a request the decoder could not read: an empty 400.
                // Written in the API's form instead (a JSON error, a request id), 431 for
                // oversized headers.
                decoderError = nil
                return writeDecoderErrorAnswer(error, context: context, promise: promise)
            }
            if state == .forwarding, unansweredForwarded == 1, response.status != .continue {
                // Answered before its body ended (a 401, 404 or 405 needs no body): the rest is
                // not read, the connection closes, as on the write routes. Hummingbird would read
                // and drop whatever the client sent, without end.
                response.headerFields[.connection] = "close"
                data = wrapOutboundOut(.head(response))
                state = .closing
            }
            if response.headerFields[.connection]?.lowercased() == "close" { responseCloses = true }
        }
        guard case .end = part else {
            context.write(data, promise: promise)
            return
        }
        // The router answered a request it was handed (or a decoder error, which is not counted).
        unansweredForwarded = max(0, unansweredForwarded - 1)
        lastActivity = .now()
        if responseCloses || (closeAfterForwarded && unansweredForwarded == 0) {
            // That answer ends the connection: what waits behind it is not served, and the
            // connection closes once the answer is out (Hummingbird only closes it when the
            // request said exactly `close`; after a 413 it kept reading and answered nothing).
            responseCloses = false
            closeAfterForwarded = true
            state = .closing
            held.removeAll()
            let channel = context.channel
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.whenComplete { result in
                promise?.completeWith(result)
                channel.close(promise: nil)
            }
            context.write(data, promise: written)
            return
        }
        context.write(data, promise: promise)
        if unansweredForwarded == 0, !held.isEmpty {
            // Not from inside the router's write: serve the waiting parts on the next tick.
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            context.eventLoop.execute {
                let handler = loopBound.value
                if let context = handler.context { handler.serveHeld(context: context) }
            }
        }
    }

    private func writeDecoderErrorAnswer(_ error: any Error, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        // (NIO counts the request line towards the header limit, so a long URL is refused here too.)
        let refusal = (error as? HTTPParserError) == .headerOverflow
            ? APIError(.init(code: 431, reasonPhrase: "Request Header Fields Too Large"), "request line or headers are too large")
            : APIError(.badRequest, "malformed HTTP request: \(error)")
        var answer = refusal.answer
        let write = decoderErrorWrite
        decoderErrorWrite = nil
        answer.headers[EventAPI.requestIDField] = write?.requestID ?? api.requestID([:])
        if let write {
            api.record(route: write.route, method: write.method, status: answer.status, requestID: write.requestID, started: write.started)
        }
        answer.headers[.contentLength] = String(answer.body.count)
        answer.headers[.date] = HTTPDate.now()
        answer.headers[.server] = serverName
        answer.headers[.connection] = "close"
        responseCloses = true  // the decoder cannot find the next request: the `.end` closes
        context.write(wrapOutboundOut(.head(HTTPResponse(status: answer.status, headerFields: answer.headers))), promise: promise)
        context.write(wrapOutboundOut(.body(context.channel.allocator.buffer(bytes: answer.body))), promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        // No more reading while requests wait (TCP then holds the client back).
        // Nor while answers wait to be sent: a client that pipelines without reading them would
        // otherwise pile them up here.
        if state == .answering || state == .closing || !held.isEmpty || !context.channel.isWritable {
            readHeld = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        lastActivity = .now()
        if context.channel.isWritable, readHeld, state != .answering, state != .closing, held.isEmpty {
            readHeld = false
            context.read()
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Routes

    static func isSingleWrite(_ route: Route, _ method: HTTPRequest.Method) -> Bool {
        switch (route.kind, method) {
        case (.createEvent, .post), (.event, .put), (.event, .delete): return true
        default: return false
        }
    }

    /// Whether the request's `Connection` header lists `close` (any case, among other tokens).
    static func asksToClose(_ head: HTTPRequest) -> Bool {
        guard let value = head.headerFields[.connection] else { return false }  // (most requests: no header)
        return value.split(separator: ",").contains { $0.trimmingCharacters(in: .whitespaces).lowercased() == "close" }
    }

    static func expectsContinue(_ head: HTTPRequest) -> Bool {
        head.headerFields[.expect]?.lowercased() == "100-continue"
    }

    static func pathWithoutQuery(_ target: String) -> Substring {
        target.utf8.firstIndex(of: UInt8(ascii: "?")).map { target[..<$0] } ?? Substring(target)
    }
}

extension EventAPI {
    /// Hummingbird's HTTP/1.1 server with the fast write path (``FastWriteHandler``) in front of the router.
    public func httpServer(serverName: String) -> HTTPServerBuilder {
        .http1(configuration: .init(additionalChannelHandlers: [FastWriteHandler(api: self, serverName: serverName)]))
    }
}

/// HTTP/1.0's default of closing the connection after each answer, which the HTTP types drop:
/// Hummingbird turns requests into swift-http-types, which carry no version, so an HTTP/1.0
/// request without `Connection: keep-alive` (ApacheBench without `-k`) was kept open after its
/// answer, and a client reading to the end of the connection waited for the idle timeout (60 s).
/// Ahead of that conversion this says `Connection: close` for such a request, which the router
/// and the fast write path honour, and drops an HTTP/1.0 request's `Expect`, which would
/// otherwise get a `100 Continue` such a client does not expect.
final class HTTP10ConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case var .head(head) = unwrapInboundIn(data), head.version == .http1_0 {
            if !head.isKeepAlive { head.headers.replaceOrAdd(name: "connection", value: "close") }
            // No 1xx for an HTTP/1.0 client (RFC 9110, sections 10.1.1 and 15.2): its expectation is ignored.
            head.headers.remove(name: "expect")
            context.fireChannelRead(wrapInboundOut(.head(head)))
        } else {
            context.fireChannelRead(data)
        }
    }
}
