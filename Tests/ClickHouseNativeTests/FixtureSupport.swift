import Foundation
@testable import ClickHouseNative

/// The golden Native files made by Fixtures/generate_native_fixtures.py with chDB (ClickHouse 26.x).
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let directory = root.appendingPathComponent("Fixtures/native")
    static let python = root.appendingPathComponent(".venv/bin/python").path

    struct Case: Decodable, Sendable, CustomStringConvertible {
        var name: String
        var rows: Int
        var flags: [String]?
        var readback_settings: ReadbackSettings?
        var description: String { name }
        /// The session time zone the engine rendered the expected text in (Native headers may
        /// carry `DateTime` without its zone, as the Native format drops it).
        var timeZone: String? { readback_settings?.session_timezone }

        struct ReadbackSettings: Decodable, Sendable {
            var session_timezone: String?
        }
        var isLarge: Bool { flags?.contains("large") ?? false }
        var hasRawBytes: Bool { flags?.contains("bytes") ?? false }
    }

    /// Every test that takes the cases as arguments would run none of them if the manifest did not
    /// load, so a manifest that does not load stops the run instead.
    static let cases: [Case] = {
        do {
            return try JSONDecoder().decode([Case].self, from: Data(contentsOf: directory.appendingPathComponent("manifest.json")))
        } catch {
            fatalError("Fixtures/native/manifest.json: \(error)")
        }
    }()

    static var smallCases: [Case] { cases.filter { !$0.isLarge } }
    static var largeCases: [Case] { cases.filter(\.isLarge) }

    static func nativeBytes(_ fixture: Case) throws -> [UInt8] {
        if fixture.isLarge {
            let compressed = try Data(contentsOf: directory.appendingPathComponent("\(fixture.name).native.zst"))
            return try compressed.withUnsafeBytes { try ZSTDBlock.decompressFrame($0) }
        }
        return Array(try Data(contentsOf: directory.appendingPathComponent("\(fixture.name).native")))
    }

    static func text(_ name: String) throws -> String {
        try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
    }

    static func data(_ name: String) throws -> Data {
        try Data(contentsOf: directory.appendingPathComponent(name))
    }

    static func exists(_ name: String) -> Bool {
        FileManager.default.fileExists(atPath: directory.appendingPathComponent(name).path)
    }

    /// Renders blocks with String/FixedString values as upper-case hex (the `.hex.jsonl` companions).
    static func renderHex(_ blocks: [Block], timeZone: String?) -> String {
        var out = TextBuffer()
        for block in blocks {
            for row in 0..<block.rowCount {
                out += "{"
                for (index, named) in block.columns.enumerated() {
                    if index > 0 { out += "," }
                    JSONEachRow.appendString(named.name, to: &out)
                    out += ":"
                    var bytes: ArraySlice<UInt8>?
                    if let strings = named.column as? StringColumn { bytes = strings.bytes(at: row) }
                    if let fixed = named.column as? FixedStringColumn { bytes = fixed[row] }
                    if let bytes {
                        out += "\"" + bytes.map { String(format: "%02X", $0) }.joined() + "\""
                    } else {
                        JSONEachRow.appendValue(named.column, row: row, to: &out, settings: TextFormatSettings(timeZone: timeZone))
                    }
                }
                out += "}\n"
            }
        }
        return out.text
    }

    /// Runs `python Fixtures/chdb_native_to_json.py outDir files...` and returns its exit status.
    static func readBackWithChDB(outputDirectory: URL, files: [URL]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [root.appendingPathComponent("Fixtures/chdb_native_to_json.py").path,
                             "--settings-json", directory.appendingPathComponent("readback_settings.json").path,
                             outputDirectory.path] + files.map(\.path)
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }
}
