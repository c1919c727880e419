import Foundation
import Logging
import Synchronization

/// How log lines are written (`LOG_FORMAT`).
public enum LogFormat: String, Sendable, Equatable {
    /// `StreamLogHandler`'s line: local time, level, label, `key=value` metadata, source, message.
    case text
    /// One JSON object per line, for log collectors: `time` (UTC, milliseconds), `level`,
    /// `logger`, `source`, `message`, and `metadata` as an object when there is any.
    case json
}

/// Log lines on stderr in `StreamLogHandler`'s format or as JSON, with one difference that matters
/// per request: metadata is turned into text only when a line is written. Hummingbird sets a
/// request id on the logger of every request, and `StreamLogHandler` re-renders all metadata on
/// each such change, which cost the API about 4% of its CPU although nothing was logged.
public struct StandardErrorLogHandler: LogHandler {
    public let label: String
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public let format: LogFormat

    public init(label: String, logLevel: Logger.Level, format: LogFormat = .text,
                metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider) {
        self.label = label
        self.logLevel = logLevel
        self.format = format
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let explicit = event.metadata { merged.merge(explicit) { _, new in new } }
        if let error = event.error {
            merged["error.message"] = "\(error)"
            merged["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        var line: [UInt8]
        switch format {
        case .text:
            let rendered = Self.render(merged)
            line = Array("\(Self.timestamp()) \(event.level)\(label.isEmpty ? "" : " ")\(label):\(rendered.map { " \($0)" } ?? "") [\(event.source)] \(event.message)\n".utf8)
        case .json:
            line = Self.jsonLine(time: Self.utcTimestamp(), level: event.level, label: label, source: event.source,
                                 message: "\(event.message)", metadata: merged)
        }
        Self.writeLine(line)
    }

    /// One line on stderr, whole. Lines are written under a lock: one write(2) per line keeps
    /// lines of several threads apart only up to PIPE_BUF bytes (4 KiB) on a pipe, and a long line
    /// (an error with a large message) written in parts could interleave with another and break
    /// a JSON line. Short writes and EINTR are continued.
    private static func writeLine(_ line: [UInt8]) {
        lineLock.withLock { _ in
            line.withUnsafeBufferPointer { buffer in
                var offset = 0
                while offset < buffer.count {
                    let written = write(STDERR_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
                    if written > 0 {
                        offset += written
                    } else if written < 0 && errno == EINTR {
                        continue
                    } else {
                        return  // stderr closed or full for good: the line is lost, the process goes on
                    }
                }
            }
        }
    }

    private static let lineLock = Mutex(())

    /// One JSON object and a newline. Metadata keys keep their names inside `metadata`, so none can
    /// collide with the line's own keys.
    static func jsonLine(time: String, level: Logger.Level, label: String, source: String, message: String,
                         metadata: Logger.Metadata) -> [UInt8] {
        var json = JSONWriter(capacity: 160 + message.utf8.count)
        json.bytes.append(UInt8(ascii: "{"))
        json.key("time", first: true)
        json.string(time)
        json.key("level")
        json.string(level.rawValue)
        json.key("logger")
        json.string(label)
        json.key("source")
        json.string(source)
        json.key("message")
        json.string(message)
        if !metadata.isEmpty {
            json.key("metadata")
            append(.dictionary(metadata), to: &json)
        }
        json.bytes += [UInt8(ascii: "}"), UInt8(ascii: "\n")]
        return json.bytes
    }

    private static func append(_ value: Logger.MetadataValue, to json: inout JSONWriter) {
        switch value {
        case let .string(text): json.string(text)
        case let .stringConvertible(convertible): json.string(convertible.description)
        case let .array(values):
            json.array(values) { json, element in append(element, to: &json) }
        case let .dictionary(pairs):
            json.bytes.append(UInt8(ascii: "{"))
            for (index, pair) in pairs.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { json.bytes.append(UInt8(ascii: ",")) }
                json.string(pair.key)
                json.bytes.append(UInt8(ascii: ":"))
                append(pair.value, to: &json)
            }
            json.bytes.append(UInt8(ascii: "}"))
        }
    }

    /// `2026-12-07T13:31:32.123Z`.
    static func utcTimestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        guard gmtime_r(&seconds, &parts) != nil else { return "<unknown>" }
        var buffer = [CChar](repeating: 0, count: 32)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S", &parts)
        let milliseconds = now.tv_nsec / 1_000_000
        let fraction = milliseconds < 10 ? "00\(milliseconds)" : milliseconds < 100 ? "0\(milliseconds)" : "\(milliseconds)"
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) + ".\(fraction)Z"
    }

    static func render(_ metadata: Logger.Metadata) -> String? {
        metadata.isEmpty ? nil : metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    }

    static func timestamp() -> String {
        var now = time(nil)
        var parts = tm()
        guard localtime_r(&now, &parts) != nil else { return "<unknown>" }
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
