/// A text input format that ``TextInputDecoder`` reads.
public enum TextInputFormat: String, Sendable, CaseIterable {
    case tabSeparated = "TabSeparated"
    case tabSeparatedWithNames = "TabSeparatedWithNames"
    case jsonEachRow = "JSONEachRow"
    /// `(1, 'a', [2]), (3, 'b', [])`: the data of `INSERT ... VALUES`, literals only (the server
    /// would evaluate expressions; a client that sends blocks cannot).
    case values = "Values"

    /// The format for a name as the server spells it (also `TSV`, `TSVWithNames`), case-insensitively.
    public init?(name: String) {
        switch name.lowercased() {
        case "tabseparated", "tsv": self = .tabSeparated
        case "tabseparatedwithnames", "tsvwithnames": self = .tabSeparatedWithNames
        case "jsoneachrow": self = .jsonEachRow
        case "values": self = .values
        default: return nil
        }
    }
}

/// Turns TabSeparated or JSONEachRow text into blocks of a known structure, reading it as the
/// server does (escapes, `\N`, quoted composite values in TSV; JSON objects by column name with
/// missing columns taking their default). Bytes may arrive in pieces of any size.
public struct TextInputDecoder {
    public let format: TextInputFormat
    public let structure: [(name: String, type: ClickHouseType)]
    public let rowsPerBlock: Int
    let timeZone: String?

    private var buffer: [UInt8] = []
    private var position = 0
    private var line = 0
    private var headerRead = false
    /// For TabSeparatedWithNames: the structure index of each field in the input's column order.
    private var fieldOrder: [Int]
    /// Builders holding the rows of the block being filled.
    private var pending: [any TextColumnBuilder]?
    private var pendingRows = 0
    /// Values input: the `;` that ends the data was read; only whitespace may follow.
    private var valuesEnded = false
    /// Unread bytes when the last attempt found the next row incomplete: the next attempt waits
    /// until they have doubled, so a huge row arriving in 1 MiB pieces is scanned O(log n) times,
    /// not once per piece (each attempt reads the row from its start).
    private var incompleteBytes = 0

    /// `structure`: column names and types, in the order of the block to produce (an INSERT's
    /// sample block). `timeZone`: for DateTime columns that name none.
    public init(format: TextInputFormat, structure: [(name: String, type: ClickHouseType)],
                timeZone: String? = nil, rowsPerBlock: Int = 65_536) {
        self.format = format
        self.structure = structure
        self.timeZone = timeZone
        self.rowsPerBlock = max(1, rowsPerBlock)
        self.fieldOrder = Array(structure.indices)
    }

    /// `name Type, name Type, ...` as ``structure`` (the form of `--structure` and `input()`).
    public static func parseStructure(_ text: String) throws -> [(name: String, type: ClickHouseType)] {
        guard case let .tuple(elements) = try ClickHouseType.parse("Tuple(\(text))") else { return [] }
        return try elements.enumerated().map { index, element in
            guard let name = element.name else { throw TextInputError("structure column \(index + 1) has no name: \(text)") }
            return (name, element.type)
        }
    }

    public mutating func append<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        if position > 0 && position >= buffer.count / 2 {
            buffer.removeSubrange(0..<position)
            position = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next block of up to ``rowsPerBlock`` rows when that many are complete, or at the end of
    /// input the rest; nil when more input is needed (or, at the end, when all rows were returned).
    public mutating func nextBlock(endOfInput: Bool = false) throws -> Block? { try nextBlock(endOfInput: endOfInput, now: false) }

    /// `now`: the rows complete so far, without waiting for a block's worth (the input went quiet).
    public mutating func nextBlock(endOfInput: Bool, now: Bool) throws -> Block? {
        if pending == nil { pending = try structure.map { try makeTextBuilder(for: $0.type, timeZone: timeZone) } }
        let builders = pending!
        while pendingRows < rowsPerBlock {
            guard let record = try nextRecordUnlessWaiting(endOfInput: endOfInput, now: now) else { break }
            do {
                try fill(builders, from: record)
            } catch let error as TextInputError {
                throw TextInputError("\(format.rawValue) \(format == .values ? "row" : "line") \(line): \(error.message)")
            }
            pendingRows += 1
        }
        // Rows parsed so far stay in the builders until the block is full or the input ends.
        guard pendingRows == rowsPerBlock || ((endOfInput || now) && pendingRows > 0) else { return nil }
        let block = Block(columns: zip(structure, builders).map { NamedColumn($0.0.name, $0.1.build()) }, rowCount: pendingRows)
        pending = nil
        pendingRows = 0
        return block
    }

    private enum Record {
        case fields([ArraySlice<UInt8>])
        case object([(key: TextValue, value: TextValue)])
        case values([TextValue])
    }

    private func fill(_ builders: [any TextColumnBuilder], from record: Record) throws {
        switch record {
        case let .fields(fields):
            guard fields.count == structure.count else {
                throw TextInputError("\(fields.count) fields, \(structure.count) expected (\(structure.map(\.name).joined(separator: ", ")))")
            }
            for (field, index) in zip(fields, fieldOrder) {
                let column = structure[index]
                do {
                    try builders[index].append(try Self.tsvValue(field, type: column.type))
                } catch let error as TextInputError {
                    throw TextInputError("column \(column.name): \(error.message)")
                }
            }
        case let .values(values):
            guard values.count == structure.count else {
                throw TextInputError("\(values.count) values, \(structure.count) expected (\(structure.map(\.name).joined(separator: ", ")))")
            }
            for (index, value) in values.enumerated() {
                do {
                    try builders[index].append(value)
                } catch let error as TextInputError {
                    throw TextInputError("column \(structure[index].name): \(error.message)")
                }
            }
        case let .object(pairs):
            var filled = [Bool](repeating: false, count: structure.count)
            for pair in pairs {
                guard case let .text(keyBytes) = pair.key else { continue }
                let key = String(decoding: keyBytes, as: UTF8.self)
                // Bytes, not Swift's String equality (Unicode canonical equivalence), as the server matches names.
                guard let index = structure.firstIndex(where: { $0.name.utf8.elementsEqual(keyBytes) }) else {
                    throw TextInputError("unknown field \(key) (columns: \(structure.map(\.name).joined(separator: ", ")))")
                }
                guard !filled[index] else { throw TextInputError("field \(key) appears twice") }
                do {
                    try builders[index].append(pair.value)
                } catch let error as TextInputError {
                    throw TextInputError("column \(key): \(error.message)")
                }
                filled[index] = true
            }
            for index in structure.indices where !filled[index] { builders[index].appendDefault() }
        }
    }

    /// A TSV field as a value: `\N` is NULL; composite types use the quoted syntax inside the field.
    static func tsvValue(_ field: ArraySlice<UInt8>, type: ClickHouseType) throws -> TextValue {
        if field.count == 2, field.first == 0x5C, field.last == UInt8(ascii: "N") { return .null }
        switch type.textInputShape {
        // Composite values are written in the quoted syntax, whose own escapes are read as they are.
        case .composite: return try QuotedValueParser.parse(Array(field))
        case .scalar: return .text(try Escapes.unescapeField(field))
        }
    }

    /// Bytes not yet consumed as rows; an error at the end of input when anything but whitespace remains.
    public func finish() throws {
        guard buffer[position...].allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) else {
            throw TextInputError("\(format.rawValue): incomplete data at the end of input (line \(line + 1))")
        }
    }

    private mutating func nextRecordUnlessWaiting(endOfInput: Bool, now: Bool) throws -> Record? {
        let unread = buffer.count - position
        if !endOfInput && !now && unread < 2 * incompleteBytes { return nil }
        let record = try nextRecord(endOfInput: endOfInput)
        incompleteBytes = record == nil ? buffer.count - position : 0
        return record
    }

    private mutating func nextRecord(endOfInput: Bool) throws -> Record? {
        switch format {
        case .tabSeparated, .tabSeparatedWithNames:
            while true {
                guard let fields = nextLine(endOfInput: endOfInput) else { return nil }
                if format == .tabSeparatedWithNames && !headerRead {
                    try readHeader(fields)
                    continue
                }
                return .fields(fields)
            }
        case .jsonEachRow:
            var parser = JSONTextParser(bytes: buffer, position: position)
            parser.skipSeparators()
            guard parser.position < buffer.count else {
                position = parser.position
                return nil
            }
            do {
                let value = try parser.value()
                guard case let .object(pairs) = value else {
                    throw TextInputError("JSONEachRow line \(line + 1): an object expected, found \(value.preview)")
                }
                line += 1
                position = parser.position
                return .object(pairs)
            } catch JSONTextParser.Failure.truncated where !endOfInput {
                return nil
            } catch JSONTextParser.Failure.truncated {
                throw TextInputError("JSONEachRow line \(line + 1): the input ends inside a value")
            } catch let JSONTextParser.Failure.invalid(reason, offset) {
                throw TextInputError("JSONEachRow line \(line + 1): \(reason) at byte \(offset - position) of the row")
            }
        case .values:
            return try nextValuesRow(endOfInput: endOfInput)
        }
    }

    /// The next `(...)` row of Values input; rows are separated by commas and whitespace, and a
    /// `;` may end the input. `line` counts rows here.
    private mutating func nextValuesRow(endOfInput: Bool) throws -> Record? {
        var parser = QuotedValueParser(buffer, position: position)
        if valuesEnded {
            parser.skipSpaces()
            position = parser.position
            guard parser.position == buffer.count else { throw TextInputError("Values: text after the ';' that ends the data") }
            return nil
        }
        while parser.position < buffer.count, [0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: ",")].contains(buffer[parser.position]) {
            parser.position += 1
        }
        if parser.position < buffer.count, buffer[parser.position] == UInt8(ascii: ";") {
            // (Whatever follows may come in a later piece: checked there too.)
            valuesEnded = true
            position = parser.position + 1
            return try nextValuesRow(endOfInput: endOfInput)
        }
        guard parser.position < buffer.count else {
            position = parser.position
            return nil
        }
        guard buffer[parser.position] == UInt8(ascii: "(") else {
            throw TextInputError("Values row \(line + 1): '(' expected, found \(String(decoding: buffer[parser.position...].prefix(20), as: UTF8.self))")
        }
        do {
            guard case let .tuple(values) = try parser.value() else { preconditionFailure("a '(' value is a tuple") }
            line += 1
            position = parser.position
            return .values(values)
        } catch let error as TextInputError {
            // Ran out of bytes inside the row: wait for more unless the input is over.
            if parser.position >= buffer.count && !endOfInput { return nil }
            throw TextInputError("Values row \(line + 1): \(error.message)")
        }
    }

    /// The tab-separated fields of the next complete line (the last line may lack its newline). A
    /// backslash escapes the next byte, so an escaped tab or newline stays inside its field, as
    /// the server reads it; a carriage return is data (the server keeps it too).
    private mutating func nextLine(endOfInput: Bool) -> [ArraySlice<UInt8>]? {
        guard position < buffer.count else { return nil }
        var fields: [ArraySlice<UInt8>] = []
        var fieldStart = position
        var index = position
        while index < buffer.count {
            switch buffer[index] {
            case 0x5C: index += 2
            case 0x09:
                fields.append(buffer[fieldStart..<index])
                index += 1
                fieldStart = index
            case 0x0A:
                fields.append(buffer[fieldStart..<index])
                position = index + 1
                line += 1
                return fields
            default: index += 1
            }
        }
        guard endOfInput else { return nil }
        fields.append(buffer[fieldStart..<buffer.count])
        position = buffer.count
        line += 1
        return fields
    }

    private mutating func readHeader(_ fields: [ArraySlice<UInt8>]) throws {
        headerRead = true
        let names = try fields.map { String(decoding: try Escapes.unescapeField($0), as: UTF8.self) }
        var order: [Int] = []
        for name in names {
            guard let index = structure.firstIndex(where: { $0.name == name }) else {
                throw TextInputError("TabSeparatedWithNames: unknown column \(name) in the header (columns: \(structure.map(\.name).joined(separator: ", ")))")
            }
            guard !order.contains(index) else { throw TextInputError("TabSeparatedWithNames: column \(name) appears twice in the header") }
            order.append(index)
        }
        guard order.count == structure.count else {
            let missing = structure.indices.filter { !order.contains($0) }.map { structure[$0].name }
            throw TextInputError("TabSeparatedWithNames: the header lacks \(missing.joined(separator: ", "))")
        }
        fieldOrder = order
    }
}

extension ClickHouseType {
    enum TextInputShape { case scalar, composite }

    /// Whether a TSV field of this type holds the quoted syntax (arrays, tuples, maps).
    var textInputShape: TextInputShape {
        switch self {
        case .array, .tuple, .map, .nested, .point, .ring, .lineString, .multiLineString, .polygon, .multiPolygon: return .composite
        case let .nullable(inner), let .lowCardinality(inner), let .simpleAggregateFunction(_, inner): return inner.textInputShape
        default: return .scalar
        }
    }
}

/// A JSON reader producing ``TextValue``s: numbers keep their spelling (64-bit and wider integers
/// stay exact), strings are unescaped to UTF-8.
struct JSONTextParser {
    enum Failure: Error {
        case truncated
        case invalid(String, Int)
    }

    let bytes: [UInt8]
    var position: Int
    var depth = 0

    mutating func skipSeparators() {
        while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: ",")].contains(bytes[position]) { position += 1 }
    }

    mutating func skipSpaces() {
        while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
    }

    mutating func peek() throws -> UInt8 {
        skipSpaces()
        guard position < bytes.count else { throw Failure.truncated }
        return bytes[position]
    }

    mutating func value() throws -> TextValue {
        let byte = try peek()
        switch byte {
        case UInt8(ascii: "{"):
            depth += 1
            guard depth < 200 else { throw Failure.invalid("nesting too deep", position) }
            defer { depth -= 1 }
            position += 1
            var pairs: [(key: TextValue, value: TextValue)] = []
            if try peek() == UInt8(ascii: "}") {
                position += 1
                return .object(pairs)
            }
            while true {
                guard try peek() == UInt8(ascii: "\"") else { throw Failure.invalid("a quoted key expected", position) }
                let key = try string()
                guard try peek() == UInt8(ascii: ":") else { throw Failure.invalid("':' expected", position) }
                position += 1
                pairs.append((.text(key), try value()))
                let next = try peek()
                position += 1
                if next == UInt8(ascii: ",") { continue }
                guard next == UInt8(ascii: "}") else { throw Failure.invalid("',' or '}' expected", position - 1) }
                return .object(pairs)
            }
        case UInt8(ascii: "["):
            depth += 1
            guard depth < 200 else { throw Failure.invalid("nesting too deep", position) }
            defer { depth -= 1 }
            position += 1
            var items: [TextValue] = []
            if try peek() == UInt8(ascii: "]") {
                position += 1
                return .list(items)
            }
            while true {
                items.append(try value())
                let next = try peek()
                position += 1
                if next == UInt8(ascii: ",") { continue }
                guard next == UInt8(ascii: "]") else { throw Failure.invalid("',' or ']' expected", position - 1) }
                return .list(items)
            }
        case UInt8(ascii: "\""):
            return .text(try string())
        default:
            let start = position
            while position < bytes.count, !Self.tokenEnd.contains(bytes[position]) { position += 1 }
            guard position < bytes.count else { throw Failure.truncated }
            let token = Array(bytes[start..<position])
            switch String(decoding: token, as: UTF8.self) {
            case "null": return .null
            case "true", "false": return .text(token)
            default:
                guard !token.isEmpty, token.allSatisfy({ Self.numberBytes.contains($0) }) else {
                    throw Failure.invalid("unexpected \(String(decoding: token.prefix(20), as: UTF8.self))", start)
                }
                return .text(token)
            }
        }
    }

    static let tokenEnd: Set<UInt8> = [UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D]
    static let numberBytes: Set<UInt8> = Set("0123456789+-.eE".utf8)

    mutating func string() throws -> [UInt8] {
        position += 1
        var out: [UInt8] = []
        while position < bytes.count {
            let byte = bytes[position]
            switch byte {
            case UInt8(ascii: "\""):
                position += 1
                return out
            case 0x5C:
                guard position + 1 < bytes.count else { throw Failure.truncated }
                let escape = bytes[position + 1]
                position += 2
                switch escape {
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard position + 6 <= bytes.count else { throw Failure.truncated }
                        guard bytes[position] == 0x5C, bytes[position + 1] == UInt8(ascii: "u") else {
                            throw Failure.invalid("unpaired surrogate", position)
                        }
                        position += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw Failure.invalid("unpaired surrogate", position) }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw Failure.invalid("invalid \\u escape", position) }
                    out.append(contentsOf: Array(String(Character(unicode)).utf8))
                default: out.append(escape)  // \" \\ \/ and the rest as themselves
                }
            default:
                out.append(byte)
                position += 1
            }
        }
        throw Failure.truncated
    }

    mutating func hex4() throws -> UInt32 {
        guard position + 4 <= bytes.count else { throw Failure.truncated }
        guard let value = UInt32(String(decoding: bytes[position..<position + 4], as: UTF8.self), radix: 16) else {
            throw Failure.invalid("invalid \\u escape", position)
        }
        position += 4
        return value
    }
}
