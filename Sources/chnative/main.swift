import ArgumentParser
import ClickHouseNative
import Foundation
import NIOSSL
import Synchronization

/// `chnative`: a command-line client for ClickHouse's native protocol, next to `clickhouse-client`.
struct ChNative: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chnative",
        abstract: "Run queries over ClickHouse's native protocol (TCP 9000), or convert between formats offline.",
        discussion: """
            Connection defaults come from CLICKHOUSE_HOST, CLICKHOUSE_PORT, CLICKHOUSE_USER, CLICKHOUSE_PASSWORD and
            CLICKHOUSE_DATABASE. Query parameters: --param_NAME=VALUE for each {NAME:Type} in the query.
            INSERT ... VALUES (...) and INSERT ... FORMAT Native|TabSeparated|TabSeparatedWithNames|JSONEachRow|Values take
            their data inline, after VALUES or after the format name and its line end, or else from standard input.
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

/// Standard output written with write(2), so that a reader that went away (`| head`) is an error
/// the program handles, not a trap in `FileHandle.write`.
enum StandardOutput {
    /// The reader closed the pipe (EPIPE).
    struct Closed: Error {}

    static func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in Glibc.write(1, raw.baseAddress! + offset, raw.count - offset) }
            if written >= 0 {
                offset += written
            } else if errno == EINTR {
                continue
            } else if errno == EPIPE {
                throw Closed()
            } else {
                throw StandardOutputError(message: String(cString: strerror(errno)))
            }
        }
    }
}

struct StandardOutputError: Error, CustomStringConvertible {
    var message: String
    var description: String { "cannot write to standard output: \(message)" }
}

/// Writes formatted blocks to standard output, buffering up to 1 MiB. Text is written as bytes:
/// String values that are not UTF-8 reach the output as they are, as ClickHouse writes them.
struct BlockPrinter {
    let format: OutputFormat
    let settings: TextFormatSettings
    /// The live progress line on the terminal, taken off it while output is written.
    let progress: ProgressLine?
    private var pending = TextBuffer()
    private var wroteHeader = false

    init(format: OutputFormat, settings: TextFormatSettings, progress: ProgressLine? = nil) {
        self.format = format
        self.settings = settings
        self.progress = progress
    }

    mutating func print(_ block: Block) throws {
        switch format {
        case .null: return
        case .native:
            guard block.rowCount > 0 else { return }
            try write(try NativeFormat.encodeBlocks([block]))
            return
        case .tabSeparatedWithNames:
            if !wroteHeader {
                TabSeparated.header(block, into: &pending)
                wroteHeader = true
            }
            TabSeparated.render(block, settings: settings, into: &pending)
        case .tabSeparated:
            TabSeparated.render(block, settings: settings, into: &pending)
        case .jsonEachRow:
            JSONEachRow.render(block, settings: settings, into: &pending)
        }
        if pending.count > 1 << 20 { try flush() }
    }

    mutating func flush() throws {
        guard !pending.isEmpty else { return }
        try write(pending.bytes)
        pending.removeAll()
    }

    private func write(_ bytes: [UInt8]) throws {
        if let progress {
            try progress.whileCleared { try StandardOutput.write(bytes) }
        } else {
            try StandardOutput.write(bytes)
        }
    }
}

/// Every block of `bytes` (an INSERT's inline data), which must end with the last one.
func decodeAll<Decoder: IncrementalBlockDecoder>(_ decoder: Decoder, _ bytes: [UInt8]) throws -> [Block] {
    var decoder = decoder
    bytes.withUnsafeBytes { decoder.append(contentsOf: $0) }
    var blocks: [Block] = []
    while let block = try decoder.nextBlock(endOfInput: true) { blocks.append(block) }
    try decoder.finish()
    return blocks
}

struct Query: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "query", abstract: "Run a query (the default subcommand).")

    static let environment = ProcessInfo.processInfo.environment

    // The environment's values are read in run(), not used as the options' defaults: `--help`
    // prints defaults, and would print the password.
    @Option(help: "Server host (default: CLICKHOUSE_HOST, else localhost).") var host: String?
    @Option(help: "Native port (default: CLICKHOUSE_PORT, else 9000; with --secure CLICKHOUSE_SECURE_PORT, else 9440).") var port: Int?
    @Option(help: "User (default: CLICKHOUSE_USER, else default).") var user: String?
    @Option(help: "Password (default: CLICKHOUSE_PASSWORD, else empty).") var password: String?
    @Option(help: "Default database (default: CLICKHOUSE_DATABASE, else the user's).") var database: String?
    @Flag(help: "Use TLS (the secure native port).") var secure = false
    @Flag(help: "With --secure: do not verify the server certificate (self-signed test servers).") var insecure = false
    @Option(name: .customLong("ca-file"), help: "With --secure: verify the server with this CA certificate (PEM) instead of the system's.") var caFile: String?
    @Option(help: "Block compression: lz4, zstd or none.") var compression = "lz4"
    @Option(help: "The query to run. INSERT data comes inline (VALUES (...), FORMAT X <data>) or from standard input.") var query: String
    @Option(help: "Output format: TabSeparated, TabSeparatedWithNames, JSONEachRow, Native, Null (a FORMAT clause at the end of the query wins).")
    var format: OutputFormat = .tabSeparated
    @Flag(help: "Print the elapsed time to standard error.") var time = false
    @Option(name: .customLong("setting"), help: ArgumentHelp(
        "A setting for the query or INSERT, NAME=VALUE (clickhouse-client's --NAME=VALUE); repeat for more. A name the server does not know is an error.",
        valueName: "name=value"))
    var settingArguments: [String] = []

    /// The `--setting` arguments, as the server gets them.
    var settings: [QuerySetting] {
        get throws {
            try settingArguments.map { argument in
                guard let equals = argument.firstIndex(of: "="), equals != argument.startIndex else {
                    throw ValidationError("--setting takes NAME=VALUE, got '\(argument)'")
                }
                return QuerySetting(String(argument[..<equals]), String(argument[argument.index(after: equals)...]), isImportant: true)
            }
        }
    }

    func validate() throws {
        guard !insecure || secure else { throw ValidationError("--insecure only applies with --secure (TLS)") }
        guard caFile == nil || secure else { throw ValidationError("--ca-file only applies with --secure (TLS)") }
        guard caFile == nil || !insecure else { throw ValidationError("--ca-file and --insecure contradict each other") }
        _ = try settings
        if Statement.writesToFile(query) {
            throw ValidationError("INTO OUTFILE is not supported; redirect standard output instead (> file)")
        }
        switch Statement(query) {
        case .insert:
            // An INSERT's data is sent as blocks; parameters would be silently dropped.
            guard ChNative.parameters.isEmpty else {
                throw ValidationError("query parameters (--param_*) are not supported with INSERT ... VALUES or FORMAT; the data is sent as blocks")
            }
        case let .query(_, outputFormat?):
            guard OutputFormat(argument: outputFormat) != nil else {
                throw ValidationError("output format \(outputFormat) is not supported; use TabSeparated, TabSeparatedWithNames, JSONEachRow, Native or Null")
            }
        case .query: break
        }
        let portVariable = secure ? "CLICKHOUSE_SECURE_PORT" : "CLICKHOUSE_PORT"
        if port == nil, let text = Self.environment[portVariable], !text.isEmpty, Int(text) == nil {
            throw ValidationError("\(portVariable) must be a port number, not \(text)")
        }
    }

    func run() async throws {
        do {
            try await Interrupt.cancellingOnSIGINT { try await execute() }
        } catch let error where Interrupt.received && !(error is StandardOutput.Closed) {
            // A query: the connection told the server to stop (Cancel) and read its answer to the
            // end, as clickhouse-client does. An INSERT: the connection was closed (the server
            // keeps the blocks it had). Whatever error the interruption caused on the way
            // (cancelled, or a connect cut short), the exit status is the shell's for SIGINT.
            FileHandle.standardError.write(Data("chnative: cancelled (Ctrl-C)\(InsertedRows.shared.mayBeStored)\n".utf8))
            throw ExitCode(130)
        } catch is StandardOutput.Closed {
            // The reader went away (`| head`): end as other tools do, by SIGPIPE, silently.
            signal(SIGPIPE, SIG_DFL)
            raise(SIGPIPE)
            throw ExitCode(141)
        } catch let error as ServerException {
            // As clickhouse-client reports it; the exit status carries the code.
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode(Int32(max(1, Int(error.code) % 256)))
        } catch let error as ClickHouseConnectionError {
            FileHandle.standardError.write(Data("chnative: \(error)\n".utf8))
            throw ExitCode(210 % 256)
        } catch let error as TextInputError {
            // Bad input aborts the INSERT (the connection is closed before its terminating block).
            // The server writes blocks as they arrive, so those sent before stay: say how many.
            FileHandle.standardError.write(Data("chnative: \(error)\(InsertedRows.shared.mayBeStored)\n".utf8))
            throw ExitCode(27)
        } catch let error as StandardOutputError {
            FileHandle.standardError.write(Data("chnative: \(error)\n".utf8))
            throw ExitCode(75)  // CANNOT_WRITE_TO_FILE_DESCRIPTOR, as clickhouse-client reports it
        }
    }

    func execute() async throws {
        let started = ContinuousClock.now
        guard let method = CompressionMethod(rawValue: compression.lowercased()) else {
            throw ValidationError("--compression must be lz4, zstd or none")
        }
        let environment = Self.environment
        // CLICKHOUSE_PORT names the plain port (scripts/common.sh exports it), so TLS has its own variable.
        let resolvedPort = port ?? environment[secure ? "CLICKHOUSE_SECURE_PORT" : "CLICKHOUSE_PORT"].flatMap { Int($0) } ?? (secure ? 9440 : 9000)
        var configuration = ClickHouseConfiguration(host: host ?? environment["CLICKHOUSE_HOST"] ?? "localhost", port: resolvedPort,
                                                    database: database ?? environment["CLICKHOUSE_DATABASE"] ?? "",
                                                    user: user ?? environment["CLICKHOUSE_USER"] ?? "default",
                                                    password: password ?? environment["CLICKHOUSE_PASSWORD"] ?? "", compression: method)
        if secure {
            var tls = TLSConfiguration.makeClientConfiguration()
            if insecure { tls.certificateVerification = .none }
            if let caFile { tls.trustRoots = .file(caFile) }
            configuration.tls = tls
        }
        let connection = try await ClickHouseConnection.connect(configuration)
        defer { Task { await connection.close() } }
        try Task.checkCancellation()  // Ctrl-C as the connect ended: the query is not sent
        let server = await connection.server

        let settings = try settings
        switch Statement(query) {
        case let .insert(sql, inputFormat, inline):
            let timeZone = server.timeZone
            if inputFormat.lowercased() == "native" {
                if let inline {
                    try await connection.insert(sql, blocks: BlockSequence(try decodeAll(NativeStreamDecoder(decoding: .encoded), inline)), settings: settings)
                } else {
                    // Columns stay encoded: their bytes are checked and sent on, not decoded and re-encoded.
                    try await connection.insert(sql, blocks: CountedBlocks(base: FileDescriptorBlocks(nativeFrom: 0), rows: InsertedRows.shared),
                                                settings: settings)
                }
            } else if let textFormat = TextInputFormat(name: inputFormat) {
                func decoder(_ header: Block) -> TextInputDecoder {
                    TextInputDecoder(format: textFormat, structure: header.columns.map { ($0.name, $0.column.type) }, timeZone: timeZone)
                }
                if let inline {
                    try await connection.insert(sql, settings: settings, blocksFor: { BlockSequence(try decodeAll(decoder($0), inline)) })
                } else {
                    try await connection.insert(sql, settings: settings, blocksFor: {
                        CountedBlocks(base: FileDescriptorBlocks(fileDescriptor: 0, decoder: decoder($0)), rows: InsertedRows.shared)
                    })
                }
            } else {
                throw ValidationError("INSERT input format \(inputFormat.isEmpty ? "(none)" : inputFormat) is not supported; use Values, Native, TabSeparated, TabSeparatedWithNames or JSONEachRow")
            }
            if inline == nil, InsertedRows.shared.count == 0 {
                // As clickhouse-client: a script that pipes an empty or missing file should notice.
                // (The server got an INSERT of no rows, which stores nothing.)
                FileHandle.standardError.write(Data("chnative: No data to insert\n".utf8))
                throw ExitCode(108)  // NO_DATA_TO_INSERT
            }
        case let .query(sql, clauseFormat):
            let progress = ProgressLine(enabled: isatty(2) == 1)
            var printer = BlockPrinter(format: clauseFormat.flatMap { OutputFormat(argument: $0) } ?? format,
                                       settings: TextFormatSettings(server: server), progress: progress)
            let result = try await connection.query(sql, settings: settings, parameters: ChNative.parameters, onEvent: { event in
                if case let .progress(p) = event { progress.add(p) }
            })
            do {
                // Printing on the connection's event loop: one thread decodes and prints, with no
                // hand-over between threads per block (this process has only this connection).
                try await withTaskExecutorPreference(connection.taskExecutor) {
                    for try await block in result { try printer.print(block) }
                }
            } catch let error where !(error is StandardOutput.Closed) {
                // Rows that arrived before a server error are printed, as clickhouse-client does.
                progress.finish()
                try? printer.flush()
                throw error
            }
            progress.finish()
            try printer.flush()
        }
        if time {
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            FileHandle.standardError.write(Data(String(format: "%.3f\n", seconds).utf8))
        }
    }
}

/// Ctrl-C during a request cancels it (a query: the client sends Cancel and waits for the server
/// to stop; an INSERT: the connection closes) instead of killing the process, which left the
/// server to notice a dropped connection; a second Ctrl-C ends the process at once.
enum Interrupt {
    private static let flag = Mutex(false)
    /// Whether Ctrl-C was pressed during the request.
    static var received: Bool { flag.withLock { $0 } }

    static func cancellingOnSIGINT(_ body: @escaping @Sendable () async throws -> Void) async throws {
        // A process started with SIGINT ignored (a background job of a script) keeps ignoring it.
        let inherited = signal(SIGINT, SIG_IGN)
        guard unsafeBitCast(inherited, to: Int.self) != unsafeBitCast(SIG_IGN, to: Int.self) else {
            try await body()
            return
        }
        let running = Mutex<Task<Void, Error>?>(nil)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler {
            let again = flag.withLock { pressed in defer { pressed = true }; return pressed }
            if again {
                // Ends the process by SIGINT, so that a calling shell stops too. Dispatch's
                // threads block the signal: this one unblocks it first (else exits 130).
                let line = Array("chnative: interrupted\n".utf8)
                _ = line.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
                signal(SIGINT, SIG_DFL)
                var interrupt = sigset_t()
                sigemptyset(&interrupt)
                sigaddset(&interrupt, SIGINT)
                pthread_sigmask(SIG_UNBLOCK, &interrupt, nil)
                raise(SIGINT)
                _exit(130)
            }
            running.withLock { $0 }?.cancel()
        }
        source.resume()
        defer {
            source.cancel()
            signal(SIGINT, inherited)
        }
        let task = Task { try await body() }
        running.withLock { $0 = task }
        if received { task.cancel() }  // pressed before the task was there to cancel
        try await task.value
    }
}

/// The live progress line on a terminal (rows, bytes, rows/s), cleared when the query ends.
final class ProgressLine: @unchecked Sendable {
    private let enabled: Bool
    private let lock = NSLock()
    private var total = ClickHouseNative.Progress()
    private let started = ContinuousClock.now
    private var lastDraw = ContinuousClock.now
    /// Whether the line is on the terminal now (drawn and not cleared since).
    private var shown = false
    private var finished = false

    init(enabled: Bool) { self.enabled = enabled }

    func add(_ progress: ClickHouseNative.Progress) {
        guard enabled else { return }
        lock.lock()
        defer { lock.unlock() }
        guard !finished else { return }
        total.add(progress)
        let now = ContinuousClock.now
        guard now - lastDraw > .milliseconds(100) else { return }
        lastDraw = now
        let elapsed = now - started
        let seconds = max(0.001, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        let line = String(format: "\r\u{1B}[KProgress: %llu rows, %.2f MB (%.0f rows/s)", total.rows, Double(total.bytes) / 1e6, Double(total.rows) / seconds)
        FileHandle.standardError.write(Data(line.utf8))
        shown = true
    }

    /// Runs `body` (a write to standard output) with the line off the terminal, and not drawn
    /// meanwhile: output written after it would otherwise continue the progress text.
    func whileCleared<T>(_ body: () throws -> T) rethrows -> T {
        guard enabled else { return try body() }
        lock.lock()
        defer { lock.unlock() }
        clearLocked()
        return try body()
    }

    /// Clears the line for good.
    func finish() {
        guard enabled else { return }
        lock.lock()
        defer { lock.unlock() }
        finished = true
        clearLocked()
    }

    private func clearLocked() {
        guard shown else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
        shown = false
    }
}

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert", abstract: "Convert data between formats offline (no server): standard input to standard output.")

    @Option(help: "Column structure, e.g. \"a UInt8, b Array(String)\" (optional for Native input).") var structure: String?
    @Option(name: .customLong("input-format"), help: "Input format: Native, TabSeparated, TabSeparatedWithNames, JSONEachRow, Values.") var inputFormat: String
    @Option(name: .customLong("output-format"), help: "Output format: TabSeparated, TabSeparatedWithNames, JSONEachRow, Native.") var outputFormat: OutputFormat

    func run() throws {
        do {
            try convert()
        } catch is StandardOutput.Closed {
            signal(SIGPIPE, SIG_DFL)
            raise(SIGPIPE)
            throw ExitCode(141)
        }
    }

    func convert() throws {
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
                try printer.flush()
                FileHandle.standardError.write(Data("chnative: \(error)\n".utf8))
                throw ExitCode(27)  // CANNOT_PARSE_INPUT_ASSERTION_FAILED, as clickhouse-local reports bad input
            }
        } else {
            throw ValidationError("input format \(inputFormat) is not supported; use Native, TabSeparated, TabSeparatedWithNames, JSONEachRow or Values")
        }
        try printer.flush()
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

/// The rows of the blocks an INSERT from standard input has handed over so far: each is sent
/// before the next is read, so when the input turns bad these may already be stored.
final class InsertedRows: @unchecked Sendable {
    static let shared = InsertedRows()
    private let lock = NSLock()
    private var rows = 0
    var count: Int { lock.withLock { rows } }
    /// What an aborted INSERT's message adds about them, empty when none was sent.
    var mayBeStored: String {
        let sent = count
        return sent == 0 ? "" : "; the \(sent) rows sent before it may be stored (the server writes blocks as they arrive)"
    }
    func add(_ count: Int) { lock.withLock { rows += count } }
}

/// `base`'s blocks, counted into `rows` as they are taken.
struct CountedBlocks<Base: AsyncSequence>: AsyncSequence where Base.Element == Block {
    typealias Element = Block
    let base: Base
    let rows: InsertedRows

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        let rows: InsertedRows
        mutating func next() async throws -> Block? {
            let block = try await base.next()
            if let block { rows.add(block.rowCount) }
            return block
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: base.makeAsyncIterator(), rows: rows) }
}
