import ArgumentParser
import EventPipeline
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

/// The ceiling of `event-bench pipeline`: a Hummingbird endpoint that reads the body of
/// `POST /event` and validates it as the API does, and answers 202 without doing anything else.
enum BareEndpoint {
    static func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.post("event") { request, _ -> Response in
            let buffer = try await request.body.collect(upTo: 1 << 20)
            let json = try JSONParser.parse(Array(buffer.readableBytesView))
            let create = try EventValidation.create(json, receivedAtMilliseconds: 0)
            return accepted(create.id)
        }
        // The same for an update's body and a delete (informational ceilings per request kind).
        router.put("event/:id") { request, context -> Response in
            let id = try eventID(context)
            let buffer = try await request.body.collect(upTo: 1 << 20)
            _ = try EventValidation.patch(try JSONParser.parse(Array(buffer.readableBytesView)))
            return accepted(id)
        }
        router.delete("event/:id") { _, context -> Response in accepted(try eventID(context)) }
        return router
    }

    static func eventID(_ context: BasicRequestContext) throws -> UUID {
        guard let text = context.parameters.get("id"), let id = UUID(text: text) else { throw HTTPError(.badRequest) }
        return id
    }

    static func accepted(_ id: UUID) -> Response {
        Response(status: .accepted, headers: [.contentType: "application/json"],
                 body: .init(byteBuffer: ByteBuffer(string: #"{"event_id":"\#(id.lowercasedString)","status":"accepted"}"#)))
    }

    /// A service group serving the endpoint on 127.0.0.1:`port` (0: a free port) until a graceful
    /// shutdown; `onBound` gets the port once the server accepts connections.
    static func makeServer(port: Int, gracefulShutdownSignals: [UnixSignal], onBound: @escaping @Sendable (Int) -> Void) -> ServiceGroup {
        var logger = Logger(label: "bare-endpoint")
        logger.logLevel = .warning
        let app = Application(
            router: makeRouter(), configuration: .init(address: .hostname("127.0.0.1", port: port)),
            onServerRunning: { channel in onBound(channel.localAddress?.port ?? 0) },
            logger: logger)
        return ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: gracefulShutdownSignals, logger: logger))
    }
}

/// `event-bench bare-endpoint`: the ceiling's server in a process of its own, as the API runs, so
/// that the ceiling and the API differ only in what the handler does, and so that its CPU per
/// request can be read from /proc beside the API's. (Served from the load generator's process
/// instead, `--ceiling-in-process`, it measured the same requests/s here: 45 000-47 000.)
struct BareEndpointCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bare-endpoint",
        abstract: "Serves the bare endpoint that `pipeline` measures as its ceiling; prints the port, stops on SIGTERM.",
        shouldDisplay: false)

    @Option(help: "Port on 127.0.0.1 (0: any free port).") var port = 0

    func run() async throws {
        let server = BareEndpoint.makeServer(port: port, gracefulShutdownSignals: [.sigterm, .sigint]) { bound in
            // The parent reads this line to learn where to connect.
            FileHandle.standardOutput.write(Data("listening \(bound)\n".utf8))
        }
        try await server.run()
    }
}

/// A `bare-endpoint` child process of this executable.
final class BareEndpointProcess {
    let process = Process()
    let port: Int

    init() throws {
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = ["bare-endpoint"]
        process.standardOutput = output
        try process.run()
        // One line, "listening <port>", once the server is bound; end of file if it failed to start.
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("listening "), let port = Int(text.dropFirst("listening ".count).prefix { $0.isNumber }), port > 0 else {
            process.terminate()
            process.waitUntilExit()
            throw ValidationError("the bare endpoint did not start (exit status \(process.terminationStatus), output \(text.debugDescription))")
        }
        self.port = port
    }

    func stop() {
        process.terminate()
        process.waitUntilExit()
    }
}
