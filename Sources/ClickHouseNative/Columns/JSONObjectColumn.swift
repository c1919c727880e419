/// The structure a JSON column announces in its prefix: which dynamic paths the block has.
struct JSONStructure: Sendable {
    var version: UInt64
    var v1Slot: UInt64
    var dynamicPaths: [String]
    var typedPrefixes: [PrefixState]
    var dynamicStructures: [DynamicStructure]
}

/// `JSON` (the object type of ClickHouse 24.x and later): typed paths (declared in the type), dynamic
/// paths (a Dynamic column each, NULL where a row lacks the path) and, in the V1/V2 forms, shared
/// data for paths over the limit (path plus binary-encoded value). The string form (version 1, when
/// the server writes JSON as text) is a plain String column of JSON documents.
public struct JSONObjectColumn: Column {
    public let type: ClickHouseType
    /// 0 V1, 1 string, 2 V2, 3 flattened; written back the same way.
    public let serializationVersion: UInt64
    let v1Slot: UInt64
    public var typedPathNames: [String]
    public var typedPaths: [any Column]
    public var dynamicPathNames: [String]
    public var dynamicPaths: [DynamicColumn]
    /// Shared data (V1/V2): per row, the paths and binary-encoded values of paths not stored separately.
    public var sharedData: MapColumn?
    /// The documents as text, for the string form.
    public var text: StringColumn?
    let rows: Int

    public var count: Int { rows }
}

struct JSONObjectCodec: ColumnCodec {
    static let v1: UInt64 = 0
    static let stringForm: UInt64 = 1
    static let v2: UInt64 = 2
    static let flattened: UInt64 = 3

    let type: ClickHouseType
    let typedNames: [String]
    let typedCodecs: [any ColumnCodec]
    let sharedDataType = ClickHouseType.map(key: .string, value: .string)

    init(type: ClickHouseType, parameters: ClickHouseType.JSONTypeParameters) throws {
        self.type = type
        // Typed paths are serialized in path order.
        let sorted = parameters.typedPathList.sorted { precedesByBytes($0.name ?? "", $1.name ?? "") }
        typedNames = sorted.map { $0.name ?? "" }
        typedCodecs = try sorted.map { try makeCodec(for: $0.type) }
    }

    func readPrefix(_ reader: inout ByteReader) throws -> PrefixState {
        let version = try rowContext(0) { try reader.readInteger(as: UInt64.self) }
        var slot: UInt64 = 0
        switch version {
        case Self.stringForm:
            return .json(JSONStructure(version: version, v1Slot: 0, dynamicPaths: [], typedPrefixes: [], dynamicStructures: []))
        case Self.v1: slot = try rowContext(0) { try reader.readVarUInt() }
        case Self.v2, Self.flattened: break
        default: throw ColumnCodecError.invalid("unsupported JSON serialization version \(version)")
        }
        let count = try rowContext(0) { try reader.readLength() }
        var paths: [String] = []
        for _ in 0..<count { paths.append(try rowContext(0) { try reader.readString() }) }
        let typedPrefixes = try typedCodecs.map { try $0.readPrefix(&reader) }
        var structures: [DynamicStructure] = []
        for _ in paths { structures.append(try DynamicCodec.readStructure(&reader)) }
        return .json(JSONStructure(version: version, v1Slot: slot, dynamicPaths: paths, typedPrefixes: typedPrefixes, dynamicStructures: structures))
    }

    func read(_ reader: inout ByteReader, count: Int, prefix: PrefixState) throws -> any Column {
        guard case let .json(structure) = prefix else { throw ColumnCodecError.invalid("JSON data without its prefix") }
        if structure.version == Self.stringForm {
            let text = try StringCodec(type: .string).read(&reader, count: count, prefix: .none) as! StringColumn
            return JSONObjectColumn(type: type, serializationVersion: structure.version, v1Slot: 0, typedPathNames: [], typedPaths: [],
                                    dynamicPathNames: [], dynamicPaths: [], sharedData: nil, text: text, rows: count)
        }
        guard structure.typedPrefixes.count == typedCodecs.count else {
            throw ColumnCodecError.invalid("JSON prefix has \(structure.typedPrefixes.count) typed paths, its type \(typedCodecs.count)")
        }
        var typed: [any Column] = []
        for (index, codec) in typedCodecs.enumerated() {
            typed.append(try codec.read(&reader, count: count, prefix: structure.typedPrefixes[index]))
        }
        var dynamic: [DynamicColumn] = []
        for dynamicStructure in structure.dynamicStructures {
            dynamic.append(try DynamicCodec.readColumn(&reader, count: count, structure: dynamicStructure, type: .dynamic(maxTypes: nil)))
        }
        var shared: MapColumn?
        if structure.version != Self.flattened {
            shared = try makeCodec(for: sharedDataType).read(&reader, count: count, prefix: .children([.none, .none])) as? MapColumn
        }
        return JSONObjectColumn(type: type, serializationVersion: structure.version, v1Slot: structure.v1Slot,
                                typedPathNames: typedNames, typedPaths: typed, dynamicPathNames: structure.dynamicPaths,
                                dynamicPaths: dynamic, sharedData: shared, text: nil, rows: count)
    }

    func writePrefix(_ column: any Column, to writer: inout ByteWriter) throws {
        let json = try cast(column, to: JSONObjectColumn.self)
        writer.writeInteger(json.serializationVersion)
        if json.serializationVersion == Self.stringForm { return }
        if json.serializationVersion == Self.v1 { writer.writeVarUInt(json.v1Slot) }
        writer.writeVarUInt(json.dynamicPathNames.count)
        for path in json.dynamicPathNames { writer.writeString(path) }
        for (codec, typed) in zip(typedCodecs, json.typedPaths) { try codec.writePrefix(typed, to: &writer) }
        for dynamic in json.dynamicPaths { try DynamicCodec.writeStructure(dynamic, to: &writer) }
    }

    func write(_ column: any Column, to writer: inout ByteWriter) throws {
        let json = try cast(column, to: JSONObjectColumn.self)
        if let text = json.text {
            try StringCodec(type: .string).write(text, to: &writer)
            return
        }
        guard json.typedPaths.count == typedCodecs.count else {
            throw ColumnCodecError.invalid("JSON has \(typedCodecs.count) typed paths in its type but \(json.typedPaths.count) columns")
        }
        for (codec, typed) in zip(typedCodecs, json.typedPaths) { try codec.write(typed, to: &writer) }
        for dynamic in json.dynamicPaths { try DynamicCodec.writeData(dynamic, to: &writer) }
        if json.serializationVersion != Self.flattened {
            let shared = json.sharedData ?? MapColumn(type: sharedDataType, offsets: [UInt64](repeating: 0, count: json.count),
                                                      keys: StringColumn(), values: StringColumn())
            try makeCodec(for: sharedDataType).write(shared, to: &writer)
        }
    }
}
