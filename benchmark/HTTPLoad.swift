import Histogram
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// One keep-alive HTTP/1.1 connection that sends a request and waits for its response.
final class LoadConnection: @unchecked Sendable {
    let channel: Channel
    let handler: ResponseCollector
    let host: String

    private init(channel: Channel, handler: ResponseCollector, host: String) {
        self.channel = channel
        self.handler = handler
        self.host = host
    }

    static func connect(host: String, port: Int, group: EventLoopGroup) async throws -> LoadConnection {
        let handler = ResponseCollector()
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(host: host, port: port).get()
        return LoadConnection(channel: channel, handler: handler, host: "\(host):\(port)")
    }

    /// Longest wait for one answer: a server that stops answering fails the phase instead of
    /// holding the benchmark for ever.
    static let answerTimeout = TimeAmount.seconds(60)

    /// Sends a request and returns the status and body of its response. Fails when the connection
    /// is closed (before or after the request is written), the write fails, or no answer comes
    /// within ``answerTimeout``.
    func request(_ method: HTTPMethod, _ path: String, body: ByteBuffer? = nil, contentEncoding: String? = nil) async throws -> (status: Int, body: ByteBuffer) {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: host)
        if let body {
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(body.readableBytes))
            if let contentEncoding { headers.add(name: "Content-Encoding", value: contentEncoding) }
        }
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)
        let promise = channel.eventLoop.makePromise(of: (Int, ByteBuffer).self)
        let handler = self.handler
        let channel = self.channel
        channel.eventLoop.execute {
            // A keep-alive connection the server closed between two requests: its close already
            // failed what was pending, and nothing would ever answer this one.
            guard handler.isActive else { return promise.fail(ResponseCollector.ConnectionClosed()) }
            handler.pending.append(promise)
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            if let body { channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil) }
            channel.writeAndFlush(HTTPClientRequestPart.end(nil)).whenFailure { error in handler.failAll(error, channel: channel) }
            let timeout = channel.eventLoop.scheduleTask(in: Self.answerTimeout) {
                handler.failAll(ResponseCollector.AnswerTimedOut(), channel: channel)
            }
            promise.futureResult.whenComplete { _ in timeout.cancel() }
        }
        let (status, responseBody) = try await promise.futureResult.get()
        return (status, responseBody)
    }

    func close() async { try? await channel.close() }
}

/// Completes one promise per response, in order (HTTP/1.1 keeps responses in request order).
final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    struct ConnectionClosed: Error {}
    struct AnswerTimedOut: Error {}
    var pending = CircularBuffer<EventLoopPromise<(Int, ByteBuffer)>>()
    /// False once the channel closed (read and written on its event loop only).
    private(set) var isActive = true
    private var status = 0
    private var body = ByteBuffer()

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .head(head):
            status = Int(head.status.code)
            body.clear()
        case var .body(part):
            body.writeBuffer(&part)
        case .end:
            if let promise = pending.popFirst() { promise.succeed((status, body)) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        failAll(error, channel: context.channel)
    }

    func channelInactive(context: ChannelHandlerContext) {
        isActive = false
        failAll(ConnectionClosed(), channel: context.channel)
    }

    /// Fails every request waiting on this connection and closes it (its answers can no longer be
    /// matched to requests). On the event loop.
    func failAll(_ error: Error, channel: Channel) {
        while let promise = pending.popFirst() { promise.fail(error) }
        channel.close(promise: nil)
    }
}

/// A shared counter for concurrent workers.
final class AtomicCounter: Sendable {
    private let atomic = Atomic<Int>(0)
    /// Adds `amount` and returns the new value.
    @discardableResult
    func increment(by amount: Int = 1) -> Int { atomic.add(amount, ordering: .relaxed).newValue }
    var value: Int { atomic.load(ordering: .relaxed) }
}

/// Latencies and status codes of one phase.
struct PhaseResult: Sendable {
    var name: String
    var requests: Int
    var events: Int
    var seconds: Double
    /// Request latencies in microseconds (3 significant digits; grows to whatever is recorded).
    var latencies: Histogram<UInt64>
    var statusCounts: [Int: Int]
    var transportErrors: Int
    /// CPU seconds the server process used during the phase, when it runs on this machine.
    var serverCPUSeconds: Double? = nil
    /// The share of the whole machine's CPU that stayed idle during the phase (Linux only).
    var machineIdleFraction: Double? = nil
    /// The mean time the API waited for the broker's acknowledgement per request, from its metrics.
    var brokerWaitMilliseconds: Double? = nil
    /// The only status that counts as done (202, or 207 for batches); others are failures.
    var expectedStatus = 202
    /// When the phase's last answer with `expectedStatus` arrived.
    var lastAnswer: ContinuousClock.Instant? = nil

    var eventsPerSecond: Double { Double(events) / max(seconds, 1e-9) }
    var requestsPerSecond: Double { Double(requests) / max(seconds, 1e-9) }
    var serverCPUMicrosecondsPerRequest: Double? { serverCPUSeconds.map { $0 * 1e6 / Double(max(requests, 1)) } }

    /// What went wrong with the phase's answers (any status but the expected one, transport errors), or nil.
    var answerFailure: String? {
        let others = statusCounts.filter { $0.key != expectedStatus }
        guard transportErrors > 0 || !others.isEmpty else { return nil }
        return "\(name): answers other than \(expectedStatus) \(others), transport errors \(transportErrors)"
    }

    /// Runs `phase` and records the CPU time process `pid` used meanwhile (none without a pid),
    /// how much of the machine stayed idle, and, given the API's metrics, its mean wait for the broker.
    static func measuringCPU(server pid: Int32?, brokerWait: BrokerWaitReader? = nil,
                             _ phase: () async throws -> PhaseResult) async rethrows -> PhaseResult {
        let waitBefore = await brokerWait?.totals()
        let before = pid.flatMap(ProcessCPU.seconds)
        let machineBefore = MachineCPU.sample()
        var result = try await phase()
        if let before, let after = pid.flatMap(ProcessCPU.seconds) { result.serverCPUSeconds = after - before }
        if let machineBefore { result.machineIdleFraction = MachineCPU.sample()?.idleFraction(since: machineBefore) }
        if let waitBefore, let waitAfter = await brokerWait?.totals(), waitAfter.count > waitBefore.count {
            result.brokerWaitMilliseconds = 1000 * (waitAfter.seconds - waitBefore.seconds) / (waitAfter.count - waitBefore.count)
        }
        return result
    }

    var meanMilliseconds: Double { latencies.mean / 1000 }

    /// The latency at fraction `p` (0...1) of the requests, in milliseconds; `p` = 1 is the
    /// largest recorded.
    func percentile(_ p: Double) -> Double {
        guard latencies.totalCount > 0 else { return 0 }
        let microseconds = p >= 1 ? latencies.maxRecorded : latencies.valueAtPercentile(p * 100)
        return Double(microseconds) / 1000
    }
}

/// Reads one kind of the API's `kafka_send_duration_seconds` histogram (observations and their
/// total seconds) from its /metrics page, so that a phase's answer time splits into the wait for
/// the broker's acknowledgement and the rest.
struct BrokerWaitReader: Sendable {
    let host: String
    let port: Int
    let group: EventLoopGroup
    /// `event` (single-event writes) or `batch` (`POST /events/batch` requests).
    let kind: String

    func totals() async -> (count: Double, seconds: Double)? {
        guard let connection = try? await LoadConnection.connect(host: host, port: port, group: group) else { return nil }
        let answer = try? await connection.request(.GET, "/metrics")
        await connection.close()
        guard let (status, body) = answer, status == 200 else { return nil }
        let lines = String(buffer: body).split(separator: "\n")
        func value(_ name: String) -> Double? {
            let prefix = "\(name){kind=\"\(kind)\"} "
            return lines.first { $0.hasPrefix(prefix) }.flatMap { Double($0.dropFirst(prefix.count)) }
        }
        guard let count = value("kafka_send_duration_seconds_count"), let seconds = value("kafka_send_duration_seconds_sum") else { return nil }
        return (count, seconds)
    }
}

/// Drives `count` requests over `concurrency` keep-alive connections; `makeRequest(i)` gives the
/// i-th request (its body sent with `contentEncoding` when given), `onResponse(i, status, body)`
/// sees each answer (e.g. to collect ids).
func runLoad(name: String, host: String, port: Int, concurrency: Int, count: Int, eventsPerRequest: Int = 1, expectedStatus: Int = 202,
             contentEncoding: String? = nil, group: EventLoopGroup, progress: Bool,
             makeRequest: @escaping @Sendable (Int) -> (HTTPMethod, String, ByteBuffer?),
             onResponse: @escaping @Sendable (Int, Int, ByteBuffer) -> Void = { _, _, _ in }) async throws -> PhaseResult {
    let next = AtomicCounter()
    let done = AtomicCounter()
    let started = ContinuousClock.now
    let progressTask = progress ? Task {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(250))
            let finished = done.value
            let elapsed = Double((ContinuousClock.now - started).components.seconds) + Double((ContinuousClock.now - started).components.attoseconds) / 1e18
            let line = "\r\u{1B}[K\(name): \(finished)/\(count) requests, \(Int(Double(finished * eventsPerRequest) / max(elapsed, 0.001))) events/s"
            FileHandleStderr.write(line)
        }
    } : nil
    let results = try await withThrowingTaskGroup(of: (Histogram<UInt64>, [Int: Int], Int, ContinuousClock.Instant?).self) { tasks in
        for _ in 0..<max(1, min(concurrency, count)) {
            tasks.addTask {
                var latencies = Histogram<UInt64>()
                var statuses: [Int: Int] = [:]
                var errors = 0
                var lastAnswer: ContinuousClock.Instant?
                var connection = try await LoadConnection.connect(host: host, port: port, group: group)
                while true {
                    let index = next.increment() - 1
                    guard index < count else { break }
                    let (method, path, body) = makeRequest(index)
                    let sent = ContinuousClock.now
                    do {
                        let (status, responseBody) = try await connection.request(method, path, body: body, contentEncoding: contentEncoding)
                        let elapsed = ContinuousClock.now - sent
                        latencies.record(UInt64(elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000))
                        statuses[status, default: 0] += 1
                        if status == expectedStatus { lastAnswer = ContinuousClock.now }
                        onResponse(index, status, responseBody)
                    } catch {
                        errors += 1
                        await connection.close()
                        connection = try await LoadConnection.connect(host: host, port: port, group: group)
                    }
                    _ = done.increment()
                }
                await connection.close()
                return (latencies, statuses, errors, lastAnswer)
            }
        }
        var all = (Histogram<UInt64>(), [Int: Int](), 0, ContinuousClock.Instant?.none)
        for try await (latencies, statuses, errors, lastAnswer) in tasks {
            all.0.add(latencies)
            all.1.merge(statuses, uniquingKeysWith: +)
            all.2 += errors
            if let lastAnswer { all.3 = max(all.3 ?? lastAnswer, lastAnswer) }
        }
        return all
    }
    progressTask?.cancel()
    if progress { FileHandleStderr.write("\r\u{1B}[K") }
    let elapsed = ContinuousClock.now - started
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let accepted = results.1[expectedStatus] ?? 0
    return PhaseResult(name: name, requests: count, events: accepted * eventsPerRequest, seconds: seconds,
                       latencies: results.0, statusCounts: results.1, transportErrors: results.2, expectedStatus: expectedStatus,
                       lastAnswer: results.3)
}

import Foundation

enum FileHandleStderr {
    static func write(_ text: String) { FileHandle.standardError.write(Data(text.utf8)) }
}
