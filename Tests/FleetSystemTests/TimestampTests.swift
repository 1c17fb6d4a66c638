import Foundation
import Testing

@testable import FleetSystem

struct TimestampTests {
    @Test(arguments: [
        (0 as Int64, "1970-01-01 00:00:00.000000+00"),
        (1_700_641_021_636_486, "2023-11-22 08:17:01.636486+00"),
        (1_709_251_199_000_001, "2024-02-29 23:59:59.000001+00"),
        (-1, "1969-12-31 23:59:59.999999+00"),
        (-1_500_000, "1969-12-31 23:59:58.500000+00"),
        (-86_400_000_000, "1969-12-31 00:00:00.000000+00"),
        (-2_208_988_800_000_000, "1900-01-01 00:00:00.000000+00"),
        (253_402_300_799_999_999, "9999-12-31 23:59:59.999999+00"),
    ])
    func iso8601WritesPostgresText(microseconds: Int64, expected: String) {
        #expect(Timestamp(microseconds: microseconds).iso8601 == expected)
        #expect(Timestamp(microseconds: microseconds).description == expected)
    }

    @Test(arguments: [
        0 as Int64, 1, 999_999, 1_000_000, 1_700_641_021_636_486, 1_709_251_199_000_001, -1, -999_999, -1_000_000,
        -1_000_001, -1_500_000, -2_208_988_800_000_000, 951_782_400_123_456, 253_402_300_799_999_999,
    ])
    func iso8601RoundTripsThroughPostgresParser(microseconds: Int64) {
        let time = Timestamp(microseconds: microseconds)
        #expect(Timestamp(postgres: time.iso8601) == time)
    }

    @Test(arguments: [
        ("2026-11-23 14:05:09.123456+00", "2026-11-23 14:05:09.123456+00"),
        ("2026-11-23 19:35:09.123456+05:30", "2026-11-23 14:05:09.123456+00"),
        ("2026-11-23 09:05:09.123456-05", "2026-11-23 14:05:09.123456+00"),
        ("2026-11-23 00:05:09-03:30", "2026-11-23 03:35:09.000000+00"),
        ("2026-11-24 03:05:09.1+13", "2026-11-23 14:05:09.100000+00"),
        ("2026-11-23 14:05:09", "2026-11-23 14:05:09.000000+00"),
        ("2026-11-23 14:05:09.1234569+00", "2026-11-23 14:05:09.123456+00"),
        ("2024-03-01 01:00:00+02", "2024-02-29 23:00:00.000000+00"),
        ("1900-01-01 05:53:28+05:53:28", "1900-01-01 00:00:00.000000+00"),  // Asia/Kolkata's local mean time
        ("1969-12-31 19:00:00.5-05", "1970-01-01 00:00:00.500000+00"),
    ])
    func postgresTextWithOffsetIsTheSameInstant(text: String, utc: String) throws {
        let time = try #require(Timestamp(postgres: text))
        #expect(time.iso8601 == utc)
    }

    @Test(arguments: [
        "", "2026-11-23", "2026-11-23 14:05", "2026-xx-23 14:05:09+00", "2026-11-23 14:05:09+x",
        "2026/11/23 14:05:09+00", "2026-11-23 14:05:09x05", "2026-11-23 14:05:09+05:3", "2026-11-23 14:05:09+05 BC",
        "2026-11-23 14:05:09+05:30x",
    ])
    func malformedPostgresTextIsRejected(text: String) {
        #expect(Timestamp(postgres: text) == nil)
    }

    @Test(arguments: [
        (1_700_668_799 as Int64, 0, "2023-11-22"),
        (1_700_668_800, 8 * 3600, "2023-11-23"),  // midnight in UTC+8
        (1_700_668_799, 8 * 3600, "2023-11-22"),
        (1_700_629_200, -5 * 3600, "2023-11-22"),  // 05:00 UTC is midnight in UTC-5
        (1_700_629_199, -5 * 3600, "2023-11-21"),
        (1_709_251_199, 0, "2024-02-29"),
        (1_709_251_199, 3600, "2024-03-01"),
        (-1, 0, "1969-12-31"),
        (-1, 1, "1970-01-01"),
        (0, -1, "1969-12-31"),
        (1_700_668_800, 5 * 3600 + 1800, "2023-11-22"),  // 21:30 in UTC+05:30
    ])
    func calendarDateIsTakenInTheGivenOffset(seconds: Int64, offset: Int, expected: String) {
        #expect(Timestamp(seconds: seconds).calendarDate(offsetSeconds: offset) == expected)
    }

    @Test func secondsRoundTowardsNegativeInfinity() {
        #expect(Timestamp(microseconds: 1_500_000).seconds == 1)
        #expect(Timestamp(microseconds: -1).seconds == -1)
        #expect(Timestamp(microseconds: -1_000_000).seconds == -1)
        #expect(Timestamp(microseconds: -1_000_001).seconds == -2)
    }

    @Test func initFromSecondsTruncatesNanoseconds() {
        #expect(Timestamp(seconds: 1_700_000_000, nanoseconds: 636_486_268).microseconds == 1_700_000_000_636_486)
        #expect(Timestamp(seconds: -2, nanoseconds: 500_000_000).microseconds == -1_500_000)
    }

    @Test func dateConversionKeepsMicroseconds() {
        let time = Timestamp(microseconds: 1_700_641_021_636_486)
        #expect(Timestamp(time.date) == time)
        #expect(Timestamp(Date(timeIntervalSince1970: 1.5)).microseconds == 1_500_000)
        #expect(Timestamp(Date(timeIntervalSince1970: -1.5)).microseconds == -1_500_000)
    }

    @Test func ordersByInstant() {
        #expect(Timestamp(microseconds: -1) < Timestamp(microseconds: 0))
        #expect(Timestamp(microseconds: 1) > Timestamp(microseconds: 0))
        #expect([Timestamp(microseconds: 3), Timestamp(microseconds: -2)].max() == Timestamp(microseconds: 3))
    }

    @Test(arguments: [
        (1970 as Int64, 1 as Int64, 1 as Int64), (1969, 12, 31), (2000, 2, 29), (2024, 2, 29), (2100, 3, 1),
        (1600, 1, 1), (9999, 12, 31), (1, 1, 1),
    ])
    func civilDaysRoundTrip(year: Int64, month: Int64, day: Int64) {
        let days = Timestamp.daysFromCivil(year: year, month: month, day: day)
        let back = Timestamp.civilFromDays(days)
        #expect(back.year == year && back.month == month && back.day == day)
    }
}
