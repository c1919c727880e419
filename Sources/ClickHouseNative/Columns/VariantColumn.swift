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
        guard mode == Self.basicMode || mode == Self.compactMode else {
            throw ColumnCodecError.invalid("invalid Variant discriminators mode \(mode)")
        }
        return .variant(mode: mode, members: try members.map { try $0.readPrefix(&reader) })
    }

    func read(_ reader: inout ByteReader, count: Int, prefix: PrefixState) throws -> any Column {
        guard case let .variant(mode, memberPrefixes) = prefix else {
            throw ColumnCodecError.invalid("Variant data without its prefix")
        }
        let discriminators = try Self.readDiscriminators(&reader, count: count, compact: mode == Self.compactMode)
        return try Self.readMembers(&reader, discriminators: discriminators, codecs: members, prefixes: memberPrefixes, type: type)
    }

    static func readDiscriminators(_ reader: inout ByteReader, count: Int, compact: Bool) throws -> [UInt8] {
        guard reader.remaining >= (compact ? 0 : count) else { throw ColumnCodecError.unexpectedEnd(row: reader.remaining) }
        guard compact else { return try reader.readFixedWidthArray(of: UInt8.self, count: count) }
        // Compact mode: granules of (VarUInt rows, UInt8 format, then rows discriminators or just one).
        var result: [UInt8] = []
        while result.count < count {
            let rows = try rowContext(result.count) { try reader.readLength(minimumElementSize: 0) }
            guard rows > 0, rows <= count - result.count else {
                throw ColumnCodecError.invalid("Variant granule of \(rows) rows exceeds the column")
            }
            let format = try rowContext(result.count) { try reader.readUInt8() }
            switch format {
            case 0: result.append(contentsOf: try rowContext(result.count) { try reader.readBytes(count: rows) })
            case 1: result.append(contentsOf: repeatElement(try rowContext(result.count) { try reader.readUInt8() }, count: rows))
            default: throw ColumnCodecError.invalid("invalid Variant granule format \(format)")
            }
        }
        return result
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
