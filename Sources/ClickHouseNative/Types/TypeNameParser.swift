/// A type name that cannot be parsed, or names a type this client cannot encode.
public struct ClickHouseTypeError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension ClickHouseType {
    /// Parses a type name as servers send it, e.g. `Map(LowCardinality(String), Array(Nullable(Int32)))`.
    public static func parse(_ name: String) throws(ClickHouseTypeError) -> ClickHouseType {
        var parser = TypeNameParser(name)
        let type = try parser.parseType()
        parser.skipSpaces()
        guard parser.atEnd else { throw parser.error("unexpected text after the type") }
        return type
    }
}

/// Recursive-descent parser over the UTF-8 bytes of a type name. Nesting is limited so hostile names
/// cannot exhaust the stack.
struct TypeNameParser {
    let text: String
    let bytes: [UInt8]
    var position = 0
    var depth = 0
    static let maximumDepth = 64

    init(_ text: String) {
        self.text = text
        self.bytes = Array(text.utf8)
    }

    var atEnd: Bool { position >= bytes.count }

    func error(_ message: String) -> ClickHouseTypeError {
        ClickHouseTypeError("cannot parse type '\(text)': \(message) at offset \(position)")
    }

    mutating func skipSpaces() {
        while position < bytes.count, bytes[position] == 0x20 || bytes[position] == 0x0A || bytes[position] == 0x09 {
            position += 1
        }
    }

    mutating func consume(_ byte: UInt8) -> Bool {
        skipSpaces()
        if position < bytes.count, bytes[position] == byte {
            position += 1
            return true
        }
        return false
    }

    mutating func expect(_ byte: UInt8) throws(ClickHouseTypeError) {
        guard consume(byte) else { throw error("expected '\(Character(Unicode.Scalar(byte)))'") }
    }

    static func isIdentifierByte(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F || c == 0x2E || c >= 0x80
    }

    /// An identifier (letters, digits, `_`, `.`) or a back-quoted name.
    mutating func parseIdentifier() throws(ClickHouseTypeError) -> String {
        skipSpaces()
        guard position < bytes.count else { throw error("expected a name") }
        if bytes[position] == 0x60 { return try parseQuoted(0x60) }
        let start = position
        while position < bytes.count, Self.isIdentifierByte(bytes[position]) { position += 1 }
        guard position > start else { throw error("expected a name") }
        return String(decoding: bytes[start..<position], as: UTF8.self)
    }

    /// A string quoted with `quote` (' or `), with backslash escapes.
    mutating func parseQuoted(_ quote: UInt8) throws(ClickHouseTypeError) -> String {
        skipSpaces()
        guard position < bytes.count, bytes[position] == quote else { throw error("expected a quoted string") }
        position += 1
        var result: [UInt8] = []
        while true {
            guard position < bytes.count else { throw error("unterminated quoted string") }
            let c = bytes[position]
            position += 1
            if c == quote {
                // A doubled quote is an escaped quote too.
                if position < bytes.count, bytes[position] == quote {
                    result.append(quote)
                    position += 1
                    continue
                }
                return String(decoding: result, as: UTF8.self)
            }
            if c == 0x5C {
                guard position < bytes.count else { throw error("unterminated escape") }
                let e = bytes[position]
                position += 1
                switch e {
                case UInt8(ascii: "n"): result.append(0x0A)
                case UInt8(ascii: "t"): result.append(0x09)
                case UInt8(ascii: "r"): result.append(0x0D)
                case UInt8(ascii: "b"): result.append(0x08)
                case UInt8(ascii: "f"): result.append(0x0C)
                case UInt8(ascii: "0"): result.append(0x00)
                case UInt8(ascii: "a"): result.append(0x07)
                case UInt8(ascii: "v"): result.append(0x0B)
                case UInt8(ascii: "x"):
                    guard position + 1 < bytes.count, let hi = hexValue(bytes[position]), let lo = hexValue(bytes[position + 1]) else {
                        throw error("invalid \\x escape")
                    }
                    result.append(hi << 4 | lo)
                    position += 2
                default: result.append(e)
                }
                continue
            }
            result.append(c)
        }
    }

    mutating func parseInteger() throws(ClickHouseTypeError) -> Int {
        skipSpaces()
        var negative = false
        if position < bytes.count, bytes[position] == 0x2D || bytes[position] == 0x2B {
            negative = bytes[position] == 0x2D
            position += 1
        }
        let start = position
        var value = 0
        while position < bytes.count, bytes[position] >= 0x30, bytes[position] <= 0x39 {
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int(bytes[position] - 0x30))
            guard !o1, !o2 else { throw error("number too large") }
            value = a
            position += 1
        }
        guard position > start else { throw error("expected a number") }
        return negative ? -value : value
    }

    /// The raw text of one argument, up to the next top-level comma or closing parenthesis.
    mutating func parseRawArgument() throws(ClickHouseTypeError) -> String {
        skipSpaces()
        let start = position
        var level = 0
        while position < bytes.count {
            let c = bytes[position]
            if c == 0x27 || c == 0x60 {
                _ = try parseQuoted(c)
                continue
            }
            if c == 0x28 { level += 1 }
            if c == 0x29 {
                if level == 0 { break }
                level -= 1
            }
            if c == 0x2C && level == 0 { break }
            position += 1
        }
        var end = position
        while end > start, bytes[end - 1] == 0x20 { end -= 1 }
        guard end > start else { throw error("expected an argument") }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }

    mutating func parseType() throws(ClickHouseTypeError) -> ClickHouseType {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maximumDepth else { throw error("type nested deeper than \(Self.maximumDepth) levels") }
        let typeStart = position
        let name = try parseIdentifier()
        skipSpaces()
        let hasArguments = position < bytes.count && bytes[position] == 0x28
        if hasArguments { position += 1 }

        func noArguments(_ type: ClickHouseType) throws(ClickHouseTypeError) -> ClickHouseType {
            guard !hasArguments else { throw error("\(name) takes no arguments") }
            return type
        }
        func requireArguments() throws(ClickHouseTypeError) {
            guard hasArguments else { throw error("\(name) needs arguments") }
        }

        let result: ClickHouseType
        switch name {
        case "Int8": result = try noArguments(.int8)
        case "Int16": result = try noArguments(.int16)
        case "Int32": result = try noArguments(.int32)
        case "Int64": result = try noArguments(.int64)
        case "Int128": result = try noArguments(.int128)
        case "Int256": result = try noArguments(.int256)
        case "UInt8": result = try noArguments(.uint8)
        case "UInt16": result = try noArguments(.uint16)
        case "UInt32": result = try noArguments(.uint32)
        case "UInt64": result = try noArguments(.uint64)
        case "UInt128": result = try noArguments(.uint128)
        case "UInt256": result = try noArguments(.uint256)
        case "Float32": result = try noArguments(.float32)
        case "Float64": result = try noArguments(.float64)
        case "BFloat16": result = try noArguments(.bfloat16)
        case "Bool": result = try noArguments(.bool)
        case "String": result = try noArguments(.string)
        case "Date": result = try noArguments(.date)
        case "Date32": result = try noArguments(.date32)
        case "Time": result = try noArguments(.time)
        case "UUID": result = try noArguments(.uuid)
        case "IPv4": result = try noArguments(.ipv4)
        case "IPv6": result = try noArguments(.ipv6)
        case "Nothing": result = try noArguments(.nothing)
        case "Point": result = try noArguments(.point)
        case "Ring": result = try noArguments(.ring)
        case "LineString": result = try noArguments(.lineString)
        case "MultiLineString": result = try noArguments(.multiLineString)
        case "Polygon": result = try noArguments(.polygon)
        case "MultiPolygon": result = try noArguments(.multiPolygon)
        case "FixedString":
            try requireArguments()
            let n = try parseInteger()
            guard n > 0, n <= 0xFF_FFFF else { throw error("FixedString length must be from 1 to 16777215") }
            result = .fixedString(length: n)
        case "Decimal":
            try requireArguments()
            let p = try parseInteger()
            let s = consume(0x2C) ? try parseInteger() : 0
            result = try decimal(precision: p, scale: s)
        case "Decimal32", "Decimal64", "Decimal128", "Decimal256":
            try requireArguments()
            let s = try parseInteger()
            let p = ["Decimal32": 9, "Decimal64": 18, "Decimal128": 38, "Decimal256": 76][name]!
            result = try decimal(precision: p, scale: s)
        case "DateTime":
            if hasArguments {
                result = .dateTime(timeZone: try parseQuoted(0x27))
            } else {
                result = .dateTime(timeZone: nil)
            }
        case "DateTime64":
            try requireArguments()
            let p = try parseInteger()
            guard (0...9).contains(p) else { throw error("DateTime64 precision must be from 0 to 9") }
            let tz = consume(0x2C) ? try parseQuoted(0x27) : nil
            result = .dateTime64(precision: p, timeZone: tz)
        case "Time64":
            try requireArguments()
            let p = try parseInteger()
            guard (0...9).contains(p) else { throw error("Time64 precision must be from 0 to 9") }
            result = .time64(precision: p)
        case "Enum8", "Enum16":
            try requireArguments()
            var cases: [ClickHouseType.EnumCase] = []
            repeat {
                let label = try parseQuoted(0x27)
                try expect(0x3D)
                cases.append(.init(label, try parseInteger()))
            } while consume(0x2C)
            let range = name == "Enum8" ? -128...127 : -32768...32767
            for c in cases where !range.contains(c.value) {
                throw error("\(name) value \(c.value) is out of range")
            }
            result = name == "Enum8" ? .enum8(cases) : .enum16(cases)
        case "Nullable":
            try requireArguments()
            result = .nullable(try parseType())
        case "Array":
            try requireArguments()
            result = .array(try parseType())
        case "LowCardinality":
            try requireArguments()
            result = .lowCardinality(try parseType())
        case "Map":
            try requireArguments()
            let key = try parseType()
            try expect(0x2C)
            result = .map(key: key, value: try parseType())
        case "Tuple":
            if hasArguments, consume(0x29) {
                return .tuple([])
            }
            try requireArguments()
            result = .tuple(try parseElements())
        case "Nested":
            try requireArguments()
            result = .nested(try parseElements())
        case "Variant":
            try requireArguments()
            var members: [ClickHouseType] = []
            repeat { members.append(try parseType()) } while consume(0x2C)
            guard members.count <= 255 else { throw error("Variant has more than 255 members") }
            result = .variant(members)
        case "Dynamic":
            if hasArguments {
                let key = try parseIdentifier()
                guard key == "max_types" else { throw error("unknown Dynamic parameter '\(key)'") }
                try expect(0x3D)
                result = .dynamic(maxTypes: try parseInteger())
            } else {
                result = .dynamic(maxTypes: nil)
            }
        case "JSON":
            result = .json(hasArguments ? try parseJSONParameters() : .init())
            if hasArguments { return result }  // parseJSONParameters consumed ')'
        case "SimpleAggregateFunction":
            try requireArguments()
            let function = try parseRawArgument()
            try expect(0x2C)
            result = .simpleAggregateFunction(function: function, try parseType())
        case "AggregateFunction":
            throw ClickHouseTypeError(
                "unsupported type \(typeText(from: typeStart)): aggregate function states are opaque and version-dependent; select finalizeAggregation(...) instead")
        case "Object", "QBit", "Geometry":
            throw ClickHouseTypeError("unsupported type \(typeText(from: typeStart))")
        default:
            if name.hasPrefix("Interval"), let unit = ClickHouseType.IntervalUnit(rawValue: String(name.dropFirst(8))) {
                result = try noArguments(.interval(unit))
            } else {
                throw ClickHouseTypeError("unknown type '\(name)' in '\(text)'")
            }
        }
        if hasArguments { try expect(0x29) }
        return result
    }

    /// The text of the type starting at `start`, up to its closing parenthesis (for error messages).
    mutating func typeText(from start: Int) -> String {
        position = start
        _ = try? parseIdentifier()
        skipSpaces()
        if position < bytes.count, bytes[position] == 0x28 {
            position += 1
            var level = 1
            while position < bytes.count, level > 0 {
                if bytes[position] == 0x28 { level += 1 }
                if bytes[position] == 0x29 { level -= 1 }
                position += 1
            }
        }
        return String(decoding: bytes[start..<position], as: UTF8.self)
    }

    func decimal(precision: Int, scale: Int) throws(ClickHouseTypeError) -> ClickHouseType {
        guard (1...76).contains(precision) else { throw error("Decimal precision must be from 1 to 76") }
        guard (0...precision).contains(scale) else { throw error("Decimal scale must be from 0 to the precision") }
        return .decimal(precision: precision, scale: scale)
    }

    /// Tuple/Nested elements: `T` or `name T`, comma separated, up to the closing parenthesis (not consumed).
    mutating func parseElements() throws(ClickHouseTypeError) -> [ClickHouseType.TupleElement] {
        var elements: [ClickHouseType.TupleElement] = []
        repeat {
            skipSpaces()
            let start = position
            let first = try parseIdentifier()
            skipSpaces()
            let next = position < bytes.count ? bytes[position] : 0
            if next == 0x2C || next == 0x29 || next == 0x28 {
                // Unnamed element: re-read it as a type.
                position = start
                elements.append(.init(nil, try parseType()))
            } else {
                elements.append(.init(first, try parseType()))
            }
        } while consume(0x2C)
        return elements
    }

    /// JSON parameters, through the closing parenthesis.
    mutating func parseJSONParameters() throws(ClickHouseTypeError) -> ClickHouseType.JSONTypeParameters {
        var parameters = ClickHouseType.JSONTypeParameters()
        if consume(0x29) { return parameters }
        repeat {
            skipSpaces()
            let start = position
            // A back-quoted name is a path, never a keyword: `SKIP` UInt8 is the path SKIP.
            let quoted = position < bytes.count && bytes[position] == 0x60
            let word = try parseIdentifier()
            skipSpaces()
            if !quoted && word == "SKIP" {
                _ = try parseRawArgument()
            } else if position < bytes.count, bytes[position] == 0x3D {
                position += 1
                let value = try parseInteger()
                switch word {
                case "max_dynamic_paths": parameters.maxDynamicPaths = value
                case "max_dynamic_types": parameters.maxDynamicTypes = value
                default: throw error("unknown JSON parameter '\(word)'")
                }
            } else {
                parameters.typedPathList.append(.init(word, try parseType()))
            }
            parameters.rawParameters.append(String(decoding: bytes[start..<position], as: UTF8.self)
                .trimmingTrailingSpaces())
        } while consume(0x2C)
        try expect(0x29)
        return parameters
    }
}

func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case 0x30...0x39: return c - 0x30
    case 0x41...0x46: return c - 0x41 + 10
    case 0x61...0x66: return c - 0x61 + 10
    default: return nil
    }
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var s = Substring(self)
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
