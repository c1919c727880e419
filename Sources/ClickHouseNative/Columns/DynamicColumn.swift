/// The structure a Dynamic column announces in its prefix: which types its values have.
struct DynamicStructure: Sendable {
    var version: UInt64
    /// V1 writes a count before the type list (it once held max_dynamic_types).
    var v1Slot: UInt64
    /// Type names as written, in wire order.
    var typeNames: [String]
    /// Variant members: for V1/V2 the listed types plus `SharedVariant`, sorted by name; for the
    /// flattened form the listed types in wire order.
    var memberTypes: [ClickHouseType]
    var sharedVariantIndex: Int?
    var memberCodecs: [any ColumnCodec]
    var variantMode: UInt64
    var memberPrefixes: [PrefixState]
}

/// `Dynamic`: each row holds a value of any type (or NULL). Stored as a Variant over the types that
/// occur in the block.
public struct DynamicColumn: Column {
    public let type: ClickHouseType
    /// Serialization version as read (1 V1, 2 V2, 3 flattened); written back the same way.
    public let serializationVersion: UInt64
    let v1Slot: UInt64
    /// The value types announced by the block, in wire order.
    public let typeNames: [String]
    /// The member types of ``variant``; `SharedVariant` (values of types over the limit, binary
    /// encoded) is a `String` member at ``sharedVariantIndex``.
    public let memberTypes: [ClickHouseType]
    public let sharedVariantIndex: Int?
    public var variant: VariantColumn

    public var count: Int { variant.count }

    init(type: ClickHouseType, structure: DynamicStructure, variant: VariantColumn) {
        self.type = type
        self.serializationVersion = structure.version
        self.v1Slot = structure.v1Slot
        self.typeNames = structure.typeNames
        self.memberTypes = structure.memberTypes
        self.sharedVariantIndex = structure.sharedVariantIndex
        self.variant = variant
    }
}

struct DynamicCodec: ColumnCodec {
    static let v1: UInt64 = 1
    static let v2: UInt64 = 2
    static let flattened: UInt64 = 3
    static let sharedVariantName = "SharedVariant"

    let type: ClickHouseType

    func readPrefix(_ reader: inout ByteReader) throws -> PrefixState {
        .dynamic(try Self.readStructure(&reader))
    }

    /// How many Dynamic structures enclose the one being read. A Dynamic may hold `Array(JSON(...))`
    /// whose paths are Dynamic again (ClickHouse shrinks the limits at each level, so real data
    /// nests a few levels), but a hostile prefix could nest until the stack overflows: 5 000 levels
    /// in a 125 KB block crashed the process.
    @TaskLocal static var nesting = 0
    static let maximumNesting = 16

    static func readStructure(_ reader: inout ByteReader) throws -> DynamicStructure {
        guard nesting < maximumNesting else {
            throw ColumnCodecError.invalid("Dynamic values nested more than \(maximumNesting) levels deep")
        }
        return try $nesting.withValue(nesting + 1) { try readStructureLevel(&reader) }
    }

    private static func readStructureLevel(_ reader: inout ByteReader) throws -> DynamicStructure {
        let version = try rowContext(0) { try reader.readInteger(as: UInt64.self) }
        var v1Slot: UInt64 = 0
        switch version {
        case v1: v1Slot = try rowContext(0) { try reader.readVarUInt() }
        case v2, flattened: break
        default: throw ColumnCodecError.invalid("unsupported Dynamic serialization version \(version)")
        }
        let count = try rowContext(0) { try reader.readLength() }
        var names: [String] = []
        for _ in 0..<count { names.append(try rowContext(0) { try reader.readString() }) }
        var types: [ClickHouseType] = []
        for name in names {
            do { types.append(try ClickHouseType.parse(name)) } catch {
                throw ColumnCodecError.invalid("Dynamic value type: \(error.message)")
            }
        }
        var memberTypes = types
        var memberNames = names
        var sharedIndex: Int?
        if version != flattened {
            memberNames.append(sharedVariantName)
            memberTypes.append(.string)
            let order = memberNames.indices.sorted { precedesByBytes(memberNames[$0], memberNames[$1]) }
            memberTypes = order.map { memberTypes[$0] }
            sharedIndex = order.firstIndex(of: memberNames.count - 1)
        } else if count > 254 {
            throw ColumnCodecError.invalid("Dynamic block with \(count) types is not supported (at most 254)")
        }
        let codecs = try memberTypes.map { try makeCodec(for: $0) }
        var mode = VariantCodec.basicMode
        if version != flattened {
            mode = try rowContext(0) { try reader.readInteger(as: UInt64.self) }
            try VariantCodec.checkMode(mode)
        }
        let prefixes = try codecs.map { try $0.readPrefix(&reader) }
        return DynamicStructure(version: version, v1Slot: v1Slot, typeNames: names, memberTypes: memberTypes,
                                sharedVariantIndex: sharedIndex, memberCodecs: codecs, variantMode: mode, memberPrefixes: prefixes)
    }

    func read(_ reader: inout ByteReader, count: Int, prefix: PrefixState) throws -> any Column {
        guard case let .dynamic(structure) = prefix else { throw ColumnCodecError.invalid("Dynamic data without its prefix") }
        return try Self.readColumn(&reader, count: count, structure: structure, type: type)
    }

    static func readColumn(_ reader: inout ByteReader, count: Int, structure: DynamicStructure, type: ClickHouseType) throws -> DynamicColumn {
        var discriminators = try VariantCodec.readDiscriminators(&reader, count: count)
        if structure.version == flattened {
            // NULL is written as the number of types; keep 255 as NULL in memory like Variant.
            let nullValue = UInt8(structure.typeNames.count)
            for i in discriminators.indices where discriminators[i] == nullValue { discriminators[i] = VariantColumn.nullDiscriminator }
        }
        let memberType = ClickHouseType.variant(structure.memberTypes)
        let variant = try VariantCodec.readMembers(&reader, discriminators: discriminators, codecs: structure.memberCodecs,
                                                   prefixes: structure.memberPrefixes, type: memberType)
        return DynamicColumn(type: type, structure: structure, variant: variant)
    }

    func writePrefix(_ column: any Column, to writer: inout ByteWriter) throws {
        try Self.writeStructure(try cast(column, to: DynamicColumn.self), to: &writer)
    }

    static func writeStructure(_ dynamic: DynamicColumn, to writer: inout ByteWriter) throws {
        writer.writeInteger(dynamic.serializationVersion)
        if dynamic.serializationVersion == v1 { writer.writeVarUInt(dynamic.v1Slot) }
        writer.writeVarUInt(dynamic.typeNames.count)
        for name in dynamic.typeNames { writer.writeString(name) }
        if dynamic.serializationVersion != flattened { writer.writeInteger(VariantCodec.basicMode) }
        for (memberType, member) in zip(dynamic.memberTypes, dynamic.variant.members) {
            try makeCodec(for: memberType).writePrefix(member, to: &writer)
        }
    }

    func write(_ column: any Column, to writer: inout ByteWriter) throws {
        try Self.writeData(try cast(column, to: DynamicColumn.self), to: &writer)
    }

    static func writeData(_ dynamic: DynamicColumn, to writer: inout ByteWriter) throws {
        if dynamic.serializationVersion == flattened {
            let nullValue = UInt8(dynamic.typeNames.count)
            writer.writeFixedWidthArray(dynamic.variant.discriminators.map { $0 == VariantColumn.nullDiscriminator ? nullValue : $0 })
        } else {
            writer.writeFixedWidthArray(dynamic.variant.discriminators)
        }
        for (memberType, member) in zip(dynamic.memberTypes, dynamic.variant.members) {
            try makeCodec(for: memberType).write(member, to: &writer)
        }
    }
}
