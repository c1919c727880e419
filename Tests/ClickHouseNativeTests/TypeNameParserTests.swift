import Testing
@testable import ClickHouseNative

@Suite struct TypeNameParserTests {
    /// Names as servers send them: each parses and renders back to the same text.
    static let canonicalNames = [
        "Int8", "Int16", "Int32", "Int64", "Int128", "Int256", "UInt8", "UInt16", "UInt32", "UInt64", "UInt128", "UInt256",
        "Float32", "Float64", "BFloat16", "Bool", "Decimal(9, 2)", "Decimal(76, 10)", "String", "FixedString(16)",
        "Date", "Date32", "DateTime", "DateTime('Asia/Kolkata')", "DateTime64(3)", "DateTime64(9, 'Europe/Moscow')",
        "Time", "Time64(6)", "UUID", "IPv4", "IPv6",
        "Enum8('a' = 1, 'b' = 2)", "Enum8('b' = -2, 'a' = 1)", "Enum16('it\\'s' = -300, 'back\\\\slash' = 0, 'привет' = 1000)",
        "Nullable(String)", "Array(Nullable(Int32))", "Array(Array(UInt8))", "Tuple(UInt8, String)", "Tuple(a UInt8, b String)",
        "Tuple(`a b` UInt8, `1x` String)", "Tuple()", "Map(String, UInt64)", "Map(LowCardinality(String), Array(Nullable(Int32)))",
        "LowCardinality(String)", "LowCardinality(Nullable(String))", "Nested(a UInt8, b String)", "Nothing", "Nullable(Nothing)",
        "IntervalNanosecond", "IntervalDay", "IntervalYear", "Variant(String, UInt64)", "Dynamic", "Dynamic(max_types=10)",
        "JSON", "JSON(max_dynamic_paths=8, a.b UInt32, SKIP c, SKIP REGEXP '^x')", "SimpleAggregateFunction(sum, UInt64)",
        "SimpleAggregateFunction(anyLast, Nullable(String))",
        "Point", "Ring", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
        "Array(Tuple(UInt8, Array(String)))", "Tuple(Nullable(String), Array(LowCardinality(String)))",
    ]

    @Test(arguments: canonicalNames)
    func roundTrip(name: String) throws {
        #expect(try ClickHouseType.parse(name).name == name)
    }

    @Test func structure() throws {
        #expect(try ClickHouseType.parse("Map(LowCardinality(String), Array(Nullable(Int32)))")
            == .map(key: .lowCardinality(.string), value: .array(.nullable(.int32))))
        #expect(try ClickHouseType.parse("Decimal32(4)") == .decimal(precision: 9, scale: 4))
        #expect(try ClickHouseType.parse("Decimal256(4)").name == "Decimal(76, 4)")
        #expect(try ClickHouseType.parse("Enum8('it\\'s' = -1)") == .enum8([.init("it's", -1)]))
        #expect(try ClickHouseType.parse("Tuple(a UInt8, Array(String))")
            == .tuple([.init("a", .uint8), .init(nil, .array(.string))]))
        #expect(try ClickHouseType.parse("JSON(a.b UInt32)") == .json(.init(typedPathList: [.init("a.b", .uint32)], rawParameters: ["a.b UInt32"])))
        #expect(try ClickHouseType.parse("Point").storageType == .tuple([.init(nil, .float64), .init(nil, .float64)]))
        #expect(try ClickHouseType.parse("MultiPolygon").storageType == .array(.polygon))
    }

    @Test func backQuotedSkipIsAPath() throws {
        // Found in review: `SKIP` back-quoted (chDB writes path names so) was taken for the keyword,
        // the typed path was lost and every path after it misaligned.
        let type = try ClickHouseType.parse("JSON(`SKIP` UInt8, b String, SKIP c)")
        guard case let .json(parameters) = type else { Issue.record("not JSON: \(type)"); return }
        #expect(parameters.typedPathList.map(\.name) == ["SKIP", "b"])
        #expect(parameters.typedPathList.map(\.type) == [.uint8, .string])
    }

    @Test func aggregateFunctionIsAClearError() {
        #expect(throws: ClickHouseTypeError("unsupported type AggregateFunction(uniq, UInt64): aggregate function states are opaque and version-dependent; select finalizeAggregation(...) instead")) {
            try ClickHouseType.parse("Array(AggregateFunction(uniq, UInt64))")
        }
    }

    @Test func unknownTypeIsNamed() {
        #expect(throws: ClickHouseTypeError("unknown type 'Foo' in 'Array(Foo)'")) {
            try ClickHouseType.parse("Array(Foo)")
        }
    }

    @Test func syntaxErrorsNameTheOffset() {
        #expect(throws: ClickHouseTypeError("cannot parse type 'Array(UInt8': expected ')' at offset 11")) {
            try ClickHouseType.parse("Array(UInt8")
        }
        #expect(throws: ClickHouseTypeError("cannot parse type 'Enum8('a' = 300)': Enum8 value 300 is out of range at offset 15")) {
            try ClickHouseType.parse("Enum8('a' = 300)")
        }
        #expect(throws: ClickHouseTypeError("cannot parse type 'UInt8(3)': UInt8 takes no arguments at offset 6")) {
            try ClickHouseType.parse("UInt8(3)")
        }
    }

    @Test func hostileNestingIsRefused() {
        let name = String(repeating: "Array(", count: 10_000) + "UInt8" + String(repeating: ")", count: 10_000)
        // The 65th level is refused where it starts, after 64 times "Array(".
        #expect(throws: ClickHouseTypeError("cannot parse type '\(name)': type nested deeper than 64 levels at offset \(64 * 6)")) {
            try ClickHouseType.parse(name)
        }
    }
}
