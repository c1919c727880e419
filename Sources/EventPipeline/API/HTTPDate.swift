import ClickHouseNative
import Foundation
import NIOConcurrencyHelpers

/// The `Date` header's value (RFC 9110's IMF-fixdate, `Fri, 04 Dec 2026 17:50:47 GMT`), formatted
/// once a second for the fast write path (Hummingbird keeps its own for the router's answers).
enum HTTPDate {
    private static let cache = NIOLockedValueBox((second: Int64.min, text: ""))

    static func now() -> String {
        let second = Int64(Date().timeIntervalSince1970)
        return cache.withLockedValue { cached in
            if cached.second != second { cached = (second, format(secondsSince1970: second)) }
            return cached.text
        }
    }

    static func format(secondsSince1970 seconds: Int64) -> String {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = CivilDate.components(days: days)
        let weekdays = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]  // 1970-01-01 was a Thursday
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(weekdays[Int((days % 7 + 7) % 7)]), \(two(day)) \(months[Int(month - 1)]) \(year) "
            + "\(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60)) GMT"
    }
}
