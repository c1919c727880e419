import Testing
@testable import EventPipeline

@Suite struct TimestampTests {
    /// 2026-11-27T10:00:00Z in Unix milliseconds.
    static let reference: Int64 = 1_795_773_600_000

    @Test func parseWholeSeconds() {
        #expect(Timestamp.parse("2026-11-27T10:00:00Z") == Self.reference)
        #expect(Timestamp.parse("1970-01-01T00:00:00Z") == 0)
        #expect(Timestamp.parse("2000-03-01T00:00:00Z") == 951_868_800_000)
        #expect(Timestamp.parse("2105-12-31T23:59:59Z") == 4_291_747_199_000)
    }

    @Test func parseFractions() {
        #expect(Timestamp.parse("2026-11-27T10:00:00.123Z") == Self.reference + 123)
        // Digits past the millisecond are dropped, not rounded.
        #expect(Timestamp.parse("2026-11-27T10:00:00.123456Z") == Self.reference + 123)
        #expect(Timestamp.parse("2026-11-27T10:00:00.999999Z") == Self.reference + 999)
        #expect(Timestamp.parse("2026-11-27T10:00:00.1Z") == Self.reference + 100)
        #expect(Timestamp.parse("2026-11-27T10:00:00.05Z") == Self.reference + 50)
        #expect(Timestamp.parse("2026-11-27T10:00:00.000Z") == Self.reference)
    }

    @Test func parseOffsets() {
        #expect(Timestamp.parse("2026-11-27T10:00:00+01:00") == Self.reference - 3_600_000)
        #expect(Timestamp.parse("2026-11-27T10:00:00-05:30") == Self.reference + 19_800_000)
        #expect(Timestamp.parse("2026-11-27T10:00:00+00:00") == Self.reference)
        #expect(Timestamp.parse("2026-11-27T10:00:00-00:00") == Self.reference)
        #expect(Timestamp.parse("2026-11-27T10:00:00.123456+01:00") == Self.reference - 3_600_000 + 123)
        // The offset can move the instant to another day.
        #expect(Timestamp.parse("2026-11-27T01:00:00+02:00") == Timestamp.parse("2026-11-26T23:00:00Z"))
    }

    @Test func parseLenientForms() {
        #expect(Timestamp.parse("2026-11-27T10:00:00z") == Self.reference)
        #expect(Timestamp.parse("2026-11-27 10:00:00Z") == Self.reference)
        #expect(Timestamp.parse("2026-11-27t10:00:00Z") == Self.reference)
        #expect(Timestamp.parse("2026-11-27 10:00:00.123z") == Self.reference + 123)
    }

    @Test func parseCalendar() {
        #expect(Timestamp.parse("2024-02-29T23:59:59.999Z") == 1_709_251_199_999)
        #expect(Timestamp.parse("2000-02-29T00:00:00Z") == 951_782_400_000)
        #expect(Timestamp.parse("2026-02-28T00:00:00Z") != nil)
        // A leap second is read as the second before it.
        #expect(Timestamp.parse("2026-12-31T23:59:60Z") == Timestamp.parse("2026-12-31T23:59:59Z"))
    }

    @Test(arguments: [
        "2026-13-01T00:00:00Z",  // month 13
        "2026-00-10T00:00:00Z",  // month 0
        "2026-02-30T00:00:00Z",  // no Feb 30
        "2026-02-29T00:00:00Z",  // 2026 is not a leap year
        "1900-02-29T00:00:00Z",  // nor is 1900
        "2026-04-31T00:00:00Z",  // April has 30 days
        "2026-11-00T00:00:00Z",  // day 0
        "2026-11-27T24:00:00Z",  // hour 24
        "2026-11-27T10:60:00Z",  // minute 60
        "2026-11-27T10:00:61Z",  // second 61
        "2026-11-27T10:00:00",  // no zone
        "2026-11-27T10:00:00.123",  // no zone after a fraction
        "2026-11-27",  // a date only
        "",
        "2026-11-27X10:00:00Z",  // bad separator
        "2026/11/27T10:00:00Z",
        "2026-11-27T10:00:00.Z",  // a dot without digits
        "2026-11-27T10:00:00+0100",  // offset without a colon
        "2026-11-27T10:00:00+01",  // offset without minutes
        "2026-11-27T10:00:00+01:0",
        "2026-11-27T10:00:00+24:00",  // offset hour 24
        "2026-11-27T10:00:00+01:60",
        "2026-11-27T10:00:00Z ",  // trailing space
        "2026-11-27T10:00:00ZZ",
        " 2026-11-27T10:00:00Z",  // leading space
        "2026-1-27T10:00:00Z",  // one-digit month
        "2026-11-27T10:00:00UTC",
        "２０２６-11-27T10:00:00Z",  // full-width digits
    ])
    func parseRejects(_ text: String) {
        #expect(Timestamp.parse(text) == nil)
    }

    @Test func format() {
        #expect(Timestamp.format(milliseconds: 0) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.format(milliseconds: 1_795_773_600_123) == "2026-11-27T10:00:00.123Z")
        #expect(Timestamp.format(milliseconds: Self.reference) == "2026-11-27T10:00:00.000Z")
        #expect(Timestamp.format(milliseconds: 1_709_251_199_999) == "2024-02-29T23:59:59.999Z")
        #expect(Timestamp.format(milliseconds: 4_291_747_199_999) == "2105-12-31T23:59:59.999Z")
        #expect(Timestamp.format(milliseconds: 7) == "1970-01-01T00:00:00.007Z")
        #expect(Timestamp.format(milliseconds: -1) == "1969-12-31T23:59:59.999Z")
    }

    @Test func formatOfParseRoundTrips() {
        for text in ["2026-11-27T10:00:00.123Z", "1970-01-01T00:00:00.000Z", "2024-02-29T23:59:59.999Z", "2105-12-31T23:59:59.999Z",
                     "2000-01-01T00:00:00.001Z", "2038-01-19T03:14:08.000Z"] {
            let parsed = Timestamp.parse(text)
            #expect(parsed.map { Timestamp.format(milliseconds: $0) } == text)
        }
        // Other spellings come back in the canonical form.
        #expect(Timestamp.parse("2026-11-27T11:30:00.123456+01:30").map { Timestamp.format(milliseconds: $0) } == "2026-11-27T10:00:00.123Z")
        #expect(Timestamp.parse("2026-11-27 10:00:00z").map { Timestamp.format(milliseconds: $0) } == "2026-11-27T10:00:00.000Z")
    }

    @Test func parseOfFormatRoundTripsOverTheSupportedRange() {
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        var values: [Int64] = [0, 1, 999, 1000, 86_399_999, 86_400_000, Timestamp.supportedRange.upperBound]
        for _ in 0..<2000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            values.append(Int64((state >> 11) % UInt64(Timestamp.supportedRange.upperBound + 1)))
        }
        for value in values {
            let text = Timestamp.format(milliseconds: value)
            #expect(Timestamp.parse(text) == value, "\(value) → \(text)")
        }
    }

    @Test func formatDate() {
        #expect(Timestamp.formatDate(days: 0) == "1970-01-01")
        #expect(Timestamp.formatDate(days: 20_784) == "2026-11-27")
        #expect(Timestamp.formatDate(days: 11_016) == "2000-02-29")
        #expect(Timestamp.formatDate(days: 49_672) == "2105-12-31")
        #expect(Timestamp.formatDate(days: -1) == "1969-12-31")
    }

    @Test func supportedRange() {
        #expect(Timestamp.supportedRange.lowerBound == 0)
        #expect(Timestamp.supportedRange.upperBound == Timestamp.parse("2105-12-31T23:59:59.999Z"))
        // It fits a ClickHouse DateTime (UInt32 seconds).
        #expect(Timestamp.supportedRange.upperBound / 1000 <= Int64(UInt32.max))
    }
}
