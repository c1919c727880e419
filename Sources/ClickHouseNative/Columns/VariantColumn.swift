/// `Variant(T1, ..., Tk)`: a discriminator per row (the member index, 255 = NULL) and one column per
/// member holding only the rows of that member, in row order.
public struct VariantColumn: Column {
    public static let nullDiscriminator: UInt8 = 255

    public let type: ClickHouseType
    public var discriminators: [UInt8]
    public var members: [any Column]
    /// `positions[row]` is the row's index inside its member column.
    public private(set) var positions: [Int]

    public init(type: ClickHouseType, discriminators: [UInt8], members: [any Column]) throws {
        var counts = [Int](repeating: 0, count: members.count)
        var positions = [Int](repeating: 0, count: discriminators.count)
        for (row, d) in discriminators.enumerated() where d != Self.nullDiscriminator {
            guard Int(d) < members.count else {
                throw ColumnCodecError.invalid("Variant discriminator \(d) at row \(row) is not one of the \(members.count) members")
            }
            positions[row] = counts[Int(d)]
            counts[Int(d)] += 1
        }
        for (index, member) in members.enumerated() where member.count != counts[index] {
            throw ColumnCodecError.invalid("Variant member \(index) has \(member.count) values, the discriminators name \(counts[index])")
        }
        self.type = type
        self.discriminators = discriminators
        self.members = members
        self.positions = positions
    }

    public var count: Int { discriminators.count }
    public func isNull(_ row: Int) -> Bool { discriminators[row] == Self.nullDiscriminator }
}

struct VariantCodec: ColumnCodec {
    static let basicMode: UInt64 = 0
    static let compactMode: UInt64 = 1

    let type: ClickHouseType
    let members: [any ColumnCodec]

    func readPrefix(_ reader: inout ByteReader) throws -> PrefixState {
        let mode = try rowContext(0) { try reader.readInteger(as: UInt64.self) }
        try Self.checkMode(mode)
        return .variant(mode: mode, members: try members.map { try $0.readPrefix(&reader) })
    }

    /// Only the basic mode (a discriminator byte per row). The compact mode is MergeTree's storage
    /// form (`use_compact_variant_discriminators_serialization`), never the Native format's, and
    /// would let a few bytes stand for any number of rows: a 34-byte block of 2^30 NULL rows took
    /// 9.4 GB to decode, and 2^40 rows aborted the process.
    static func checkMode(_ mode: UInt64) throws {
        guard mode == basicMode else {
            throw ColumnCodecError.invalid(mode == compactMode ? "Variant discriminators in compact mode (MergeTree's storage form) are not supported in Native data"
                                                              : "invalid Variant discriminators mode \(mode)")
        }
    }

    func read(_ reader: inout ByteReader, count: Int, prefix: PrefixState) throws -> any Column {
        guard case let .variant(mode, memberPrefixes) = prefix else {
            throw ColumnCodecError.invalid("Variant data without its prefix")
        }
        let discriminators = try Self.readDiscriminators(&reader, count: count)
        return try Self.readMembers(&reader, discriminators: discriminators, codecs: members, prefixes: memberPrefixes, type: type)
    }

    static func readDiscriminators(_ reader: inout ByteReader, count: Int) throws -> [UInt8] {
        guard reader.remaining >= count else { throw ColumnCodecError.unexpectedEnd(row: reader.remaining) }
        return try reader.readFixedWidthArray(of: UInt8.self, count: count)
    }

    static func readMembers(_ reader: inout ByteReader, discriminators: [UInt8], codecs: [any ColumnCodec],
                            prefixes: [PrefixState], type: ClickHouseType) throws -> VariantColumn {
        var counts = [Int](repeating: 0, count: codecs.count)
        for (row, d) in discriminators.enumerated() where d != VariantColumn.nullDiscriminator {
            guard Int(d) < codecs.count else {
                throw ColumnCodecError.invalid("Variant discriminator \(d) at row \(row) is not one of the \(codecs.count) members")
            }
            counts[Int(d)] += 1
        }
        var columns: [any Column] = []
        columns.reserveCapacity(codecs.count)
        for (index, codec) in codecs.enumerated() {
            columns.append(try codec.read(&reader, count: counts[index], prefix: index < prefixes.count ? prefixes[index] : .none))
        }
        return try VariantColumn(type: type, discriminators: discriminators, members: columns)
    }

    func writePrefix(_ column: any Column, to writer: inout ByteWriter) throws {
        let variant = try cast(column, to: VariantColumn.self)
        // The server numbers the members in name order whatever order a type name lists them in;
        // written in another order, discriminator 0 would mean another member to the reader.
        let names = members.map(\.type.name)
        guard zip(names, names.dropFirst()).allSatisfy({ precedesByBytes($0, $1) }) else {
            let sorted = names.sorted(by: precedesByBytes)
            throw ColumnCodecError.invalid("Variant members must be in the server's order, sorted by name: Variant(\(sorted.joined(separator: ", ")))")
        }
        writer.writeInteger(Self.basicMode)
        for (codec, member) in zip(members, variant.members) { try codec.writePrefix(member, to: &writer) }
    }

    func write(_ column: any Column, to writer: inout ByteWriter) throws {
        let variant = try cast(column, to: VariantColumn.self)
        guard variant.members.count == members.count else {
            throw ColumnCodecError.invalid("Variant has \(members.count) members in its type but \(variant.members.count) columns")
        }
        writer.writeFixedWidthArray(variant.discriminators)
        for (codec, member) in zip(members, variant.members) { try codec.write(member, to: &writer) }
    }
}
