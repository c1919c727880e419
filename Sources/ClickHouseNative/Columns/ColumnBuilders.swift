import Foundation

// Columns for an INSERT from Foundation's and Swift's own types, the counterparts of the typed
// accessors on `Block` (`uuids`, `dates`, `strings`): without them a caller converts dates to
// seconds or days and UUIDs to their two halves by hand, and a mistake there is silent.

extension FixedWidthColumn where Element == Bits128 {
    /// A `UUID` column.
    public init(uuids: [UUID]) {
        self.init(type: .uuid, values: uuids.map(\.clickHouseValue))
    }
}

extension FixedWidthColumn where Element == UInt32 {
    /// A `DateTime` column: each instant to the second, rounded down. `timeZone` only changes how
    /// the server prints the values, not the instants stored. Throws for an instant outside
    /// DateTime's range (1970-01-01 00:00:00 to 2106-02-07 06:28:15 UTC).
    public init(dateTimes: [Date], timeZone: String? = nil) throws {
        let values = try dateTimes.enumerated().map { row, date -> UInt32 in
            let seconds = date.timeIntervalSince1970.rounded(.down)
            guard seconds >= 0, seconds <= Double(UInt32.max) else {
                throw DateRangeError.outside("DateTime", "1970-01-01 00:00:00 to 2106-02-07 06:28:15 UTC", row: row, date: date)
            }
            return UInt32(seconds)
        }
        self.init(type: .dateTime(timeZone: timeZone), values: values)
    }
}

extension FixedWidthColumn where Element == Int64 {
    /// A `DateTime64(precision)` column: each instant to the nearest tick of 10^-precision s
    /// (nearest, not down: a `Date` is a binary fraction, so an instant made from milliseconds can
    /// lie a hair below its millisecond). Throws for a precision outside 0...9 or an instant
    /// outside DateTime64's range (1900-01-01 to 2299-12-31 UTC; 2262-04-11 at precision 9).
    public init(dateTime64s dates: [Date], precision: Int, timeZone: String? = nil) throws {
        guard (0...9).contains(precision) else {
            throw ClickHouseClientError("DateTime64 precision must be 0 to 9, not \(precision)")
        }
        let scale = Double(ValueText.pow10(precision))
        // 1900-01-01 and 2300-01-01 in seconds since 1970; ticks must also fit an Int64.
        let lowest = -2_208_988_800.0 * scale, highest = min(10_413_792_000.0 * scale, Double(Int64.max))  // (2^63 as a Double)
        let values = try dates.enumerated().map { row, date -> Int64 in
            let ticks = (date.timeIntervalSince1970 * scale).rounded()
            guard ticks >= lowest, ticks < highest else {
                throw DateRangeError.outside("DateTime64(\(precision))", precision == 9 ? "1900-01-01 to 2262-04-11 UTC" : "1900-01-01 to 2299-12-31 UTC",
                                             row: row, date: date)
            }
            return Int64(ticks)
        }
        self.init(type: .dateTime64(precision: precision, timeZone: timeZone), values: values)
    }
}

extension FixedWidthColumn where Element == UInt16 {
    /// A `Date` column: the UTC day of each instant. Throws for a day outside Date's range
    /// (1970-01-01 to 2149-06-06).
    public init(dates: [Date]) throws {
        self.init(type: .date, values: try utcDays(dates, within: 0...65_535, type: "Date", range: "1970-01-01 to 2149-06-06").map { UInt16($0) })
    }
}

extension FixedWidthColumn where Element == Int32 {
    /// A `Date32` column: the UTC day of each instant. Throws for a day outside Date32's range
    /// (1900-01-01 to 2299-12-31).
    public init(dates: [Date]) throws {
        self.init(type: .date32, values: try utcDays(dates, within: -25_567...120_529, type: "Date32", range: "1900-01-01 to 2299-12-31").map { Int32($0) })
    }
}

/// The UTC day number (since 1970-01-01) of each instant, refused outside `days`.
private func utcDays(_ dates: [Date], within days: ClosedRange<Double>, type: String, range: String) throws -> [Double] {
    try dates.enumerated().map { row, date in
        let day = (date.timeIntervalSince1970 / 86_400).rounded(.down)
        guard days.contains(day) else { throw DateRangeError.outside(type, range, row: row, date: date) }
        return day
    }
}

extension ArrayColumn {
    /// An `Array(String)` column.
    public init(strings: [[String]]) {
        var elements = StringColumn()
        var offsets: [UInt64] = []
        offsets.reserveCapacity(strings.count)
        for array in strings {
            for string in array { elements.append(string) }
            offsets.append(UInt64(elements.count))
        }
        self.init(type: .array(.string), offsets: offsets, elements: elements)
    }
}

extension MapColumn {
    /// A `Map(String, String)` column; each row's entries in the order given.
    public init(strings: [[(key: String, value: String)]]) {
        var keys = StringColumn()
        var values = StringColumn()
        var offsets: [UInt64] = []
        offsets.reserveCapacity(strings.count)
        for entries in strings {
            for entry in entries {
                keys.append(entry.key)
                values.append(entry.value)
            }
            offsets.append(UInt64(keys.count))
        }
        self.init(type: .map(key: .string, value: .string), offsets: offsets, keys: keys, values: values)
    }

    /// A `Map(String, String)` column from dictionaries, each row's keys in byte order (a
    /// dictionary has no order of its own, and a map keeps the order it was written in).
    public init(strings: [[String: String]]) {
        self.init(strings: strings.map { row in
            row.map { (key: $0.key, value: $0.value) }.sorted { precedesByBytes($0.key, $1.key) }
        })
    }
}

enum DateRangeError {
    static func outside(_ type: String, _ range: String, row: Int, date: Date) -> ClickHouseClientError {
        ClickHouseClientError("row \(row): \(date.formatted(.iso8601)) is outside \(type)'s range (\(range))")
    }
}
