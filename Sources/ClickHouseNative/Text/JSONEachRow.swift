/// Renders blocks as `JSONEachRow` text the way ClickHouse writes it with default settings
/// (one object per row, keys in column order).
public enum JSONEachRow {
    /// The lines of `block`, each ending in `\n`.
    /// - Parameter timeZone: the server's time zone, used for `DateTime` columns that name none.
    public static func render(_ block: Block, timeZone: String?) -> String {
        render(block, settings: TextFormatSettings(timeZone: timeZone))
    }

    /// The lines as a `String`, for display and tests: bytes that are not UTF-8 show as U+FFFD
    /// here (``render(_:settings:into:)`` keeps them, as ClickHouse writes them).
    public static func render(_ block: Block, settings: TextFormatSettings = TextFormatSettings()) -> String {
        var out = TextBuffer()
        render(block, settings: settings, into: &out)
        return out.text
    }

    public static func render(_ block: Block, settings: TextFormatSettings = TextFormatSettings(), into out: inout TextBuffer) {
        for row in 0..<block.rowCount {
            out += "{"
            for (index, named) in block.columns.enumerated() {
                if index > 0 { out += "," }
                appendString(named.name, to: &out)
                out += ":"
                appendValue(named.column, row: row, to: &out, settings: settings)
            }
            out += "}\n"
        }
    }

    static func appendString(_ value: String, to out: inout TextBuffer) {
        appendString(bytes: value.utf8, to: &out)
    }

    /// A JSON string as ClickHouse writes it (default settings): the bytes as they are, valid UTF-8
    /// or not, except `"` `\\` `/` and control characters escaped, and U+2028 and U+2029 as
    /// `\u2028` and `\u2029` (JavaScript reads those raw as line ends).
    static func appendString<C: Collection>(bytes: C, to out: inout TextBuffer) where C.Element == UInt8 {
        out.bytes.append(UInt8(ascii: "\""))
        var pendingLead = 0  // how many bytes of E2 80 (the lead of U+2028 and U+2029) were just written
        for byte in bytes {
            let lead = pendingLead
            pendingLead = 0
            if lead == 2 && (byte == 0xA8 || byte == 0xA9) {
                out.bytes.removeLast(2)
                out += byte == 0xA8 ? "\\u2028" : "\\u2029"
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): out += "\\\""
            case 0x5C: out += "\\\\"
            case UInt8(ascii: "/"): out += "\\/"
            case 0x08: out += "\\b"
            case 0x0C: out += "\\f"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case ..<0x20:
                let hex = String(byte, radix: 16, uppercase: true)  // `\u001F`, as the server writes it
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default:
                out.bytes.append(byte)
                if byte == 0xE2 { pendingLead = 1 } else if lead == 1 && byte == 0x80 { pendingLead = 2 }
            }
        }
        out.bytes.append(UInt8(ascii: "\""))
    }

    static func load<T>(_ column: any Column, _ row: Int, as _: T.Type) -> T {
        func open<E: BitwiseCopyable & Sendable>(_ c: FixedWidthColumn<E>) -> T {
            c.values.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: row * MemoryLayout<E>.stride, as: T.self) }
        }
        switch column {
        case let c as FixedWidthColumn<Int8>: return open(c)
        case let c as FixedWidthColumn<Int16>: return open(c)
        case let c as FixedWidthColumn<Int32>: return open(c)
        case let c as FixedWidthColumn<Int64>: return open(c)
        case let c as FixedWidthColumn<UInt8>: return open(c)
        case let c as FixedWidthColumn<UInt16>: return open(c)
        case let c as FixedWidthColumn<UInt32>: return open(c)
        case let c as FixedWidthColumn<UInt64>: return open(c)
        case let c as FixedWidthColumn<Int128>: return open(c)
        case let c as FixedWidthColumn<UInt128>: return open(c)
        case let c as FixedWidthColumn<Float>: return open(c)
        case let c as FixedWidthColumn<Double>: return open(c)
        case let c as FixedWidthColumn<Bits128>: return open(c)
        case let c as FixedWidthColumn<Bits256>: return open(c)
        default: fatalError("not a fixed-width column: \(column.type)")
        }
    }

    static func limbs(_ column: any Column, _ row: Int, count: Int) -> [UInt64] {
        (0..<count).map { i in
            switch column {
            case let c as FixedWidthColumn<Int128>: return c.values.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: row * 16 + i * 8, as: UInt64.self) }
            case let c as FixedWidthColumn<UInt128>: return c.values.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: row * 16 + i * 8, as: UInt64.self) }
            case let c as FixedWidthColumn<Bits256>: return c.values.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: row * 32 + i * 8, as: UInt64.self) }
            default: return 0
            }
        }
    }

    /// Appends the JSON text of value `row` of `column`.
    public static func appendValue(_ column: any Column, row: Int, to out: inout TextBuffer, settings: TextFormatSettings = TextFormatSettings()) {
        switch column.type {
        case .int8: out += String(load(column, row, as: Int8.self))
        case .int16: out += String(load(column, row, as: Int16.self))
        case .int32: out += String(load(column, row, as: Int32.self))
        case .int64: appendInteger(String(load(column, row, as: Int64.self)), quoted: settings.quote64BitIntegers, to: &out)
        case .uint8: out += String(load(column, row, as: UInt8.self))
        case .uint16: out += String(load(column, row, as: UInt16.self))
        case .uint32: out += String(load(column, row, as: UInt32.self))
        case .uint64: appendInteger(String(load(column, row, as: UInt64.self)), quoted: settings.quote64BitIntegers, to: &out)
        case .int128: appendInteger(ValueText.integer(limbs: limbs(column, row, count: 2), signed: true), quoted: settings.quote64BitIntegers, to: &out)
        case .uint128: appendInteger(ValueText.integer(limbs: limbs(column, row, count: 2), signed: false), quoted: settings.quote64BitIntegers, to: &out)
        case .int256: appendInteger(ValueText.integer(limbs: limbs(column, row, count: 4), signed: true), quoted: settings.quote64BitIntegers, to: &out)
        case .uint256: appendInteger(ValueText.integer(limbs: limbs(column, row, count: 4), signed: false), quoted: settings.quote64BitIntegers, to: &out)
        case .float32: appendFloat(ValueText.float(load(column, row, as: Float.self).description), to: &out)
        case .float64: appendFloat(ValueText.float(load(column, row, as: Double.self).description), to: &out)
        case .bfloat16:
            let value = Float(bitPattern: UInt32(load(column, row, as: UInt16.self)) << 16)
            appendFloat(ValueText.float(value.description), to: &out)
        case .bool: out += load(column, row, as: UInt8.self) != 0 ? "true" : "false"
        case let .decimal(precision, scale):
            let unscaled: String
            switch precision {
            case ...9: unscaled = String(load(column, row, as: Int32.self))
            case ...18: unscaled = String(load(column, row, as: Int64.self))
            case ...38: unscaled = ValueText.integer(limbs: limbs(column, row, count: 2), signed: true)
            default: unscaled = ValueText.integer(limbs: limbs(column, row, count: 4), signed: true)
            }
            out += ValueText.decimal(unscaled: unscaled, scale: scale, trailingZeros: settings.decimalTrailingZeros)
        case .string:
            appendString(bytes: (column as! StringColumn).bytes(at: row), to: &out)
        case .fixedString:
            appendString(bytes: (column as! FixedStringColumn)[row], to: &out)
        case .date, .date32, .dateTime, .dateTime64, .time, .time64, .uuid, .ipv4, .ipv6, .enum8, .enum16:
            appendString(scalarText(column, row: row, settings: settings), to: &out)
        case .interval: appendInteger(String(load(column, row, as: Int64.self)), quoted: settings.quote64BitIntegers, to: &out)
        case .nothing: out += "null"
        case .nullable:
            let nullable = column as! NullableColumn
            if nullable.isNull(row) { out += "null" } else { appendValue(nullable.values, row: row, to: &out, settings: settings) }
        case .array:
            let array = column as! ArrayColumn
            out += "["
            for (n, i) in array.range(at: row).enumerated() {
                if n > 0 { out += "," }
                appendValue(array.elements, row: i, to: &out, settings: settings)
            }
            out += "]"
        case .map:
            let map = column as! MapColumn
            out += "{"
            for (n, i) in map.range(at: row).enumerated() {
                if n > 0 { out += "," }
                appendKey(to: &out) { appendValue(map.keys, row: i, to: &$0, settings: settings) }
                out += ":"
                appendValue(map.values, row: i, to: &out, settings: settings)
            }
            out += "}"
        case let .tuple(elements):
            let tuple = column as! TupleColumn
            let named = !elements.isEmpty && elements.allSatisfy { $0.name != nil }
            out += named ? "{" : "["
            for (index, element) in tuple.elements.enumerated() {
                if index > 0 { out += "," }
                if named {
                    appendString(elements[index].name!, to: &out)
                    out += ":"
                }
                appendValue(element, row: row, to: &out, settings: settings)
            }
            out += named ? "}" : "]"
        case .lowCardinality:
            let lc = column as! LowCardinalityColumn
            if lc.isNull(row) { out += "null" } else { appendValue(lc.dictionary, row: lc.indexes[row], to: &out, settings: settings) }
        case .variant:
            let variant = column as! VariantColumn
            if variant.isNull(row) { out += "null" } else {
                appendValue(variant.members[Int(variant.discriminators[row])], row: variant.positions[row], to: &out, settings: settings)
            }
        case .dynamic:
            let dynamic = column as! DynamicColumn
            let d = dynamic.variant.discriminators[row]
            if d != VariantColumn.nullDiscriminator, Int(d) == dynamic.sharedVariantIndex {
                // A value of a type over the block's type limit: binary type + value inside a String.
                let bytes = (dynamic.variant.members[Int(d)] as! StringColumn).bytes(at: dynamic.variant.positions[row])
                RowBinaryText.appendSharedValue(bytes, to: &out, settings: settings)
            } else {
                appendValue(dynamic.variant, row: row, to: &out, settings: settings)
            }
        case .json:
            appendJSONObject(column as! JSONObjectColumn, row: row, to: &out, settings: settings)
        case .point, .ring, .lineString, .multiLineString, .polygon, .multiPolygon, .nested, .simpleAggregateFunction:
            appendValue((column as! AliasColumn).storage, row: row, to: &out, settings: settings)
        }
    }

    /// The text form of a date, time, UUID, IP address or enum value, shared by the text formats
    /// (JSON quotes it, TabSeparated escapes it).
    static func scalarText(_ column: any Column, row: Int, settings: TextFormatSettings) -> String {
        switch column.type {
        case .date:
            let days = load(column, row, as: UInt16.self)
            return days == 0 && settings.zeroDateAsZeros ? "0000-00-00" : ValueText.date(days: Int64(days))
        case .date32: return ValueText.date(days: Int64(load(column, row, as: Int32.self)))
        case let .dateTime(tz):
            let seconds = load(column, row, as: UInt32.self)
            return seconds == 0 && settings.zeroDateAsZeros ? "0000-00-00 00:00:00"
                : ValueText.dateTime(seconds: Int64(seconds), timeZone: tz ?? settings.timeZone)
        case let .dateTime64(precision, tz):
            return ValueText.dateTime64(ticks: load(column, row, as: Int64.self), precision: precision, timeZone: tz ?? settings.timeZone)
        case .time: return ValueText.time(ticks: Int64(load(column, row, as: Int32.self)), precision: 0)
        case let .time64(precision): return ValueText.time(ticks: load(column, row, as: Int64.self), precision: precision)
        case .uuid: return ValueText.uuid(load(column, row, as: Bits128.self))
        case .ipv4: return ValueText.ipv4(load(column, row, as: UInt32.self))
        case .ipv6: return ValueText.ipv6(load(column, row, as: Bits128.self))
        case let .enum8(cases):
            let value = Int(load(column, row, as: Int8.self))
            return cases.first { $0.value == value }?.name ?? String(value)
        case let .enum16(cases):
            let value = Int(load(column, row, as: Int16.self))
            return cases.first { $0.value == value }?.name ?? String(value)
        default:
            preconditionFailure("no scalar text form for \(column.type)")
        }
    }

    /// A map key, which `write` appends as a value: keys are strings in JSON, so one written
    /// unquoted (a number) is quoted after the fact.
    static func appendKey(to out: inout TextBuffer, _ write: (inout TextBuffer) throws -> Void) rethrows {
        let start = out.count
        try write(&out)
        guard out.bytes[start] != UInt8(ascii: "\"") else { return }
        let key = Array(out.bytes[start...])
        out.bytes.removeSubrange(start...)
        appendString(bytes: key, to: &out)
    }

    static func appendInteger(_ digits: String, quoted: Bool, to out: inout TextBuffer) {
        if quoted { out += "\"" + digits + "\"" } else { out += digits }
    }

    static func appendFloat(_ text: String, to out: inout TextBuffer) {
        // JSON has no NaN or infinities: ClickHouse writes null for them.
        if text == "nan" || text == "inf" || text == "-inf" { out += "null" } else { out += text }
    }

    /// A JSON column's row as a nested object: paths sorted, dotted paths nested, absent paths omitted.
    static func appendJSONObject(_ json: JSONObjectColumn, row: Int, to out: inout TextBuffer, settings: TextFormatSettings) {
        if let text = json.text {
            out += text[row]
            return
        }
        var entries: [(path: [Substring], value: TextBuffer)] = []
        for (name, column) in zip(json.typedPathNames, json.typedPaths) {
            var value = TextBuffer()
            appendValue(column, row: row, to: &value, settings: settings)
            entries.append((name.split(separator: ".", omittingEmptySubsequences: false), value))
        }
        for (name, column) in zip(json.dynamicPathNames, json.dynamicPaths) where !column.variant.isNull(row) {
            var value = TextBuffer()
            appendValue(column, row: row, to: &value, settings: settings)
            entries.append((name.split(separator: ".", omittingEmptySubsequences: false), value))
        }
        if let shared = json.sharedData {
            // Paths over the dynamic-path limit: path plus binary type and value.
            let paths = shared.keys as! StringColumn
            let values = shared.values as! StringColumn
            for i in shared.range(at: row) {
                var value = TextBuffer()
                RowBinaryText.appendSharedValue(values.bytes(at: i), to: &value, settings: settings)
                entries.append((paths[i].split(separator: ".", omittingEmptySubsequences: false), value))
            }
        }
        entries.sort { $0.path.lexicographicallyPrecedes($1.path, by: precedesByBytes) }
        appendNested(entries[...], depth: 0, to: &out)
    }

    static func appendNested(_ entries: ArraySlice<(path: [Substring], value: TextBuffer)>, depth: Int, to out: inout TextBuffer) {
        out += "{"
        var index = entries.startIndex
        var first = true
        while index < entries.endIndex {
            let key = entries[index].path[depth]
            var end = index
            while end < entries.endIndex, entries[end].path[depth] == key { end += 1 }
            if !first { out += "," }
            first = false
            appendString(String(key), to: &out)
            out += ":"
            if entries[index].path.count == depth + 1 {
                out += entries[index].value
            } else {
                appendNested(entries[index..<end], depth: depth + 1, to: &out)
            }
            index = end
        }
        out += "}"
    }
}
