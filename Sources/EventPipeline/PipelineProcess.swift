import Dispatch
import Foundation
import Logging
import Synchronization

/// The start of both executables: the configuration from the environment (or exit status 2 with a
/// message naming the bad variable), then logging to stderr at `LOG_LEVEL` in `LOG_FORMAT`.
public enum PipelineProcess {
    public static func start(_ name: String) -> (PipelineConfiguration, Logger) {
        let configuration: PipelineConfiguration
        do {
            configuration = try PipelineConfiguration(environment: ProcessInfo.processInfo.environment)
        } catch {
            FileHandle.standardError.write(Data("\(name): invalid configuration: \(error)\n".utf8))
            exit(2)
        }
        let level = Logger.Level(rawValue: ProcessInfo.processInfo.environment["LOG_LEVEL"] ?? "info") ?? .info
        LoggingSystem.bootstrap { label in
            StandardErrorLogHandler(label: label, logLevel: level, format: configuration.logFormat)
        }
        let logger = Logger(label: name)
        exitOnSecondSignal(logger: logger)
        return (configuration, logger)
    }

    /// The first SIGTERM or SIGINT starts the graceful shutdown (the service group's); a second
    /// one ends the process at once, as operators expect of a second Ctrl-C or `kill`. Without it
    /// only SIGKILL ended a shutdown that waits, for up to a minute, on a ClickHouse or broker that
    /// does not answer. Nothing is lost by it: a write not yet acknowledged got no 202 (the client
    /// sends it again), and a batch not yet committed is consumed again.
    private static func exitOnSecondSignal(logger: Logger) {
        let received = Mutex(0)
        for number in [SIGTERM, SIGINT] {
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                let count = received.withLock { count in
                    count += 1
                    return count
                }
                guard count >= 2 else { return }
                logger.warning("a second signal: exiting at once, without finishing the shutdown", metadata: ["signal": "\(number)"])
                exit(128 + number)
            }
            source.resume()
            signalSources.append(source)
        }
    }

    /// Kept for the life of the process (a released source stops delivering); written once, at
    /// the start, before any other thread looks.
    nonisolated(unsafe) private static var signalSources: [DispatchSourceSignal] = []
}
