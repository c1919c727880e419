import ArgumentParser
import ClickHouseNative
import Foundation
import NIOSSL

/// `chnative`: a command-line client for ClickHouse's native protocol, next to `clickhouse-client`.
struct ChNative: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chnative",
        abstract: "Run queries over ClickHouse's native protocol (TCP 9000), or convert between formats offline.",
        discussion: """
            Connection defaults come from CLICKHOUSE_HOST, CLICKHOUSE_PORT, CLICKHOUSE_USER, CLICKHOUSE_PASSWORD and
            CLICKHOUSE_DATABASE. Query parameters: --param_NAME=VALUE for each {NAME:Type} in the query.
            INSERT ... FORMAT Native|TabSeparated|TabSeparatedWithNames|JSONEachRow reads its data from standard input.
            """,
        subcommands: [Query.self, Convert.self],
        defaultSubcommand: Query.self)

    /// Query parameters given as `--param_name=value`, taken out before the regular options are parsed.
    nonisolated(unsafe) static var parameters: [String: String] = [:]

    /// Takes out `--param_*` arguments, then runs the parsed command.
    static func start() async {
        var arguments: [String] = []
        var iterator = CommandLine.arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            guard argument.hasPrefix("--param_") else { arguments.append(argument); continue }
            let body = argument.dropFirst("--param_".count)
            if let equals = body.firstIndex(of: "=") {
                parameters[String(body[..<equals])] = String(body[body.index(after: equals)...])
            } else if let value = iterator.next() {
                parameters[String(body)] = value
            }
        }
        await main(arguments)
    }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case tabSeparated = "TabSeparated"
    case tabSeparatedWithNames = "TabSeparatedWithNames"
    case jsonEachRow = "JSONEachRow"
    case native = "Native"
    case null = "Null"

    init?(argument: String) {
        switch argument.lowercased() {
        case "tabseparated", "tsv": self = .tabSeparated
        case "tabseparatedwithnames", "tsvwithnames": self = .tabSeparatedWithNames
        case "jsoneachrow": self = .jsonEachRow
        case "native": self = .native
        case "null": self = .null
        default: return nil
        }
    }
}

/// Writes formatted blocks to standard output, buffering up to 1 MiB.
struct BlockPrinter {
    let format: OutputFormat
    let settings: TextFormatSettings
    private var pending = ""
    private var wroteHeader = false

    init(format: OutputFormat, settings: TextFormatSettings) {
        self.format = format
        self.settings = settings
    }

    mutating func print(_ block: Block) throws {
        switch format {
        case .null: return
        case .native:
            guard block.rowCount > 0 else { return }
            FileHandle.standardOutput.write(Data(try NativeFormat.encodeBlocks([block])))
            return
        case .tabSeparatedWithNames:
            if !wroteHeader {
                pending += TabSeparated.header(block)
                wroteHeader = true
            }
            pending += TabSeparated.render(block, settings: settings)
        case .tabSeparated:
            pending += TabSeparated.render(block, settings: settings)
        case .jsonEachRow:
            pending += JSONEachRow.render(block, settings: settings)
        }
        if pending.utf8.count > 1 << 20 { flush() }
    }

    mutating func flush() {
        guard !pending.isEmpty else { return }
        FileHandle.standardOutput.write(Data(pending.utf8))
        pending = ""
    }
}

struct Query: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "query", abstract: "Run a query (the default subcommand).")

    static let environment = ProcessInfo.processInfo.environment

    @Option(help: "Server host (CLICKHOUSE_HOST).") var host = environment["CLICKHOUSE_HOST"] ?? "localhost"
    @Option(help: "Native port (CLICKHOUSE_PORT; 9440 is usual with --secure).") var port: Int?
    @Option(help: "User (CLICKHOUSE_USER).") var user = environment["CLICKHOUSE_USER"] ?? "default"
    @Option(help: "Password (CLICKHOUSE_PASSWORD).") var password = environment["CLICKHOUSE_PASSWORD"] ?? ""
    @Option(help: "Default database (CLICKHOUSE_DATABASE).") var database = environment["CLICKHOUSE_DATABASE"] ?? ""
    @Flag(help: "Use TLS (the secure native port).") var secure = false
    @Flag(help: "With --secure: do not verify the server certificate (self-signed test servers).") var insecure = false
    @Option(help: "Block compression: lz4, zstd or none.") var compression = "lz4"
    @Option(help: "The query to run.") var query: String
    @Option(help: "Output format: TabSeparated, TabSeparatedWithNames, JSONEachRow, Native, Null.") var format: OutputFormat = .tabSeparated
    @Flag(help: "Print the elapsed time to standard error.") var time = false

    func validate() throws {
        guard !insecure || secure else { throw ValidationError("--insecure only applies with --secure (TLS)") }
        // An INSERT's data comes from standard input; parameters would be silently dropped.
        guard Self.insertFormat(query) == nil || ChNative.parameters.isEmpty else {
            throw ValidationError("query parameters (--param_*) are not supported with INSERT ... FORMAT; the data comes from standard input")
        }
    }

    func run() async throws {
        do {
            try await execute()
        } catch let error as ServerException {
            // As clickhouse-client reports it; the exit status carries the code.
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode(Int32(max(1, Int(error.code) % 256)))
        } catch let error as ClickHouseConnectionError {
            FileHandle.standardError.write(Data("chnative: \(error)\n".utf8))
            throw ExitCode(210 % 256)
        } catch let error as TextInputError {
            // Bad input aborts the INSERT (the connection is closed, so nothing partial is committed).
            FileHandle.standardError.write(Data("chnative: \(error)\n".utf8))
            throw ExitCode(27)
        }
    }

    func execute() async throws {
        let started = ContinuousClock.now
        guard let method = CompressionMethod(rawValue: compression.lowercased()) else {
            throw ValidationError("--compression must be lz4, zstd or none")
        }
        var configuration = ClickHouseConfiguration(host: host, port: port ?? (secure ? 9440 : Int(Self.environment["CLICKHOUSE_PORT"] ?? "") ?? 9000),
                                                    database: database, user: user, password: password, compression: method)
        if secure {
            var tls = TLSConfiguration.makeClientConfiguration()
            if insecure { tls.certificateVerification = .none }
            configuration.tls = tls
        }
        let connection = try await ClickHouseConnection.connect(configuration)
        defer { Task { await connection.close() } }
        let server = await connection.server

        if let inputFormat = Self.insertFormat(query) {
            // The data format is the client's business: the protocol carries blocks. A FORMAT clause
            // in the query text would make the server look for inline data instead.
            let sql = Self.withoutFormatClause(query)
            if inputFormat.lowercased() == "native" {
                // Columns stay encoded: their bytes are checked and sent on, not decoded and re-encoded.
                try await connection.insert(sql, blocks: FileDescriptorBlocks(nativeFrom: 0))
            } else if let textFormat = TextInputFormat(name: inputFormat) {
                let timeZone = server.timeZone
                try await connection.insert(sql, blocksFor: { header in
                    FileDescriptorBlocks(fileDescriptor: 0, decoder: TextInputDecoder(format: textFormat, structure: header.columns.map { ($0.name, $0.column.type) },
                                                                                      timeZone: timeZone))
                })
            } else {
                throw ValidationError("INSERT input format \(inputFormat) is not supported; use Native, TabSeparated, TabSeparatedWithNames or JSONEachRow")
            }
        } else {
            let progress = ProgressLine(enabled: isatty(2) == 1)
            var printer = BlockPrinter(format: format, settings: TextFormatSettings(server: server))
            let result = try await connection.query(query, parameters: ChNative.parameters, onEvent: { event in
                if case let .progress(p) = event { progress.add(p) }
            })
            // Printing on the connection's event loop: one thread decodes and prints, with no
            // hand-over between threads per block (this process has only this connection).
            try await withTaskExecutorPreference(connection.taskExecutor) {
                for try await block in result { try printer.print(block) }
            }
            printer.flush()
            progress.finish()
        }
        if time {
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            FileHandle.standardError.write(Data(String(format: "%.3f\n", seconds).utf8))
        }
    }

    /// `INSERT INTO t [(columns)] FORMAT X` as `INSERT INTO t [(columns)] VALUES`.
    static func withoutFormatClause(_ sql: String) -> String {
        guard let range = sql.range(of: #"\bFORMAT\s+\w+\s*$"#, options: [.regularExpression, .caseInsensitive]) else { return sql }
        return sql.replacingCharacters(in: range, with: "VALUES")
    }

    /// The data format of an `INSERT ... FORMAT X` query, or nil for other statements.
    static func insertFormat(_ sql: String) -> String? {
        let words = sql.split(whereSeparator: { $0.isWhitespace })
        guard let first = words.first, first.uppercased() == "INSERT" else { return nil }
        if let index = words.lastIndex(where: { $0.uppercased() == "FORMAT" }), index + 1 < words.count {
            return String(words[index + 1])
        }
        return "Native"
    }
}

/// The live progress line on a terminal (rows, bytes, rows/s), cleared when the query ends.
final class ProgressLine: @unchecked Sendable {
    private let enabled: Bool
    private let lock = NSLock()
    private var total = ClickHouseNative.Progress()
    private let started = ContinuousClock.now
    private var lastDraw = ContinuousClock.now

    init(enabled: Bool) { self.enabled = enabled }

    func add(_ progress: ClickHouseNative.Progress) {
        guard enabled else { return }
        lock.lock()
        defer { lock.unlock() }
        total.add(progress)
        let now = ContinuousClock.now
        guard now - lastDraw > .milliseconds(100) else { return }
        lastDraw = now
        let elapsed = now - started
        let seconds = max(0.001, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        let line = String(format: "\r\u{1B}[KProgress: %llu rows, %.2f MB (%.0f rows/s)", total.rows, Double(total.bytes) / 1e6, Double(total.rows) / seconds)
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert", abstract: "Convert data between formats offline (no server): standard input to standard output.")

    @Option(help: "Column structure, e.g. \"a UInt8, b Array(String)\" (optional for Native input).") var structure: String?
    @Option(name: .customLong("input-format"), help: "Input format: Native, TabSeparated, TabSeparatedWithNames, JSONEachRow.") var inputFormat: String
    @Option(name: .customLong("output-format"), help: "Output format: TabSeparated, TabSeparatedWithNames, JSONEachRow, Native.") var outputFormat: OutputFormat

    func run() throws {
        var printer = BlockPrinter(format: outputFormat, settings: TextFormatSettings())
        if inputFormat.lowercased() == "native" {
            guard structure == nil else { throw ValidationError("--structure is for text input: Native input carries its own column names and types") }
            var decoder = NativeStreamDecoder()
            try Self.readStandardInput { chunk, endOfInput in
                if let chunk { decoder.append(chunk) }
                while let block = try decoder.nextBlock(endOfInput: endOfInput) { try printer.print(block) }
                if endOfInput { try decoder.finish() }
            }
        } else if let format = TextInputFormat(name: inputFormat) {
            guard let structure else { throw ValidationError("--structure is needed for \(format.rawValue) input") }
            var decoder = TextInputDecoder(format: format, structure: try TextInputDecoder.parseStructure(structure))
            do {
                try Self.readStandardInput { chunk, endOfInput in
                    if let chunk { decoder.append(chunk) }
                    while let block = try decoder.nextBlock(endOfInput: endOfInput) { try printer.print(block) }
                    if endOfInput { try decoder.finish() }
                }
            } catch let error as TextInputError {
                printer.flush()
                FileHandle.standardError.write(Data("chnative: \(error)\n".utf8))
                throw ExitCode(27)  // CANNOT_PARSE_INPUT_ASSERTION_FAILED, as clickhouse-local reports bad input
            }
        } else {
            throw ValidationError("input format \(inputFormat) is not supported; use Native, TabSeparated, TabSeparatedWithNames or JSONEachRow")
        }
        printer.flush()
    }

    /// Calls `body` with each 1 MiB chunk of standard input, then once with nil at the end.
    static func readStandardInput(_ body: (Data?, Bool) throws -> Void) throws {
        while true {
            let chunk = FileHandle.standardInput.readData(ofLength: 1 << 20)
            if chunk.isEmpty { break }
            try body(chunk, false)
        }
        try body(nil, true)
    }
}

await ChNative.start()
