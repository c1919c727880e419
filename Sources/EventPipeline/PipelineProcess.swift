import Dispatch
import Foundation
import Logging
import ServiceLifecycle
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

    /// Runs the program's service group, which the first SIGTERM or SIGINT shuts down gracefully.
    public static func run(_ group: ServiceGroup) async throws {
        running.withLock { $0 = group }
        try await group.run()
    }

    /// The first SIGTERM or SIGINT starts the graceful shutdown; a second one ends the process at
    /// once, as operators expect of a second Ctrl-C or `kill`. Without it only SIGKILL ended a
    /// shutdown that waits, for up to a minute, on a ClickHouse or broker that does not answer.
    /// Nothing is lost by it: a write not yet acknowledged got no 202 (the client sends it again),
    /// and a batch not yet committed is consumed again. Before the group runs, a signal ends the
    /// process as it would without a handler (nothing is in flight yet).
    private static func exitOnSecondSignal(logger: Logger) {
        // Dispatch's sources get the signals once their default action (ending the process) is
        // off; the group does the same when it runs.
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        let received = Mutex(0)
        for number in [SIGTERM, SIGINT] {
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                let count = received.withLock { count in
                    count += 1
                    return count
                }
                guard count >= 2 else {
                    // The group's own handler sees this signal too once it runs; triggering here
                    // as well covers one that came before the group installed it.
                    guard let group = running.withLock({ $0 }) else {
                        logger.info("signal before the start completed: exiting", metadata: ["signal": "\(number)"])
                        _exit(128 + number)
                    }
                    Task { await group.triggerGracefulShutdown() }
                    return
                }
                logger.warning("a second signal: exiting at once, without finishing the shutdown", metadata: ["signal": "\(number)"])
                // _exit, not exit: other threads run on, and exit's handlers are not safe against
                // them (the log line went out with write(2) already).
                _exit(128 + number)
            }
            source.resume()
            signalSources.append(source)
        }
    }

    private static let running = Mutex<ServiceGroup?>(nil)

    /// Kept for the life of the process (a released source stops delivering); written once, at
    /// the start, before any other thread looks.
    nonisolated(unsafe) private static var signalSources: [DispatchSourceSignal] = []
}
