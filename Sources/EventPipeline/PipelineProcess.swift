import Foundation
import Logging

/// The start of both executables: logging to stderr at `LOG_LEVEL`, then the configuration from
/// the environment, or exit status 2 with a message naming the bad variable.
public enum PipelineProcess {
    public static func start(_ name: String) -> (PipelineConfiguration, Logger) {
        LoggingSystem.bootstrap { label in
            StandardErrorLogHandler(label: label,
                                    logLevel: Logger.Level(rawValue: ProcessInfo.processInfo.environment["LOG_LEVEL"] ?? "info") ?? .info)
        }
        do {
            return (try PipelineConfiguration(environment: ProcessInfo.processInfo.environment), Logger(label: name))
        } catch {
            FileHandle.standardError.write(Data("\(name): invalid configuration: \(error)\n".utf8))
            exit(2)
        }
    }
}
