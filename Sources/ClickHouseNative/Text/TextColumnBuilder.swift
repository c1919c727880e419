import Foundation

/// Builds one column of a given type from ``TextValue``s, as the server reads its text formats.
protocol TextColumnBuilder: AnyObject {
    func append(_ value: TextValue) throws
    /// The type's default value (0, empty string, ...) for a field missing from the input.
    func appendDefault()
    func build() -> any Column
}

/// The builder for a type; types without a text form (Variant, Dynamic, JSON, ...) are refused by name.
func makeTextBuilder(for type: ClickHouseType, timeZone: String?) throws -> any TextColumnBuilder {
    func fixed<T: BitwiseCopyable & Sendable>(_ zero: T, _ parse: @escaping ([UInt8]) -> T?) -> any TextColumnBuilder {
        FixedTextBuilder(type: type, zero: zero, parse: parse)
    }
    switch type {
    case .int8: return fixed(Int8(0)) { ScalarText.integer($0) }
    case .int16: return fixed(Int16(0)) { ScalarText.integer($0) }
    case .int32: return fixed(Int32(0)) { ScalarText.integer($0) }
    case .int64: return fixed(Int64(0)) { ScalarText.integer($0) }
    case .int128: return fixed(Int128(0)) { ScalarText.integer($0) }
    case .uint8: return fixed(UInt8(0)) { ScalarText.integer($0) }
    case .uint16: return fixed(UInt16(0)) { ScalarText.integer($0) }
    case .uint32: return fixed(UInt32(0)) { ScalarText.integer($0) }
    case .uint64: return fixed(UInt64(0)) { ScalarText.integer($0) }
    case .uint128: return fixed(UInt128(0)) { ScalarText.integer($0) }
    case .int256: return fixed(Bits256(limb0: 0, limb1: 0, limb2: 0, limb3: 0)) { ScalarText.bits256($0, signed: true) }
    case .uint256: return fixed(Bits256(limb0: 0, limb1: 0, limb2: 0, limb3: 0)) { ScalarText.bits256($0, signed: false) }
    case .float32: return fixed(Float(0)) { ScalarText.float($0) }
    case .float64: return fixed(Double(0)) { ScalarText.float($0) }
    case .bfloat16: return fixed(UInt16(0)) { ScalarText.float($0).map { (value: Float) in ScalarText.bfloat16(value) } }
    case .bool: return fixed(UInt8(0)) { ScalarText.bool($0) }
    case let .decimal(precision, scale):
        switch precision {
        case ...9: return fixed(Int32(0)) { ScalarText.decimalUnscaled($0, precision: precision, scale: scale).flatMap { Int32($0) } }
        case ...18: return fixed(Int64(0)) { ScalarText.decimalUnscaled($0, precision: precision, scale: scale).flatMap { Int64($0) } }
        case ...38: return fixed(Int128(0)) { ScalarText.decimalUnscaled($0, precision: precision, scale: scale).flatMap { Int128($0) } }
        default:
            return fixed(Bits256(limb0: 0, limb1: 0, limb2: 0, limb3: 0)) {
                ScalarText.decimalUnscaled($0, precision: precision, scale: scale).flatMap { ScalarText.bits256(Array($0.utf8), signed: true) }
            }
        }
    case .date: return fixed(UInt16(0)) { ScalarText.days($0).flatMap { UInt16(exactly: $0) } }
    case .date32: return fixed(Int32(0)) { ScalarText.days($0).flatMap { Int32(exactly: $0) } }
    case let .dateTime(zone):
        return fixed(UInt32(0)) { ScalarText.dateTimeTicks($0, precision: 0, timeZone: zone ?? timeZone).map { UInt32(clamping: $0) } }
    case let .dateTime64(precision, zone):
        return fixed(Int64(0)) { ScalarText.dateTimeTicks($0, precision: precision, timeZone: zone ?? timeZone) }
    case .time: return fixed(Int32(0)) { ScalarText.timeTicks($0, precision: 0).flatMap { Int32(exactly: $0) } }
    case let .time64(precision): return fixed(Int64(0)) { ScalarText.timeTicks($0, precision: precision) }
    case .interval: return fixed(Int64(0)) { ScalarText.integer($0) }
    case .uuid: return fixed(Bits128(first: 0, second: 0)) { ScalarText.uuid($0) }
    case .ipv4: return fixed(UInt32(0)) { ScalarText.ipv4($0) }
    case .ipv6: return fixed(Bits128(first: 0, second: 0)) { ScalarText.ipv6($0) }
    case let .enum8(cases):
        return fixed(Int8(cases.first.map { Int8(truncatingIfNeeded: $0.value) } ?? 0)) { ScalarText.enumValue($0, cases).flatMap { Int8(exactly: $0) } }
    case let .enum16(cases):
        return fixed(Int16(cases.first.map { Int16(truncatingIfNeeded: $0.value) } ?? 0)) { ScalarText.enumValue($0, cases).flatMap { Int16(exactly: $0) } }
    case .string: return StringTextBuilder()
    case let .fixedString(length): return FixedStringTextBuilder(length: length)
    case let .nullable(inner): return NullableTextBuilder(type: type, inner: try makeTextBuilder(for: inner, timeZone: timeZone))
    case let .array(inner): return ArrayTextBuilder(type: type, elements: try makeTextBuilder(for: inner, timeZone: timeZone))
    case let .map(key, value):
        return MapTextBuilder(type: type, keys: try makeTextBuilder(for: key, timeZone: timeZone),
                              values: try makeTextBuilder(for: value, timeZone: timeZone))
    case let .tuple(elements):
        return TupleTextBuilder(type: type, names: elements.map(\.name),
                                elements: try elements.map { try makeTextBuilder(for: $0.type, timeZone: timeZone) })
    case let .lowCardinality(inner): return try LowCardinalityTextBuilder(type: type, inner: inner, timeZone: timeZone)
    case .point, .ring, .lineString, .multiLineString, .polygon, .multiPolygon, .nested, .simpleAggregateFunction:
        return AliasTextBuilder(type: type, storage: try makeTextBuilder(for: type.storageType, timeZone: timeZone))
    case .nothing, .variant, .dynamic, .json:
        throw TextInputError("text input of type \(type.name) is not supported")
    }
}

final class FixedTextBuilder<T: BitwiseCopyable & Sendable>: TextColumnBuilder {
    var column: FixedWidthColumn<T>
    let zero: T
    let parse: ([UInt8]) -> T?

    init(type: ClickHouseType, zero: T, parse: @escaping ([UInt8]) -> T?) {
        column = FixedWidthColumn(type: type)
        self.zero = zero
        self.parse = parse
    }

    func append(_ value: TextValue) throws {
        if value.isNull { return appendDefault() }
        guard case let .text(bytes) = value, let parsed = parse(bytes) else {
            throw TextInputError("cannot parse \(value.preview) as \(column.type.name)")
        }
        column.append(parsed)
    }

    func appendDefault() { column.append(zero) }
    func build() -> any Column { column }
}

final class StringTextBuilder: TextColumnBuilder {
    var column = StringColumn()
    func append(_ value: TextValue) throws {
        if value.isNull { return appendDefault() }
        guard case let .text(bytes) = value else { throw TextInputError("cannot parse \(value.preview) as String") }
        column.append(bytes: bytes)
    }
    func appendDefault() { column.append(bytes: EmptyCollection<UInt8>()) }
    func build() -> any Column { column }
}

final class FixedStringTextBuilder: TextColumnBuilder {
    var column: FixedStringColumn
    init(length: Int) { column = FixedStringColumn(length: length) }
    func append(_ value: TextValue) throws {
        if value.isNull { return appendDefault() }
        guard case let .text(bytes) = value else { throw TextInputError("cannot parse \(value.preview) as \(column.type.name)") }
        guard bytes.count <= column.length else {
            throw TextInputError("\(value.preview) is too long for \(column.type.name)")
        }
        try column.append(bytes: bytes)
    }
    func appendDefault() { try? column.append(bytes: EmptyCollection<UInt8>()) }
    func build() -> any Column { column }
}

final class NullableTextBuilder: TextColumnBuilder {
    let type: ClickHouseType
    var nulls: [UInt8] = []
    let inner: any TextColumnBuilder
    init(type: ClickHouseType, inner: any TextColumnBuilder) {
        self.type = type
        self.inner = inner
    }
    func append(_ value: TextValue) throws {
        if value.isNull {
            nulls.append(1)
            inner.appendDefault()
        } else {
            try inner.append(value)
            nulls.append(0)
        }
    }
    func appendDefault() {
        nulls.append(1)
        inner.appendDefault()
    }
    func build() -> any Column { NullableColumn(type: type, nulls: nulls, values: inner.build()) }
}

final class ArrayTextBuilder: TextColumnBuilder {
    let type: ClickHouseType
    var offsets: [UInt64] = []
    var total: UInt64 = 0
    let elements: any TextColumnBuilder
    init(type: ClickHouseType, elements: any TextColumnBuilder) {
        self.type = type
        self.elements = elements
    }
    func append(_ value: TextValue) throws {
        if value.isNull { return appendDefault() }
        if value.isNull { return appendDefault() }
        guard case let .list(items) = value else { throw TextInputError("cannot parse \(value.preview) as \(type.name)") }
        for item in items { try elements.append(item) }
        total += UInt64(items.count)
        offsets.append(total)
    }
    func appendDefault() { offsets.append(total) }
    func build() -> any Column { ArrayColumn(type: type, offsets: offsets, elements: elements.build()) }
}

final class MapTextBuilder: TextColumnBuilder {
    let type: ClickHouseType
    var offsets: [UInt64] = []
    var total: UInt64 = 0
    let keys: any TextColumnBuilder
    let values: any TextColumnBuilder
    init(type: ClickHouseType, keys: any TextColumnBuilder, values: any TextColumnBuilder) {
        self.type = type
        self.keys = keys
        self.values = values
    }
    func append(_ value: TextValue) throws {
        if value.isNull { return appendDefault() }
        if value.isNull { return appendDefault() }
        guard case let .object(pairs) = value else { throw TextInputError("cannot parse \(value.preview) as \(type.name)") }
        for pair in pairs {
            try keys.append(pair.key)
            try values.append(pair.value)
        }
        total += UInt64(pairs.count)
        offsets.append(total)
    }
    func appendDefault() { offsets.append(total) }
    func build() -> any Column { MapColumn(type: type, offsets: offsets, keys: keys.build(), values: values.build()) }
}

final class TupleTextBuilder: TextColumnBuilder {
    let type: ClickHouseType
    let names: [String?]
    let elements: [any TextColumnBuilder]
    var rows = 0
    init(type: ClickHouseType, names: [String?], elements: [any TextColumnBuilder]) {
        self.type = type
        self.names = names
        self.elements = elements
    }
    func append(_ value: TextValue) throws {
        rows += 1
        switch value {
        case .null: for builder in elements { builder.appendDefault() }
        case let .tuple(items), let .list(items):
            guard items.count == elements.count else {
                throw TextInputError("cannot parse \(value.preview) as \(type.name): \(elements.count) elements expected")
            }
            for (builder, item) in zip(elements, items) { try builder.append(item) }
        case let .object(pairs):
            // A JSON object for a named tuple: elements by name, missing ones default.
            var byName: [String: TextValue] = [:]
            for pair in pairs {
                guard case let .text(key) = pair.key else { continue }
                byName[String(decoding: key, as: UTF8.self)] = pair.value
            }
            for (builder, name) in zip(elements, names) {
                if let name, let item = byName.removeValue(forKey: name) { try builder.append(item) } else { builder.appendDefault() }
            }
            if let unknown = byName.keys.sorted().first {
                throw TextInputError("\(type.name) has no element \(unknown)")
            }
        default:
            throw TextInputError("cannot parse \(value.preview) as \(type.name)")
        }
    }
    func appendDefault() {
        rows += 1
        for builder in elements { builder.appendDefault() }
    }
    func build() -> any Column {
        elements.isEmpty ? TupleColumn(type: type, emptyTupleCount: rows) : TupleColumn(type: type, elements: elements.map { $0.build() })
    }
}

/// Collects distinct values into a dictionary in order of appearance, after the default value
/// (and the NULL slot for `LowCardinality(Nullable(T))`), as the server builds it.
final class LowCardinalityTextBuilder: TextColumnBuilder {
    let type: ClickHouseType
    let nullable: Bool
    let dictionary: any TextColumnBuilder
    var positions: [[UInt8]: Int] = [:]
    var indexes: [Int] = []
    var dictionarySize = 0
    let defaultIndex: Int

    init(type: ClickHouseType, inner: ClickHouseType, timeZone: String?) throws {
        self.type = type
        var base = inner
        if case let .nullable(wrapped) = inner {
            nullable = true
            base = wrapped
        } else {
            nullable = false
        }
        dictionary = try makeTextBuilder(for: base, timeZone: timeZone)
        if nullable {
            dictionary.appendDefault()
            dictionarySize += 1
        }
        dictionary.appendDefault()
        defaultIndex = dictionarySize
        dictionarySize += 1
    }

    func append(_ value: TextValue) throws {
        guard case let .text(bytes) = value else {
            // NULL into a non-nullable LowCardinality takes the default, as it does for the plain type.
            guard value.isNull else { throw TextInputError("cannot parse \(value.preview) as \(type.name)") }
            return appendDefault()
        }
        if let position = positions[bytes] {
            indexes.append(position)
            return
        }
        try dictionary.append(value)
        positions[bytes] = dictionarySize
        indexes.append(dictionarySize)
        dictionarySize += 1
    }

    func appendDefault() { indexes.append(nullable ? 0 : defaultIndex) }

    func build() -> any Column {
        LowCardinalityColumn(type: type, dictionary: dictionary.build(),
                             indexes: .narrowest(indexes, dictionarySize: dictionarySize))
    }
}

final class AliasTextBuilder: TextColumnBuilder {
    let type: ClickHouseType
    let storage: any TextColumnBuilder
    init(type: ClickHouseType, storage: any TextColumnBuilder) {
        self.type = type
        self.storage = storage
    }
    func append(_ value: TextValue) throws { try storage.append(value) }
    func appendDefault() { storage.appendDefault() }
    func build() -> any Column { AliasColumn(type: type, storage: storage.build()) }
}

/// Text spellings of scalar values, read as the server reads them in text formats.
enum ScalarText {
    static func string(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    static func integer<T: FixedWidthInteger>(_ bytes: [UInt8]) -> T? {
        var text = Substring(string(bytes))
        if text.hasPrefix("+") { text = text.dropFirst() }
        return T(text, radix: 10)
    }

    static func bool(_ bytes: [UInt8]) -> UInt8? {
        switch string(bytes).lowercased() {
        case "true", "1": return 1
        case "false", "0": return 0
        default: return nil
        }
    }

    /// Round to nearest even on the 16 high bits of the Float32.
    static func bfloat16(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(bits >> 16) | 0x40 }
        let rounding = UInt32(0x7FFF) + ((bits >> 16) & 1)
        return UInt16((bits &+ rounding) >> 16)
    }

    /// Decimal text of any size as 256-bit two's complement.
    static func bits256(_ bytes: [UInt8], signed: Bool) -> Bits256? {
        var digits = bytes[...]
        var negative = false
        if let first = digits.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") {
            negative = first == UInt8(ascii: "-")
            digits = digits.dropFirst()
        }
        guard !digits.isEmpty, !negative || signed else { return nil }
        var limbs = [UInt64](repeating: 0, count: 4)
        for digit in digits {
            guard digit >= 0x30, digit <= 0x39 else { return nil }
            var carry = UInt64(digit - 0x30)
            for i in 0..<4 {
                let (high, low) = limbs[i].multipliedFullWidth(by: 10)
                let (sum, overflow) = low.addingReportingOverflow(carry)
                limbs[i] = sum
                carry = high + (overflow ? 1 : 0)
            }
            guard carry == 0 else { return nil }
        }
        if signed, limbs[3] >> 63 == 1, !(negative && limbs == [0, 0, 0, 1 << 63]) { return nil }
        if negative {
            var carry: UInt64 = 1
            for i in 0..<4 {
                let (sum, overflow) = (~limbs[i]).addingReportingOverflow(carry)
                limbs[i] = sum
                carry = overflow ? 1 : 0
            }
        }
        return Bits256(limb0: limbs[0], limb1: limbs[1], limb2: limbs[2], limb3: limbs[3])
    }

    /// Decimal or exponent notation, `inf` and `nan`; not Swift's hexadecimal floats, which the server refuses.
    static func float<T: LosslessStringConvertible & BinaryFloatingPoint>(_ bytes: [UInt8]) -> T? {
        guard !bytes.contains(where: { $0 == UInt8(ascii: "x") || $0 == UInt8(ascii: "X") }) else { return nil }
        return T(string(bytes))
    }

    /// `-12.345` with scale 2 as the unscaled integer text `-1234` (extra digits are cut, as the
    /// server does); nil when the value has more than `precision` digits ("Decimal value is too big").
    static func decimalUnscaled(_ bytes: [UInt8], precision: Int, scale: Int) -> String? {
        var text = Substring(string(bytes))
        var sign = ""
        if text.hasPrefix("-") || text.hasPrefix("+") {
            sign = text.hasPrefix("-") ? "-" : ""
            text = text.dropFirst()
        }
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let integerPart = parts[0]
        let fraction = parts.count > 1 ? parts[1] : ""
        guard !(integerPart.isEmpty && fraction.isEmpty),
              integerPart.allSatisfy(\.isASCIIDigit), fraction.allSatisfy(\.isASCIIDigit) else { return nil }
        let kept = fraction.prefix(scale)
        let digits = (integerPart + kept + String(repeating: "0", count: scale - kept.count)).drop { $0 == "0" }
        guard digits.count <= precision else { return nil }
        return sign + (digits.isEmpty ? "0" : String(digits))
    }

    /// Days since 1970-01-01 of `YYYY-MM-DD` (H. Hinnant's days-from-civil).
    static func days(_ bytes: [UInt8]) -> Int64? {
        if bytes.elementsEqual("0000-00-00".utf8) { return 0 }  // the zero date as servers before 20.1 print it
        guard let (y, m, d) = civilDate(bytes[...]) else { return nil }
        return CivilDate.days(year: y, month: m, day: d)
    }

    static func civilDate(_ bytes: ArraySlice<UInt8>) -> (Int64, Int64, Int64)? {
        let parts = bytes.split(separator: UInt8(ascii: "-"), omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, (1...2).contains(parts[1].count), (1...2).contains(parts[2].count),
              let y = Int64(string(Array(parts[0]))), let m = Int64(string(Array(parts[1]))), let d = Int64(string(Array(parts[2]))),
              (1...12).contains(m), (1...31).contains(d) else { return nil }
        return (y, m, d)
    }

    /// `YYYY-MM-DD hh:mm:ss[.fff]` in `timeZone` (or a Unix timestamp) as ticks of 10^-precision s.
    static func dateTimeTicks(_ bytes: [UInt8], precision: Int, timeZone: String?) -> Int64? {
        let scale = Int64(ValueText.pow10(precision))
        let text = string(bytes)
        if text.allSatisfy({ $0.isASCIIDigit || $0 == "." }), !text.isEmpty {
            // A Unix timestamp, possibly with a fraction.
            let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
            guard let seconds = Int64(parts[0]) else { return nil }
            let fraction = parts.count > 1 ? fractionTicks(parts[1], precision: precision) : 0
            return ticks(seconds: seconds, scale: scale, fraction: fraction ?? 0)
        }
        if bytes.starts(with: "0000-00-00 00:00:00".utf8) { return 0 }
        guard bytes.count >= 19, bytes[10] == UInt8(ascii: " ") || bytes[10] == UInt8(ascii: "T"),
              let (y, m, d) = civilDate(bytes[0..<10]) else { return nil }
        let clock = bytes[11..<19].split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
        guard clock.count == 3, let hh = Int64(string(Array(clock[0]))), let mm = Int64(string(Array(clock[1]))),
              let ss = Int64(string(Array(clock[2]))), hh < 24, mm < 60, ss < 61 else { return nil }
        var fraction: Int64 = 0
        if bytes.count > 19 {
            guard bytes[19] == UInt8(ascii: "."), let parsed = fractionTicks(Substring(string(Array(bytes[20...]))), precision: precision) else { return nil }
            fraction = parsed
        }
        let local = CivilDate.days(year: y, month: m, day: d) * 86_400 + hh * 3600 + mm * 60 + ss
        // The zone's offset at the local time, corrected once for a transition in between.
        var seconds = local - ValueText.utcOffset(seconds: local, timeZone: timeZone)
        seconds = local - ValueText.utcOffset(seconds: seconds, timeZone: timeZone)
        return ticks(seconds: seconds, scale: scale, fraction: fraction)
    }

    /// `seconds × scale + fraction`, or nil past Int64 (DateTime64(9) ends in 2262): such a value
    /// is bad input, not a reason for the process to trap.
    static func ticks(seconds: Int64, scale: Int64, fraction: Int64) -> Int64? {
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: scale)
        let (sum, overflowAgain) = scaled.addingReportingOverflow(fraction)
        return overflow || overflowAgain ? nil : sum
    }

    static func fractionTicks(_ digits: Substring, precision: Int) -> Int64? {
        guard digits.allSatisfy(\.isASCIIDigit) else { return nil }
        let kept = digits.prefix(precision)
        return Int64(kept + String(repeating: "0", count: precision - kept.count)) ?? (precision == 0 ? 0 : nil)
    }

    /// `[-]hhh:mm:ss[.fff]` as ticks.
    static func timeTicks(_ bytes: [UInt8], precision: Int) -> Int64? {
        var text = Substring(string(bytes))
        let negative = text.hasPrefix("-")
        if negative { text = text.dropFirst() }
        let main = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let clock = main[0].split(separator: ":", omittingEmptySubsequences: false)
        guard clock.count == 3, let h = Int64(clock[0]), let m = Int64(clock[1]), let s = Int64(clock[2]), m < 60, s < 60 else { return nil }
        let fraction = main.count > 1 ? fractionTicks(main[1], precision: precision) : 0
        guard let fraction else { return nil }
        let (hours, overflow) = h.multipliedReportingOverflow(by: 3600)
        let (seconds, overflowAgain) = hours.addingReportingOverflow(m * 60 + s)
        guard !overflow, !overflowAgain,
              let ticks = ticks(seconds: seconds, scale: Int64(ValueText.pow10(precision)), fraction: fraction) else { return nil }
        return negative ? -ticks : ticks
    }

    static func uuid(_ bytes: [UInt8]) -> Bits128? {
        let hex = bytes.filter { $0 != UInt8(ascii: "-") }
        guard hex.count == 32, bytes.count == 32 || bytes.count == 36,
              let high = UInt64(string(Array(hex[0..<16])), radix: 16),
              let low = UInt64(string(Array(hex[16..<32])), radix: 16) else { return nil }
        return Bits128(first: high, second: low)
    }

    static func ipv4(_ bytes: [UInt8]) -> UInt32? {
        let parts = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard (1...3).contains(part.count), let octet = UInt8(string(Array(part))) else { return nil }
            value = value << 8 | UInt32(octet)
        }
        return value
    }

    static func ipv6(_ bytes: [UInt8]) -> Bits128? {
        var address = in6_addr()
        let text = string(bytes)
        if inet_pton(AF_INET6, text, &address) == 1 {
            return withUnsafeBytes(of: address) { $0.loadUnaligned(as: Bits128.self) }
        }
        // An IPv4 address is stored IPv4-mapped, as the server does.
        guard let v4 = ipv4(bytes) else { return nil }
        let mapped: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF,
                               UInt8(v4 >> 24), UInt8(v4 >> 16 & 0xFF), UInt8(v4 >> 8 & 0xFF), UInt8(v4 & 0xFF)]
        return mapped.withUnsafeBytes { $0.loadUnaligned(as: Bits128.self) }
    }

    /// An enum's value from its name, or from its number when that is one of its values.
    static func enumValue(_ bytes: [UInt8], _ cases: [ClickHouseType.EnumCase]) -> Int? {
        let text = string(bytes)
        if let match = cases.first(where: { $0.name == text }) { return match.value }
        if let number = Int(text), cases.contains(where: { $0.value == number }) { return number }
        return nil
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
