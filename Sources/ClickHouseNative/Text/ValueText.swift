import Foundation

/// Proleptic Gregorian dates as day numbers (days since 1970-01-01) and back
/// (H. Hinnant's civil-from-days and days-from-civil algorithms), shared by the text formats.
public enum CivilDate {
    /// (year, month, day) of a day number; negative numbers are before 1970.
    public static func components(days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    /// The day number of a date.
    public static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}

/// Text forms of ClickHouse values shared by the text formats: dates and times, UUIDs, IP addresses,
/// big integers, decimals and floats, as ClickHouse prints them.
enum ValueText {
    /// `YYYY-MM-DD` for days since 1970-01-01 (proleptic Gregorian; negative before 1970).
    static func date(days: Int64) -> String {
        let (y, m, d) = CivilDate.components(days: days)
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))"
    }

    static func pad(_ value: Int64, _ width: Int) -> String {
        let text = String(value.magnitude)
        let padded = text.count < width ? String(repeating: "0", count: width - text.count) + text : text
        return value < 0 ? "-" + padded : padded
    }

    /// Seconds from UTC of `timeZone` at `seconds` since the epoch; nil or "UTC" is 0.
    static func utcOffset(seconds: Int64, timeZone: String?) -> Int64 {
        guard let timeZone, timeZone != "UTC", let zone = TimeZone(identifier: timeZone) else { return 0 }
        return Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(seconds))))
    }

    /// The instants ClickHouse prints as they are: 0000-01-01 00:00:00 to 9999-12-31 23:59:59. It
    /// prints one outside as the nearest of these in any time zone (a DateTime64's fraction kept),
    /// and the extremes of Int64 would overflow the arithmetic below.
    static let printableSeconds: ClosedRange<Int64> = -62_167_219_200...253_402_300_799

    /// `YYYY-MM-DD hh:mm:ss` in `timeZone`.
    static func dateTime(seconds: Int64, timeZone: String?) -> String {
        let local = printableSeconds.contains(seconds)
            ? (seconds + utcOffset(seconds: seconds, timeZone: timeZone)).clamped(to: printableSeconds)
            : seconds.clamped(to: printableSeconds)  // the end of the range in any zone, as ClickHouse prints it
        let days = local >= 0 ? local / 86_400 : (local - 86_399) / 86_400
        let secondOfDay = local - days * 86_400
        return "\(date(days: days)) \(pad(secondOfDay / 3600, 2)):\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2))"
    }

    /// DateTime64 ticks of 10^-precision seconds.
    static func dateTime64(ticks: Int64, precision: Int, timeZone: String?) -> String {
        let scale = Int64(pow10(precision))
        var seconds = ticks / scale
        var fraction = ticks % scale
        if fraction < 0 {
            seconds -= 1
            fraction += scale
        }
        let base = dateTime(seconds: seconds, timeZone: timeZone)
        return precision == 0 ? base : base + "." + pad(fraction, precision)
    }

    /// Time (signed seconds) or Time64 ticks as `[-]hhh:mm:ss[.fff]`.
    static func time(ticks: Int64, precision: Int) -> String {
        let scale = Int64(pow10(precision))
        let magnitude = ticks.magnitude
        let seconds = magnitude / UInt64(scale)  // (unsigned: Int64.min's magnitude does not fit Int64)
        let fraction = Int64(magnitude % UInt64(scale))
        var text = (ticks < 0 ? "-" : "") + "\(pad(Int64(seconds / 3600), 2)):\(pad(Int64(seconds / 60 % 60), 2)):\(pad(Int64(seconds % 60), 2))"
        if precision > 0 { text += "." + pad(fraction, precision) }
        return text
    }

    static func pow10(_ n: Int) -> UInt64 {
        var result: UInt64 = 1
        for _ in 0..<n { result *= 10 }
        return result
    }

    static func uuid(_ value: Bits128) -> String {
        let hex = hex64(value.first) + hex64(value.second)
        let c = Array(hex)
        return String(c[0..<8]) + "-" + String(c[8..<12]) + "-" + String(c[12..<16]) + "-" + String(c[16..<20]) + "-" + String(c[20..<32])
    }

    static func hex64(_ value: UInt64) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: 16 - text.count) + text
    }

    static func ipv4(_ value: UInt32) -> String {
        "\(value >> 24).\(value >> 16 & 0xFF).\(value >> 8 & 0xFF).\(value & 0xFF)"
    }

    /// RFC 5952 text, with IPv4-mapped addresses as `::ffff:a.b.c.d`.
    static func ipv6(_ value: Bits128) -> String {
        let bytes = value.bytes
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return "::ffff:\(bytes[12]).\(bytes[13]).\(bytes[14]).\(bytes[15])"
        }
        let groups = (0..<8).map { Int(bytes[2 * $0]) << 8 | Int(bytes[2 * $0 + 1]) }
        var bestStart = -1, bestLength = 0, i = 0
        while i < 8 {
            if groups[i] == 0 {
                var j = i
                while j < 8 && groups[j] == 0 { j += 1 }
                if j - i > bestLength && j - i >= 2 { (bestStart, bestLength) = (i, j - i) }
                i = j
            } else {
                i += 1
            }
        }
        func render(_ range: Range<Int>) -> String { range.map { String(groups[$0], radix: 16) }.joined(separator: ":") }
        if bestStart < 0 { return render(0..<8) }
        // IPv4-compatible (`::a.b.c.d`): ClickHouse writes the last two groups as IPv4 when the
        // longest zero run is exactly the first six.
        if bestStart == 0 && bestLength == 6 { return "::\(bytes[12]).\(bytes[13]).\(bytes[14]).\(bytes[15])" }
        return render(0..<bestStart) + "::" + render((bestStart + bestLength)..<8)
    }

    /// Decimal digits of a little-endian two's-complement integer of any number of 64-bit limbs.
    static func integer(limbs: [UInt64], signed: Bool) -> String {
        var magnitude = limbs
        let negative = signed && (limbs.last ?? 0) >> 63 == 1
        if negative {
            // Two's complement negation.
            var carry: UInt64 = 1
            for i in magnitude.indices {
                let (sum, overflow) = (~magnitude[i]).addingReportingOverflow(carry)
                magnitude[i] = sum
                carry = overflow ? 1 : 0
            }
        }
        var digits: [UInt8] = []
        while magnitude.contains(where: { $0 != 0 }) {
            var remainder: UInt64 = 0
            for i in magnitude.indices.reversed() {
                let (q, r) = UInt64(10).dividingFullWidth((remainder, magnitude[i]))
                magnitude[i] = q
                remainder = r
            }
            digits.append(UInt8(remainder) + 0x30)
        }
        if digits.isEmpty { digits = [0x30] }
        return (negative ? "-" : "") + String(decoding: digits.reversed(), as: UTF8.self)
    }

    /// A decimal from its unscaled integer text: `scale` digits after the point, trailing zeros dropped.
    static func decimal(unscaled: String, scale: Int, trailingZeros: Bool = false) -> String {
        guard scale > 0 else { return unscaled }
        let negative = unscaled.hasPrefix("-")
        var digits = Array(negative ? unscaled.dropFirst() : Substring(unscaled))
        if digits.count <= scale { digits = Array(repeating: "0", count: scale - digits.count + 1) + digits }
        var integerPart = String(digits[0..<(digits.count - scale)])
        var fraction = String(digits[(digits.count - scale)...])
        if !trailingZeros { while fraction.last == "0" { fraction.removeLast() } }
        if integerPart.isEmpty { integerPart = "0" }
        let text = fraction.isEmpty ? integerPart : integerPart + "." + fraction
        return negative && text != "0" ? "-" + text : text
    }

    /// ClickHouse's float text: the shortest digits that round-trip, in plain notation for decimal exponents
    /// from -6 to 20 and as `1.5e300` / `1e-7` otherwise; `nan`, `inf`, `-inf` as such.
    static func float(_ description: String) -> String {
        // `description` is Swift's shortest round-trip text (e.g. "1e-05", "1.5e+300", "123.0").
        if description == "nan" || description == "-nan" { return "nan" }
        if description == "inf" || description == "-inf" { return description }
        var text = Substring(description)
        let negative = text.hasPrefix("-")
        if negative { text = text.dropFirst() }
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(text[text.index(after: e)...]) ?? 0
            text = text[..<e]
        }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        let integerDigits = String(parts[0])
        let fractionDigits = parts.count > 1 ? String(parts[1]) : ""
        var digits = integerDigits + fractionDigits
        var pointPosition = integerDigits.count + exponent  // digits before the decimal point
        // Normalize: strip leading zeros (adjusting the point) and trailing zeros.
        while digits.count > 1 && digits.first == "0" {
            digits.removeFirst()
            pointPosition -= 1
        }
        while digits.count > 1 && digits.last == "0" { digits.removeLast() }
        if digits == "0" { return negative ? "-0" : "0" }
        let decimalExponent = pointPosition - 1
        var result: String
        if decimalExponent >= -6 && decimalExponent <= 20 {
            if pointPosition <= 0 {
                result = "0." + String(repeating: "0", count: -pointPosition) + digits
            } else if pointPosition >= digits.count {
                result = digits + String(repeating: "0", count: pointPosition - digits.count)
            } else {
                let index = digits.index(digits.startIndex, offsetBy: pointPosition)
                result = String(digits[..<index]) + "." + String(digits[index...])
            }
        } else {
            let first = String(digits.first!)
            let rest = String(digits.dropFirst())
            result = (rest.isEmpty ? first : first + "." + rest) + "e" + String(decimalExponent)
        }
        return negative ? "-" + result : result
    }
}

/// Choices that change how values are written as text, matching a server's defaults.
public struct TextFormatSettings: Sendable, Equatable {
    /// Zone for `DateTime` columns that name none (the server's time zone).
    public var timeZone: String?
    /// JSON: write Int64/UInt64 and wider as strings (the default before ClickHouse 25.x).
    public var quote64BitIntegers: Bool
    /// Decimals with all `scale` digits (the default before ClickHouse 21.9) rather than trimmed.
    public var decimalTrailingZeros: Bool

    /// The zero Date/DateTime as `0000-00-00` / `0000-00-00 00:00:00` (seen on ClickHouse 18.16;
    /// current servers print `1970-01-01`).
    public var zeroDateAsZeros: Bool

    public init(timeZone: String? = nil, quote64BitIntegers: Bool = false, decimalTrailingZeros: Bool = false,
                zeroDateAsZeros: Bool = false) {
        self.timeZone = timeZone
        self.quote64BitIntegers = quote64BitIntegers
        self.decimalTrailingZeros = decimalTrailingZeros
        self.zeroDateAsZeros = zeroDateAsZeros
    }

    /// The defaults of a given server version, as its own clients print values.
    public init(server: ServerInfo) {
        let version = (server.versionMajor, server.versionMinor)
        self.init(timeZone: server.timeZone,
                  quote64BitIntegers: version < (25, 8),
                  decimalTrailingZeros: version < (21, 9),
                  zeroDateAsZeros: version < (20, 1))
    }
}

extension Comparable {
    func clamped(to range: ClosedRange<Self>) -> Self { Swift.min(Swift.max(self, range.lowerBound), range.upperBound) }
}
