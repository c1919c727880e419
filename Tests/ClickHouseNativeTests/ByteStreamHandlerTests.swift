import NIOCore
import NIOEmbedded
import Testing
@testable import ClickHouseNative

/// The channel handler between the socket and the connection's reader, on an embedded channel.
@Suite struct ByteStreamHandlerTests {
    /// Counts the reads the handlers ask the socket for (`autoRead` is off: nothing is read unasked).
    final class ReadCounter: ChannelOutboundHandler, @unchecked Sendable {
        typealias OutboundIn = Any
        var reads = 0
        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }
    }

    /// Found by the test suite: the handshake's deadline timed the reader's task, not the server.
    /// The server's Hello was read only once the connecting task asked, and with the concurrency
    /// pool busy for over 30 s the deadline expired although the server had answered at once.
    @Test func theHandshakeDeadlineAsksForTheAnswerAndEndsWithItsFirstBytes() throws {
        let counter = ReadCounter()
        let handler = ByteStreamHandler()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(counter)
        try channel.pipeline.syncOperations.addHandler(handler)
        let expired = ClickHouseConnectionError.timeout("no handshake")
        handler.expectAnswer(within: .seconds(30), orExpireWith: expired)
        #expect(counter.reads == 1, "the answer was not asked for")
        try channel.writeInbound(ByteBuffer(bytes: [0, 1, 2]))
        channel.embeddedEventLoop.advanceTime(by: .seconds(31))
        #expect(handler.expiry == nil, "the deadline outlived the answer")
        #expect(handler.takeAvailable() == ByteBuffer(bytes: [0, 1, 2]))
        _ = try? channel.finish()
    }

    @Test func aSilentPeerStillExpires() throws {
        let handler = ByteStreamHandler()
        let channel = EmbeddedChannel(handler: handler)
        let expired = ClickHouseConnectionError.timeout("no handshake")
        handler.expectAnswer(within: .seconds(30), orExpireWith: expired)
        channel.embeddedEventLoop.advanceTime(by: .seconds(31))
        #expect(handler.expiry == expired)
        _ = try? channel.finish()
    }
}
