/// Renders single values in ClickHouse's row-binary encoding as JSON text. Dynamic columns store
/// values of types over their limit this way (binary type, then the value), and so does JSON's
/// shared data.
enum RowBinaryText {
    static func appendSharedValue(_ bytes: ArraySlice<UInt8>, to out: inout TextBuffer, settings: TextFormatSettings) {
        let rendered: TextBuffer? = Array(bytes).withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            var text = TextBuffer()
            do {
                let type = try BinaryTypeEncoding.decode(&reader)
                try appendValue(type, &reader, to: &text, settings: settings)
                return text
            } catch {
                return nil
            }
        }
        out += rendered ?? TextBuffer("null")
    }

    static func appendValue(_ type: ClickHouseType, _ reader: inout ByteReader, to out: inout TextBuffer, settings: TextFormatSettings,
                            depth: Int = 0) throws {
        // Each value may carry its own type (Dynamic), so nesting is bounded here, not by a type name:
        // 100 000 nested Dynamic tags in 200 KB overflowed the stack.
        guard depth < 64 else { throw ColumnCodecError.invalid("row-binary value nested too deeply") }
        switch type.storageType {
        case .nothing:
            out += "null"
        case .string, .fixedString, .int8, .int16, .int32, .int64, .int128, .int256, .uint8, .uint16, .uint32, .uint64,
             .uint128, .uint256, .float32, .float64, .bfloat16, .bool, .decimal, .date, .date32, .dateTime, .dateTime64,
             .time, .time64, .uuid, .ipv4, .ipv6, .enum8, .enum16, .interval:
            // One value in row-binary form has the same bytes as a one-row Native column.
            let codec = try makeCodec(for: type)
            let column = try codec.read(&reader, count: 1, prefix: .none)
            JSONEachRow.appendValue(column, row: 0, to: &out, settings: settings)
        case let .nullable(inner):
            if try reader.readUInt8() != 0 { out += "null" } else { try appendValue(inner, &reader, to: &out, settings: settings, depth: depth + 1) }
        case let .lowCardinality(inner):
            try appendValue(inner, &reader, to: &out, settings: settings, depth: depth + 1)
        case let .array(inner):
            let n = try reader.readLength()
            out += "["
            for i in 0..<n {
                if i > 0 { out += "," }
                try appendValue(inner, &reader, to: &out, settings: settings, depth: depth + 1)
            }
            out += "]"
        case let .map(key, value):
            let n = try reader.readLength()
            out += "{"
            for i in 0..<n {
                if i > 0 { out += "," }
                try JSONEachRow.appendKey(to: &out) { try appendValue(key, &reader, to: &$0, settings: settings, depth: depth + 1) }
                out += ":"
                try appendValue(value, &reader, to: &out, settings: settings, depth: depth + 1)
            }
            out += "}"
        case let .tuple(elements):
            let named = !elements.isEmpty && elements.allSatisfy { $0.name != nil }
            out += named ? "{" : "["
            for (i, element) in elements.enumerated() {
                if i > 0 { out += "," }
                if named {
                    JSONEachRow.appendString(element.name!, to: &out)
                    out += ":"
                }
                try appendValue(element.type, &reader, to: &out, settings: settings, depth: depth + 1)
            }
            out += named ? "}" : "]"
        case let .variant(members):
            let d = try reader.readUInt8()
            if d == VariantColumn.nullDiscriminator { out += "null"; return }
            guard Int(d) < members.count else { throw ColumnCodecError.invalid("Variant discriminator \(d) out of range") }
            try appendValue(members[Int(d)], &reader, to: &out, settings: settings, depth: depth + 1)
        case .dynamic:
            let inner = try BinaryTypeEncoding.decode(&reader)
            try appendValue(inner, &reader, to: &out, settings: settings, depth: depth + 1)
        case let .json(parameters):
            // Number of paths, then (path, value): typed paths in their type, others as Dynamic
            // (binary type, then value; `Nothing` for a path this row lacks).
            let count = try reader.readLength()
            var entries: [(path: [Substring], value: TextBuffer)] = []
            for _ in 0..<count {
                let path = try reader.readString()
                var value = TextBuffer()
                if let typed = parameters.typedPathList.first(where: { $0.name == path }) {
                    try appendValue(typed.type, &reader, to: &value, settings: settings, depth: depth + 1)
                } else {
                    let inner = try BinaryTypeEncoding.decode(&reader)
                    if inner == .nothing { continue }
                    try appendValue(inner, &reader, to: &value, settings: settings, depth: depth + 1)
                }
                entries.append((path.split(separator: ".", omittingEmptySubsequences: false), value))
            }
            entries.sort { $0.path.lexicographicallyPrecedes($1.path, by: precedesByBytes) }
            JSONEachRow.appendNested(entries[...], depth: 0, to: &out)
        default:
            throw ColumnCodecError.invalid("cannot render a row-binary value of type \(type.name)")
        }
    }
}
