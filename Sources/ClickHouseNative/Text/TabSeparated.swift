/// Renders blocks as `TabSeparated` text the way ClickHouse writes it: values escaped at the top
/// level, quoted inside arrays, tuples and maps, `\N` for NULL.
public enum TabSeparated {
    /// The rows of `block`, each ending in `\n`; with `names`, a header line of column names first.
    /// As a `String`, for display and tests: bytes that are not UTF-8 show as U+FFFD here
    /// (``render(_:settings:names:into:)`` keeps them, as ClickHouse writes them).
    public static func render(_ block: Block, settings: TextFormatSettings = TextFormatSettings(), names: Bool = false) -> String {
        var out = TextBuffer()
        render(block, settings: settings, names: names, into: &out)
        return out.text
    }

    public static func render(_ block: Block, settings: TextFormatSettings = TextFormatSettings(), names: Bool = false,
                              into out: inout TextBuffer) {
        if names { header(block, into: &out) }
        for row in 0..<block.rowCount {
            for (index, named) in block.columns.enumerated() {
                if index > 0 { out += "\t" }
                appendValue(named.column, row: row, to: &out, settings: settings, quoted: false)
            }
            out += "\n"
        }
    }

    /// The column-name line of `TabSeparatedWithNames`.
    public static func header(_ block: Block, into out: inout TextBuffer) {
        for (index, named) in block.columns.enumerated() {
            if index > 0 { out += "\t" }
            appendEscaped(named.name.utf8, to: &out)
        }
        out += "\n"
    }

    /// ClickHouse's escaped form: backslash escapes for `\b \f \n \r \t \0 \\ '`; other bytes as they are.
    static func appendEscaped<C: Collection>(_ bytes: C, to out: inout TextBuffer) where C.Element == UInt8 {
        for byte in bytes {
            switch byte {
            case 0x08: out.bytes += [0x5C, UInt8(ascii: "b")]
            case 0x0C: out.bytes += [0x5C, UInt8(ascii: "f")]
            case 0x0A: out.bytes += [0x5C, UInt8(ascii: "n")]
            case 0x0D: out.bytes += [0x5C, UInt8(ascii: "r")]
            case 0x09: out.bytes += [0x5C, UInt8(ascii: "t")]
            case 0x00: out.bytes += [0x5C, UInt8(ascii: "0")]
            case 0x5C: out.bytes += [0x5C, 0x5C]
            case 0x27: out.bytes += [0x5C, 0x27]
            default: out.bytes.append(byte)
            }
        }
    }

    static func appendString<C: Collection>(_ bytes: C, to out: inout TextBuffer, quoted: Bool) where C.Element == UInt8 {
        if quoted { out += "'" }
        appendEscaped(bytes, to: &out)
        if quoted { out += "'" }
    }

    static func appendText(_ text: String, to out: inout TextBuffer, quoted: Bool) {
        appendString(text.utf8, to: &out, quoted: quoted)
    }

    /// TabSeparated never quotes wide integers, whatever the JSON setting.
    static let unquotedIntegers = TextFormatSettings(quote64BitIntegers: false)

    /// Appends value `row` of `column`; `quoted` inside composite values.
    public static func appendValue(_ column: any Column, row: Int, to out: inout TextBuffer,
                                   settings: TextFormatSettings = TextFormatSettings(), quoted: Bool = false) {
        typealias J = JSONEachRow
        switch column.type {
        case .string: appendString((column as! StringColumn).bytes(at: row), to: &out, quoted: quoted)
        case .fixedString: appendString((column as! FixedStringColumn)[row], to: &out, quoted: quoted)
        case .float32: out += ValueText.float(J.load(column, row, as: Float.self).description)
        case .float64: out += ValueText.float(J.load(column, row, as: Double.self).description)
        case .bfloat16: out += ValueText.float(Float(bitPattern: UInt32(J.load(column, row, as: UInt16.self)) << 16).description)
        case .int64, .uint64, .int128, .uint128, .int256, .uint256, .interval:
            J.appendValue(column, row: row, to: &out, settings: Self.unquotedIntegers)
        case .decimal:
            J.appendValue(column, row: row, to: &out, settings: settings)
        case .date, .date32, .dateTime, .dateTime64, .time, .time64, .uuid, .ipv4, .ipv6, .enum8, .enum16:
            appendText(J.scalarText(column, row: row, settings: settings), to: &out, quoted: quoted)
        case .nothing: out += quoted ? "NULL" : "\\N"
        case .nullable:
            let nullable = column as! NullableColumn
            if nullable.isNull(row) { out += quoted ? "NULL" : "\\N" } else {
                appendValue(nullable.values, row: row, to: &out, settings: settings, quoted: quoted)
            }
        case .array:
            let array = column as! ArrayColumn
            out += "["
            for (n, i) in array.range(at: row).enumerated() {
                if n > 0 { out += "," }
                appendValue(array.elements, row: i, to: &out, settings: settings, quoted: true)
            }
            out += "]"
        case .map:
            let map = column as! MapColumn
            out += "{"
            for (n, i) in map.range(at: row).enumerated() {
                if n > 0 { out += "," }
                appendValue(map.keys, row: i, to: &out, settings: settings, quoted: true)
                out += ":"
                appendValue(map.values, row: i, to: &out, settings: settings, quoted: true)
            }
            out += "}"
        case .tuple:
            let tuple = column as! TupleColumn
            out += "("
            for (index, element) in tuple.elements.enumerated() {
                if index > 0 { out += "," }
                appendValue(element, row: row, to: &out, settings: settings, quoted: true)
            }
            out += ")"
        case .lowCardinality:
            let lc = column as! LowCardinalityColumn
            if lc.isNull(row) { out += quoted ? "NULL" : "\\N" } else {
                appendValue(lc.dictionary, row: lc.indexes[row], to: &out, settings: settings, quoted: quoted)
            }
        case .variant:
            let variant = column as! VariantColumn
            if variant.isNull(row) { out += quoted ? "NULL" : "\\N" } else {
                appendValue(variant.members[Int(variant.discriminators[row])], row: variant.positions[row], to: &out, settings: settings, quoted: quoted)
            }
        case .dynamic:
            let dynamic = column as! DynamicColumn
            let d = dynamic.variant.discriminators[row]
            if d == VariantColumn.nullDiscriminator { out += quoted ? "NULL" : "\\N" } else if Int(d) == dynamic.sharedVariantIndex {
                var json = TextBuffer()
                J.appendValue(dynamic, row: row, to: &json, settings: settings)
                appendString(json.bytes, to: &out, quoted: quoted)
            } else {
                appendValue(dynamic.variant, row: row, to: &out, settings: settings, quoted: quoted)
            }
        case .json:
            var json = TextBuffer()
            J.appendValue(column, row: row, to: &json, settings: settings)
            appendString(json.bytes, to: &out, quoted: quoted)
        case .point, .ring, .lineString, .multiLineString, .polygon, .multiPolygon, .nested, .simpleAggregateFunction:
            appendValue((column as! AliasColumn).storage, row: row, to: &out, settings: settings, quoted: quoted)
        default:
            // Integers up to 32 bits, Bool, intervals: the same text as JSON.
            J.appendValue(column, row: row, to: &out, settings: settings)
        }
    }
}
