/// A ClickHouse data type, as a tree. ``name`` renders the canonical name the server uses, and
/// ``parse(_:)`` reads any name a server sends.
public indirect enum ClickHouseType: Hashable, Sendable {
    case int8, int16, int32, int64, int128, int256
    case uint8, uint16, uint32, uint64, uint128, uint256
    case float32, float64, bfloat16
    case bool
    /// `Decimal(P, S)`; `Decimal32(S)` … `Decimal256(S)` parse to this with P = 9, 18, 38, 76.
    case decimal(precision: Int, scale: Int)
    case string
    case fixedString(length: Int)
    case date, date32
    case dateTime(timeZone: String?)
    case dateTime64(precision: Int, timeZone: String?)
    case time
    case time64(precision: Int)
    case uuid, ipv4, ipv6
    case enum8([EnumCase])
    case enum16([EnumCase])
    case nullable(ClickHouseType)
    case array(ClickHouseType)
    case tuple([TupleElement])
    case map(key: ClickHouseType, value: ClickHouseType)
    case lowCardinality(ClickHouseType)
    /// `Nested(a T1, b T2)`: stored as `Array(Tuple(a T1, b T2))`.
    case nested([TupleElement])
    case nothing
    case interval(IntervalUnit)
    /// Members in the order of the type name (servers sort them by name); the discriminator is the index.
    case variant([ClickHouseType])
    case dynamic(maxTypes: Int?)
    case json(JSONTypeParameters)
    /// Serialized exactly as its argument type.
    case simpleAggregateFunction(function: String, ClickHouseType)
    /// Geo aliases: Point = Tuple(Float64, Float64), Ring/LineString = Array(Point),
    /// Polygon/MultiLineString = Array(Ring), MultiPolygon = Array(Polygon).
    case point, ring, lineString, multiLineString, polygon, multiPolygon

    public struct EnumCase: Hashable, Sendable {
        public var name: String
        public var value: Int
        public init(_ name: String, _ value: Int) {
            self.name = name
            self.value = value
        }
    }

    public struct TupleElement: Hashable, Sendable {
        public var name: String?
        public var type: ClickHouseType
        public init(_ name: String? = nil, _ type: ClickHouseType) {
            self.name = name
            self.type = type
        }
    }

    public enum IntervalUnit: String, CaseIterable, Hashable, Sendable {
        case nanosecond = "Nanosecond", microsecond = "Microsecond", millisecond = "Millisecond"
        case second = "Second", minute = "Minute", hour = "Hour", day = "Day", week = "Week"
        case month = "Month", quarter = "Quarter", year = "Year"
    }

    /// Parameters of `JSON(...)`: typed paths matter for the encoding; the rest is kept as written.
    public struct JSONTypeParameters: Hashable, Sendable {
        public var typedPaths: [(path: String, type: ClickHouseType)] {
            get { typedPathList.map { ($0.name ?? "", $0.type) } }
        }
        /// Typed paths, in the order of the type name.
        public var typedPathList: [TupleElement]
        /// All parameters as written in the type name, e.g. `["max_dynamic_paths=8", "a.b UInt32", "SKIP c"]`.
        public var rawParameters: [String]
        public var maxDynamicPaths: Int?
        public var maxDynamicTypes: Int?

        public init(typedPathList: [TupleElement] = [], rawParameters: [String] = [],
                    maxDynamicPaths: Int? = nil, maxDynamicTypes: Int? = nil) {
            self.typedPathList = typedPathList
            self.rawParameters = rawParameters
            self.maxDynamicPaths = maxDynamicPaths
            self.maxDynamicTypes = maxDynamicTypes
        }
    }
}

extension ClickHouseType: CustomStringConvertible {
    public var description: String { name }

    /// The canonical type name, as `IDataType::getName()` spells it.
    public var name: String {
        switch self {
        case .int8: return "Int8"
        case .int16: return "Int16"
        case .int32: return "Int32"
        case .int64: return "Int64"
        case .int128: return "Int128"
        case .int256: return "Int256"
        case .uint8: return "UInt8"
        case .uint16: return "UInt16"
        case .uint32: return "UInt32"
        case .uint64: return "UInt64"
        case .uint128: return "UInt128"
        case .uint256: return "UInt256"
        case .float32: return "Float32"
        case .float64: return "Float64"
        case .bfloat16: return "BFloat16"
        case .bool: return "Bool"
        case let .decimal(p, s): return "Decimal(\(p), \(s))"
        case .string: return "String"
        case let .fixedString(n): return "FixedString(\(n))"
        case .date: return "Date"
        case .date32: return "Date32"
        case let .dateTime(tz): return tz.map { "DateTime(\(quoteTypeString($0)))" } ?? "DateTime"
        case let .dateTime64(p, tz): return tz.map { "DateTime64(\(p), \(quoteTypeString($0)))" } ?? "DateTime64(\(p))"
        case .time: return "Time"
        case let .time64(p): return "Time64(\(p))"
        case .uuid: return "UUID"
        case .ipv4: return "IPv4"
        case .ipv6: return "IPv6"
        case let .enum8(cases): return "Enum8(\(enumCasesName(cases)))"
        case let .enum16(cases): return "Enum16(\(enumCasesName(cases)))"
        case let .nullable(inner): return "Nullable(\(inner.name))"
        case let .array(inner): return "Array(\(inner.name))"
        case let .tuple(elements): return "Tuple(\(elementsName(elements)))"
        case let .map(k, v): return "Map(\(k.name), \(v.name))"
        case let .lowCardinality(inner): return "LowCardinality(\(inner.name))"
        case let .nested(elements): return "Nested(\(elementsName(elements)))"
        case .nothing: return "Nothing"
        case let .interval(unit): return "Interval\(unit.rawValue)"
        case let .variant(members): return "Variant(\(members.map(\.name).joined(separator: ", ")))"
        case let .dynamic(maxTypes): return maxTypes.map { "Dynamic(max_types=\($0))" } ?? "Dynamic"
        case let .json(parameters):
            return parameters.rawParameters.isEmpty ? "JSON" : "JSON(\(parameters.rawParameters.joined(separator: ", ")))"
        case let .simpleAggregateFunction(function, inner): return "SimpleAggregateFunction(\(function), \(inner.name))"
        case .point: return "Point"
        case .ring: return "Ring"
        case .lineString: return "LineString"
        case .multiLineString: return "MultiLineString"
        case .polygon: return "Polygon"
        case .multiPolygon: return "MultiPolygon"
        }
    }

    /// Whether NULL is a value of the type: `Nullable(T)` and `LowCardinality(Nullable(T))`.
    public var isNullable: Bool {
        switch self {
        case .nullable: return true
        case let .lowCardinality(inner): return inner.isNullable
        default: return false
        }
    }

    /// The type whose encoding this type uses: aliases are resolved (geo types, Nested,
    /// SimpleAggregateFunction); everything else is itself.
    public var storageType: ClickHouseType {
        switch self {
        case .point: return .tuple([.init(nil, .float64), .init(nil, .float64)])
        case .ring, .lineString: return .array(.point)
        case .polygon, .multiLineString: return .array(.ring)
        case .multiPolygon: return .array(.polygon)
        case let .nested(elements): return .array(.tuple(elements))
        case let .simpleAggregateFunction(_, inner): return inner.storageType
        default: return self
        }
    }
}

private func enumCasesName(_ cases: [ClickHouseType.EnumCase]) -> String {
    cases.map { "\(quoteTypeString($0.name)) = \($0.value)" }.joined(separator: ", ")
}

private func elementsName(_ elements: [ClickHouseType.TupleElement]) -> String {
    elements.map { element in
        guard let name = element.name else { return element.type.name }
        return "\(quoteIdentifierIfNeeded(name)) \(element.type.name)"
    }.joined(separator: ", ")
}

/// Single-quoted with backslash escapes, as ClickHouse writes string literals in type names.
func quoteTypeString(_ value: String) -> String {
    var result = "'"
    for scalar in value.unicodeScalars {
        switch scalar {
        case "'": result += "\\'"
        case "\\": result += "\\\\"
        case "\u{08}": result += "\\b"
        case "\u{0C}": result += "\\f"
        case "\r": result += "\\r"
        case "\n": result += "\\n"
        case "\t": result += "\\t"
        case "\0": result += "\\0"
        default: result.unicodeScalars.append(scalar)
        }
    }
    return result + "'"
}

/// Back-quotes a tuple element name unless it is a plain identifier (as ClickHouse does).
func quoteIdentifierIfNeeded(_ name: String) -> String {
    let bytes = Array(name.utf8)
    let isPlain = !bytes.isEmpty && !(bytes[0] >= 0x30 && bytes[0] <= 0x39) && bytes.allSatisfy { c in
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F
    }
    if isPlain { return name }
    var result = "`"
    for scalar in name.unicodeScalars {
        switch scalar {
        case "`": result += "\\`"
        case "\\": result += "\\\\"
        default: result.unicodeScalars.append(scalar)
        }
    }
    return result + "`"
}
