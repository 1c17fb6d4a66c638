import Foundation
import Testing

@testable import FleetCore

struct OperationalHoursTests {
    private static func hours(_ start: String, _ end: String) -> OperationalHours {
        OperationalHours(start: ClockTime(parsing: start)!, end: ClockTime(parsing: end)!)
    }

    /// (zone, hours, moment on the zone's wall clock with its offset, inside?)
    private static let cases: [(String, OperationalHours, String, Bool)] = [
        // Within a day: start inside, end outside.
        ("UTC", hours("09:00", "16:00"), "2026-05-10 00:00 +00:00", false),
        ("UTC", hours("09:00", "16:00"), "2026-05-10 08:59:59 +00:00", false),
        ("UTC", hours("09:00", "16:00"), "2026-05-10 08:59:59.9 +00:00", false),
        ("UTC", hours("09:00", "16:00"), "2026-05-10 09:00 +00:00", true),
        ("UTC", hours("09:00", "16:00"), "2026-05-10 12:00 +00:00", true),
        ("UTC", hours("09:00", "16:00"), "2026-05-10 15:59:59.9 +00:00", true),
        ("UTC", hours("09:00", "16:00"), "2026-05-10 16:00 +00:00", false),
        ("UTC", hours("09:00", "16:00"), "2026-05-10 23:30 +00:00", false),
        // Across midnight.
        ("UTC", hours("22:00", "06:00"), "2026-05-10 21:59:59 +00:00", false),
        ("UTC", hours("22:00", "06:00"), "2026-05-10 22:00 +00:00", true),
        ("UTC", hours("22:00", "06:00"), "2026-05-10 23:30 +00:00", true),
        ("UTC", hours("22:00", "06:00"), "2026-05-11 00:00 +00:00", true),
        ("UTC", hours("22:00", "06:00"), "2026-05-11 05:59 +00:00", true),
        ("UTC", hours("22:00", "06:00"), "2026-05-11 05:59:59.9 +00:00", true),
        ("UTC", hours("22:00", "06:00"), "2026-05-11 06:00 +00:00", false),
        ("UTC", hours("22:00", "06:00"), "2026-05-11 12:00 +00:00", false),
        // The widest hours leave out their last minute; the narrowest hold one.
        ("UTC", hours("00:00", "23:59"), "2026-05-10 00:00 +00:00", true),
        ("UTC", hours("00:00", "23:59"), "2026-05-10 23:58:59 +00:00", true),
        ("UTC", hours("00:00", "23:59"), "2026-05-10 23:59 +00:00", false),
        ("UTC", hours("12:00", "12:01"), "2026-05-10 12:00:30 +00:00", true),
        ("UTC", hours("12:01", "12:00"), "2026-05-10 12:00:30 +00:00", false),
        ("UTC", hours("12:01", "12:00"), "2026-05-10 12:01 +00:00", true),
        // Read on the zone's clock, not UTC's.
        ("Asia/Shanghai", hours("09:00", "16:00"), "2026-05-10 09:00 +08:00", true),
        ("Asia/Shanghai", hours("09:00", "16:00"), "2026-05-10 08:30 +08:00", false),
        ("Asia/Shanghai", hours("09:00", "16:00"), "2026-05-10 16:00 +08:00", false),
        ("Asia/Shanghai", hours("09:00", "16:00"), "2026-05-10 02:00 +00:00", true),
        ("Asia/Shanghai", hours("22:00", "06:00"), "2026-05-10 15:00 +00:00", true),
        ("Asia/Shanghai", hours("22:00", "06:00"), "2026-05-10 22:00 +00:00", false),
        // New York on the days the clocks change: the wall clock decides.
        ("America/New_York", hours("09:00", "16:00"), "2026-03-08 08:59 -04:00", false),
        ("America/New_York", hours("09:00", "16:00"), "2026-03-08 09:00 -04:00", true),
        ("America/New_York", hours("09:00", "16:00"), "2026-03-08 14:00 +00:00", true),
        ("America/New_York", hours("09:00", "16:00"), "2026-11-01 15:59 -05:00", true),
        ("America/New_York", hours("09:00", "16:00"), "2026-11-01 16:00 -05:00", false),
        ("America/New_York", hours("09:00", "16:00"), "2026-11-01 20:30 +00:00", true),
        // 02:00–03:00 does not happen on 2026-03-08; 01:00–02:00 happens twice on 2026-11-01.
        ("America/New_York", hours("02:00", "03:00"), "2026-03-08 01:59:59 -05:00", false),
        ("America/New_York", hours("02:00", "03:00"), "2026-03-08 03:00 -04:00", false),
        ("America/New_York", hours("02:00", "03:00"), "2026-03-09 02:30 -04:00", true),
        ("America/New_York", hours("01:00", "02:00"), "2026-11-01 01:30 -04:00", true),
        ("America/New_York", hours("01:00", "02:00"), "2026-11-01 01:30 -05:00", true),
        ("America/New_York", hours("01:00", "02:00"), "2026-11-01 02:00 -05:00", false),
        ("America/New_York", hours("22:00", "06:00"), "2026-11-01 05:59 -05:00", true),
        ("America/New_York", hours("22:00", "06:00"), "2026-03-08 06:00 -04:00", false),
    ]

    @Test(arguments: cases)
    func containsReadsTheZonesWallClock(zone: String, hours: OperationalHours, moment: String, inside: Bool) throws {
        let zone = try #require(TimeZone(identifier: zone))
        #expect(hours.contains(UploadScheduleTests.moment(moment), timeZone: zone) == inside)
    }

    @Test func containsEveryMinuteOfItsSpanAndNoOther() throws {
        let zone = try #require(TimeZone(identifier: "UTC"))
        let midnight = UploadScheduleTests.moment("2026-05-10 00:00 +00:00")
        for (span, first, count) in [
            (Self.hours("09:00", "16:00"), 540, 420), (Self.hours("22:00", "06:00"), 1320, 480),
        ] {
            let inside = (0..<1440).filter {
                span.contains(midnight.addingTimeInterval(Double($0 * 60)), timeZone: zone)
            }
            #expect(inside.count == count)
            #expect(Set(inside) == Set((first..<first + count).map { $0 % 1440 }))
        }
    }

    // MARK: - From the configuration

    @Test(arguments: [
        (OperationalHoursSettings(start: "09:00", end: "16:00"), hours("09:00", "16:00")),
        (OperationalHoursSettings(start: "09:00", end: "16:00", enabled: true), hours("09:00", "16:00")),
        (OperationalHoursSettings(start: "22:00", end: "06:00"), hours("22:00", "06:00")),
    ])
    func settingsGiveTheHours(settings: OperationalHoursSettings, expected: OperationalHours) {
        #expect(OperationalHours(settings: settings) == expected)
    }

    /// nil: the agent uploads a ready file at once, at any hour.
    @Test(arguments: [
        nil, OperationalHoursSettings(start: "09:00", end: "16:00", enabled: false),
        OperationalHoursSettings(start: "9:00", end: "16:00"), OperationalHoursSettings(start: "09:00", end: "24:00"),
        OperationalHoursSettings(start: "09:00", end: "09:00"),
    ])
    func absentDisabledOrInvalidSettingsGiveNoHours(settings: OperationalHoursSettings?) {
        #expect(OperationalHours(settings: settings) == nil)
    }
}
