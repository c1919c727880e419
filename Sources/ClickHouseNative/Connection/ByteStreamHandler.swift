#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOTLS

/// Bridges a channel's inbound bytes to one async reader, pulling: the channel runs with
/// `autoRead` off and reads from the socket only when the reader asks for more. So a slow consumer
/// of result blocks slows the server down instead of buffering the whole result in memory.
/// All state is confined to the channel's event loop.
final class ByteStreamHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    private var pending = CircularBuffer<ByteBuffer>()
    private var waiter: EventLoopPromise<ByteBuffer?>?
    /// The first error of the channel (the socket's, or TLS's), which ended it.
    private(set) var failure: Error?
    private var isInactive = false
    private var context: ChannelHandlerContext?
    private var timeoutTask: Scheduled<Void>?
    /// While a TLS handshake runs, the handler keeps reading on its own: the handshake needs the
    /// server's replies before any request bytes can go out.
    private var handshaking: Bool
    /// The socket's receive low-water mark (`SO_RCVLOWAT`) as last set; only on plaintext
    /// connections, where socket bytes are the protocol's bytes.
    private var lowWater = 1
    private let setsLowWater: Bool
    /// Most bytes a read waits for at once.
    static let maximumLowWater = 1 << 20

    init(expectsTLSHandshake: Bool = false) {
        self.handshaking = expectsTLSHandshake
        self.setsLowWater = !expectsTLSHandshake
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if handshaking && context.channel.isActive { context.read() }
    }

    func channelActive(context: ChannelHandlerContext) {
        if handshaking { context.read() }
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent { handshaking = false }
        context.fireUserInboundEventTriggered(event)
    }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        if answerDeadline != nil { answerStarted = true }
        if let waiter {
            self.waiter = nil
            timeoutTask?.cancel()
            waiter.succeed(buffer)
        } else {
            pending.append(buffer)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // A read that delivered nothing to us (TLS records still being assembled, a handshake in
        // progress) must not stall a waiting reader: ask for more.
        if waiter != nil || handshaking { context.read() }
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        isInactive = true
        answerDeadline?.cancel()
        answerDeadline = nil
        finishWaiter()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if failure == nil { failure = error }
        finishWaiter()
        context.close(promise: nil)
    }

    private func finishWaiter() {
        guard let waiter else { return }
        self.waiter = nil
        timeoutTask?.cancel()
        if let failure { waiter.fail(failure) } else { waiter.succeed(nil) }
    }

    /// The next chunk of bytes, nil at the end of the stream. Must be called on the event loop.
    /// Fails with a timeout (and closes the channel) when nothing arrives within `timeout`.
    ///
    /// `wanted` is how many bytes the reader needs before it can get on (the rest of a large
    /// column, a compressed frame): the socket then wakes the event loop only once that many have
    /// arrived (up to ``maximumLowWater``), instead of for every few dozen kilobytes while a fast
    /// reader waits on a slower server. The reader must really need them all: the server sends
    /// nothing more until they are taken.
    func nextChunk(eventLoop: EventLoop, timeout: TimeAmount, wanted: Int = 1) -> EventLoopFuture<ByteBuffer?> {
        eventLoop.preconditionInEventLoop()
        if let buffer = pending.popFirst() { return eventLoop.makeSucceededFuture(buffer) }
        if let failure { return eventLoop.makeFailedFuture(failure) }
        if isInactive { return eventLoop.makeSucceededFuture(nil) }
        guard waiter == nil, let context else {
            return eventLoop.makeFailedFuture(ClickHouseConnectionError.closed("concurrent reads on one connection"))
        }
        let promise = eventLoop.makePromise(of: ByteBuffer?.self)
        waiter = promise
        timeoutTask = eventLoop.scheduleTask(in: timeout) { [weak self] in
            guard let self, let waiter = self.waiter else { return }
            self.waiter = nil
            let error = ClickHouseConnectionError.timeout("no data from the server for \(timeout.milliseconds) ms")
            self.failure = error
            waiter.fail(error)
            self.context?.close(promise: nil)
        }
        setLowWater(wanted, context: context)
        context.read()
        return promise.futureResult
    }

    /// Asks the socket for whatever the server has sent, without waiting for it: what arrives is
    /// kept for ``takeAvailable()`` or the next ``nextChunk``. Must be called on the event loop.
    func readAhead() {
        guard waiter == nil, failure == nil, !isInactive, let context else { return }
        setLowWater(1, context: context)
        context.read()
    }

    /// Ends the connection with `error` unless the whole answer is here (``answerComplete()``) within
    /// `timeout` (after TLS, when there is TLS); see ``answerDeadlinePassed(_:)``. Must be called on
    /// the event loop.
    ///
    /// Asks the socket for them at once, too: with `autoRead` off nothing is read until asked,
    /// and the task that would ask (``nextChunk``) may wait for a thread of the concurrency pool.
    /// In the test suite that wait passed 30 s while CPU-bound tests ran, and a server that had
    /// answered within milliseconds was reported silent.
    func expectAnswer(within timeout: TimeAmount, orExpireWith error: ClickHouseConnectionError) {
        answerDeadline?.cancel()
        answerStarted = false
        guard let eventLoop = context?.eventLoop else { return }
        answerDeadline = eventLoop.scheduleTask(in: timeout) { [weak self] in self?.answerDeadlinePassed(error) }
        readAhead()
    }
    private var answerDeadline: Scheduled<Void>?
    /// Bytes of the expected answer arrived.
    private var answerStarted = false

    /// The whole answer is here (the reader decoded it): its deadline ends. Must be called on the event loop.
    func answerComplete() {
        answerDeadline?.cancel()
        answerDeadline = nil
    }

    /// The deadline ends the connection when the server sent nothing, or while the reader waits
    /// for the rest: a server that sends a first byte and then trickles or stops is not waited on
    /// past it. Bytes that arrived and wait for a reader whose task is slow to run (every
    /// cooperative thread busy) are not the server's delay: looked at again shortly.
    private func answerDeadlinePassed(_ error: ClickHouseConnectionError) {
        answerDeadline = nil
        guard answerStarted, waiter == nil, failure == nil, !isInactive, let eventLoop = context?.eventLoop else { return expire(error) }
        answerDeadline = eventLoop.scheduleTask(in: .milliseconds(100)) { [weak self] in self?.answerDeadlinePassed(error) }
    }

    /// Ends the connection with `error` (a deadline passed while the handshake ran): a waiting
    /// reader gets it, and so does ``expiry``. Must be called on the event loop.
    func expire(_ error: ClickHouseConnectionError) {
        guard failure == nil, !isInactive else { return }
        failure = error
        expiry = error
        finishWaiter()
        context?.close(promise: nil)
    }

    /// The error ``expire(_:)`` ended the connection with, if it did.
    private(set) var expiry: ClickHouseConnectionError?

    /// A chunk already read, if any. Must be called on the event loop.
    func takeAvailable() -> ByteBuffer? {
        pending.popFirst()
    }

    private func setLowWater(_ wanted: Int, context: ChannelHandlerContext) {
        let mark = min(max(wanted, 1), Self.maximumLowWater)
        guard setsLowWater, mark != lowWater, let options = context.channel.syncOptions else { return }
        do {
            try options.setOption(ChannelOptions.socketOption(NIOBSDSocket.Option(rawValue: SO_RCVLOWAT)), value: mark)
            lowWater = mark
        } catch {
            // Not fatal: reads just wake up more often.
        }
    }
}
