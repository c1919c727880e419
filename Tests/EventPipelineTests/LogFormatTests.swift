import Logging
import Testing
@testable import EventPipeline

/// `LOG_FORMAT=json`: one JSON object per line. The live test (Tests/api/test_operations.py)
/// parses the lines a running event-api writes.
struct LogFormatTests {
    struct Port: CustomStringConvertible { var description: String { "9000/tcp" } }

    @Test func aLineIsOneJSONObject() throws {
        let line = StandardErrorLogHandler.jsonLine(
            time: "2026-12-07T13:31:32.005Z", level: .warning, label: "event-api", source: "EventPipeline",
            message: "cannot connect: \"ch\"\n\ttab \u{1}é",
            metadata: ["request_id": "r-1", "port": .stringConvertible(Port()),
                       "partitions": ["events[0]", "events[1]"], "nested": ["b": "2", "a": ["x"]]])
        #expect(line.last == UInt8(ascii: "\n"))
        #expect(!line.dropLast().contains(UInt8(ascii: "\n")))  // one line, whatever the message holds
        let value = try JSONParser.parse(Array(line.dropLast()))
        #expect(value == .object([
            ("time", .string("2026-12-07T13:31:32.005Z")), ("level", .string("warning")), ("logger", .string("event-api")),
            ("source", .string("EventPipeline")), ("message", .string("cannot connect: \"ch\"\n\ttab \u{1}é")),
            ("metadata", .object([
                ("nested", .object([("a", .array([.string("x")])), ("b", .string("2"))])),
                ("partitions", .array([.string("events[0]"), .string("events[1]")])),
                ("port", .string("9000/tcp")), ("request_id", .string("r-1")),
            ])),
        ]))
    }

    @Test func withoutMetadataThereIsNoMetadataKey() throws {
        let line = StandardErrorLogHandler.jsonLine(time: "t", level: .info, label: "", source: "s", message: "m", metadata: [:])
        #expect(String(decoding: line, as: UTF8.self) == #"{"time":"t","level":"info","logger":"","source":"s","message":"m"}"# + "\n")
    }

    @Test func utcTimestampsWithMilliseconds() {
        let stamp = StandardErrorLogHandler.utcTimestamp()
        #expect(stamp.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z/) != nil, "\(stamp)")
    }

    @Test func theFormatVariable() throws {
        #expect(try PipelineConfiguration(environment: [:]).logFormat == .text)
        #expect(try PipelineConfiguration(environment: ["LOG_FORMAT": "json"]).logFormat == .json)
        #expect(throws: ConfigurationError(variable: "LOG_FORMAT", message: "must be text or json, got 'JSON'")) {
            try PipelineConfiguration(environment: ["LOG_FORMAT": "JSON"])
        }
        #expect(throws: ConfigurationError(variable: "LOG_FORMAT", message: "must not be empty")) {
            try PipelineConfiguration(environment: ["LOG_FORMAT": ""])
        }
    }
}
