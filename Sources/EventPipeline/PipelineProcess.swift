import Foundation
import Logging

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
        return (configuration, Logger(label: name))
    }
}
