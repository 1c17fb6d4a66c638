import Foundation
import Testing

@testable import FleetCore

struct UploadScheduleTests {
    /// One schedule, one starting moment, the run that must follow it. Moments are written on the zone's wall
    /// clock with its offset (`2026-03-08 03:00 -04:00`), so a change of offset shows in the table.
    struct Case: Sendable, CustomTestStringConvertible {
        var zone: String
        var schedule: UploadSchedule
        var after: String
        var expected: String

        init(_ zone: String, _ schedule: UploadSchedule, after: String, _ expected: String) {
            self.zone = zone
            self.schedule = schedule
            self.after = after
            self.expected = expected
        }

        var testDescription: String { "\(schedule) in \(zone), after \(after)" }
    }

    private static func daily(_ text: String) -> UploadSchedule { .daily(ClockTime(parsing: text)!) }
    private static func everyHours(_ hours: Double) -> UploadSchedule { .every(seconds: hours * 3600) }
    private static func everyMinutes(_ minutes: Double) -> UploadSchedule { .every(seconds: minutes * 60) }

    private static let utc: [Case] = [
        // Daily: before, at (strictly after, so tomorrow), after the time.
        Case("UTC", daily("15:00"), after: "2026-05-10 14:59 +00:00", "2026-05-10 15:00 +00:00"),
        Case("UTC", daily("15:00"), after: "2026-05-10 14:59:59.5 +00:00", "2026-05-10 15:00 +00:00"),
        Case("UTC", daily("15:00"), after: "2026-05-10 15:00 +00:00", "2026-05-11 15:00 +00:00"),
        Case("UTC", daily("15:00"), after: "2026-05-10 15:00:01 +00:00", "2026-05-11 15:00 +00:00"),
        Case("UTC", daily("00:00"), after: "2026-05-10 23:59:59 +00:00", "2026-05-11 00:00 +00:00"),
        Case("UTC", daily("00:00"), after: "2026-05-11 00:00 +00:00", "2026-05-12 00:00 +00:00"),
        Case("UTC", daily("23:59"), after: "2026-12-31 23:59 +00:00", "2027-01-01 23:59 +00:00"),
        Case("UTC", daily("02:00"), after: "2028-02-28 03:00 +00:00", "2028-02-29 02:00 +00:00"),
        // Every 2 hours: even hours from midnight.
        Case("UTC", everyHours(2), after: "2026-05-10 00:00 +00:00", "2026-05-10 02:00 +00:00"),
        Case("UTC", everyHours(2), after: "2026-05-10 01:59:59 +00:00", "2026-05-10 02:00 +00:00"),
        Case("UTC", everyHours(2), after: "2026-05-10 09:30 +00:00", "2026-05-10 10:00 +00:00"),
        Case("UTC", everyHours(2), after: "2026-05-10 22:00 +00:00", "2026-05-11 00:00 +00:00"),
        Case("UTC", everyHours(2), after: "2026-05-10 23:30 +00:00", "2026-05-11 00:00 +00:00"),
        Case("UTC", everyHours(2), after: "2026-12-31 23:00 +00:00", "2027-01-01 00:00 +00:00"),
        // Every 90 minutes: 22:30 is the day's last slot, then midnight again.
        Case("UTC", everyMinutes(90), after: "2026-05-10 00:00 +00:00", "2026-05-10 01:30 +00:00"),
        Case("UTC", everyMinutes(90), after: "2026-05-10 21:00 +00:00", "2026-05-10 22:30 +00:00"),
        Case("UTC", everyMinutes(90), after: "2026-05-10 22:30 +00:00", "2026-05-11 00:00 +00:00"),
        Case("UTC", everyHours(1.5), after: "2026-05-10 23:59 +00:00", "2026-05-11 00:00 +00:00"),
        // Every 7 minutes: 23:55 is the last slot (205 × 7 = 1435).
        Case("UTC", everyMinutes(7), after: "2026-05-10 00:06 +00:00", "2026-05-10 00:07 +00:00"),
        Case("UTC", everyMinutes(7), after: "2026-05-10 00:07 +00:00", "2026-05-10 00:14 +00:00"),
        Case("UTC", everyMinutes(7), after: "2026-05-10 23:50 +00:00", "2026-05-10 23:55 +00:00"),
        Case("UTC", everyMinutes(7), after: "2026-05-10 23:55 +00:00", "2026-05-11 00:00 +00:00"),
        // Every 5 hours: 00, 05, 10, 15, 20, then 00.
        Case("UTC", everyHours(5), after: "2026-05-10 00:00 +00:00", "2026-05-10 05:00 +00:00"),
        Case("UTC", everyHours(5), after: "2026-05-10 14:59 +00:00", "2026-05-10 15:00 +00:00"),
        Case("UTC", everyHours(5), after: "2026-05-10 20:00 +00:00", "2026-05-11 00:00 +00:00"),
        // The shortest and longest intervals, and one longer than half a day.
        Case("UTC", everyMinutes(5), after: "2026-05-10 12:03 +00:00", "2026-05-10 12:05 +00:00"),
        Case("UTC", everyMinutes(5), after: "2026-05-10 23:55 +00:00", "2026-05-11 00:00 +00:00"),
        Case("UTC", everyHours(24), after: "2026-05-10 00:00 +00:00", "2026-05-11 00:00 +00:00"),
        Case("UTC", everyHours(24), after: "2026-05-10 12:00 +00:00", "2026-05-11 00:00 +00:00"),
        Case("UTC", everyHours(13), after: "2026-05-10 12:59 +00:00", "2026-05-10 13:00 +00:00"),
        Case("UTC", everyHours(13), after: "2026-05-10 13:00 +00:00", "2026-05-11 00:00 +00:00"),
        // A fraction of a minute.
        Case("UTC", everyMinutes(7.5), after: "2026-05-10 00:07 +00:00", "2026-05-10 00:07:30 +00:00"),
    ]

    private static let shanghai: [Case] = [
        // UTC+8 all year: local midnight is 16:00 UTC the day before.
        Case("Asia/Shanghai", daily("02:00"), after: "2026-05-10 01:00 +08:00", "2026-05-10 02:00 +08:00"),
        Case("Asia/Shanghai", daily("02:00"), after: "2026-05-10 02:00 +08:00", "2026-05-11 02:00 +08:00"),
        Case("Asia/Shanghai", daily("15:00"), after: "2026-05-10 06:59 +00:00", "2026-05-10 15:00 +08:00"),
        Case("Asia/Shanghai", daily("15:00"), after: "2026-05-10 07:00 +00:00", "2026-05-11 15:00 +08:00"),
        Case("Asia/Shanghai", everyHours(2), after: "2026-05-10 07:00 +08:00", "2026-05-10 08:00 +08:00"),
        Case("Asia/Shanghai", everyHours(5), after: "2026-05-10 20:00 +08:00", "2026-05-11 00:00 +08:00"),
        Case("Asia/Shanghai", everyHours(5), after: "2026-05-10 15:30 +00:00", "2026-05-11 00:00 +08:00"),
    ]

    /// New York, 2026-03-08: at 02:00 EST the clocks go to 03:00 EDT; 02:00–02:59 does not happen.
    private static let springForward: [Case] = [
        Case("America/New_York", everyHours(2), after: "2026-03-08 00:00 -05:00", "2026-03-08 03:00 -04:00"),
        Case("America/New_York", everyHours(2), after: "2026-03-08 03:00 -04:00", "2026-03-08 04:00 -04:00"),
        Case("America/New_York", everyHours(1), after: "2026-03-08 01:00 -05:00", "2026-03-08 03:00 -04:00"),
        Case("America/New_York", everyHours(1), after: "2026-03-08 01:59:59 -05:00", "2026-03-08 03:00 -04:00"),
        Case("America/New_York", everyHours(1), after: "2026-03-08 03:00 -04:00", "2026-03-08 04:00 -04:00"),
        Case("America/New_York", everyMinutes(30), after: "2026-03-08 01:30 -05:00", "2026-03-08 03:00 -04:00"),
        Case("America/New_York", everyMinutes(30), after: "2026-03-08 03:00 -04:00", "2026-03-08 03:30 -04:00"),
        Case("America/New_York", everyMinutes(90), after: "2026-03-08 01:30 -05:00", "2026-03-08 03:00 -04:00"),
        Case("America/New_York", everyMinutes(90), after: "2026-03-08 03:00 -04:00", "2026-03-08 04:30 -04:00"),
        // A daily time in the skipped hour runs at the jump; the next day at its own time again.
        Case("America/New_York", daily("02:30"), after: "2026-03-08 00:00 -05:00", "2026-03-08 03:00 -04:00"),
        Case("America/New_York", daily("02:30"), after: "2026-03-08 03:00 -04:00", "2026-03-09 02:30 -04:00"),
        Case("America/New_York", daily("02:30"), after: "2026-03-07 02:30 -05:00", "2026-03-08 03:00 -04:00"),
        // The same wall-clock time across the change is 23 hours later.
        Case("America/New_York", daily("15:00"), after: "2026-03-07 15:00 -05:00", "2026-03-08 15:00 -04:00"),
        Case("America/New_York", everyHours(2), after: "2026-03-07 23:00 -05:00", "2026-03-08 00:00 -05:00"),
    ]

    /// New York, 2026-11-01: at 02:00 EDT the clocks go back to 01:00 EST; 01:00–01:59 happens twice.
    private static let fallBack: [Case] = [
        Case("America/New_York", everyHours(2), after: "2026-11-01 00:00 -04:00", "2026-11-01 02:00 -05:00"),
        Case("America/New_York", everyHours(2), after: "2026-11-01 02:00 -05:00", "2026-11-01 04:00 -05:00"),
        Case("America/New_York", everyHours(1), after: "2026-11-01 00:00 -04:00", "2026-11-01 01:00 -04:00"),
        Case("America/New_York", everyHours(1), after: "2026-11-01 01:00 -04:00", "2026-11-01 02:00 -05:00"),
        Case("America/New_York", everyHours(1), after: "2026-11-01 01:00 -05:00", "2026-11-01 02:00 -05:00"),
        Case("America/New_York", everyMinutes(30), after: "2026-11-01 01:30 -04:00", "2026-11-01 02:00 -05:00"),
        Case("America/New_York", everyMinutes(30), after: "2026-11-01 01:15 -05:00", "2026-11-01 02:00 -05:00"),
        // A daily time in the repeated hour runs once, at its first occurrence.
        Case("America/New_York", daily("01:30"), after: "2026-11-01 00:00 -04:00", "2026-11-01 01:30 -04:00"),
        Case("America/New_York", daily("01:30"), after: "2026-11-01 01:30 -04:00", "2026-11-02 01:30 -05:00"),
        Case("America/New_York", daily("01:30"), after: "2026-11-01 01:45 -05:00", "2026-11-02 01:30 -05:00"),
        // The same wall-clock time across the change is 25 hours later.
        Case("America/New_York", daily("15:00"), after: "2026-10-31 15:00 -04:00", "2026-11-01 15:00 -05:00"),
        Case("America/New_York", everyHours(2), after: "2026-10-31 23:00 -04:00", "2026-11-01 00:00 -04:00"),
        Case("America/New_York", everyHours(2), after: "2026-11-01 23:00 -05:00", "2026-11-02 00:00 -05:00"),
    ]

    @Test(arguments: utc + shanghai + springForward + fallBack)
    func nextRunIsTheFirstSlotStrictlyAfter(row: Case) throws {
        let zone = try #require(TimeZone(identifier: row.zone))
        let next = row.schedule.nextRun(after: Self.moment(row.after), timeZone: zone)
        #expect(Self.wallClock(next, in: zone) == row.expected)
        #expect(next == Self.moment(row.expected))
    }

    // MARK: - Whole days

    private static let wholeDays: [(String, UploadSchedule, String, [String])] = [
        (
            "UTC", everyHours(2), "2026-05-10 00:00 +00:00",
            ["00", "02", "04", "06", "08", "10", "12", "14", "16", "18", "20", "22", "next 00"].map { $0 + ":00" }
        ),
        (
            "UTC", everyMinutes(90), "2026-05-10 00:00 +00:00",
            [
                "00:00", "01:30", "03:00", "04:30", "06:00", "07:30", "09:00", "10:30", "12:00", "13:30", "15:00",
                "16:30", "18:00", "19:30", "21:00", "22:30", "next 00:00",
            ]
        ),
        ("UTC", everyHours(5), "2026-05-10 00:00 +00:00", ["00:00", "05:00", "10:00", "15:00", "20:00", "next 00:00"]),
        (
            "Asia/Shanghai", everyHours(5), "2026-05-10 00:00 +08:00",
            ["00:00", "05:00", "10:00", "15:00", "20:00", "next 00:00"]
        ),
        ("UTC", everyHours(24), "2026-05-10 00:00 +00:00", ["00:00", "next 00:00"]),
        ("UTC", daily("09:00"), "2026-05-10 00:00 +00:00", ["09:00", "next 09:00"]),
        (
            "America/New_York", everyHours(2), "2026-03-08 00:00 -05:00",
            ["00", "03", "04", "06", "08", "10", "12", "14", "16", "18", "20", "22", "next 00"].map { $0 + ":00" }
        ),
        (
            "America/New_York", everyHours(2), "2026-11-01 00:00 -04:00",
            ["00", "02", "04", "06", "08", "10", "12", "14", "16", "18", "20", "22", "next 00"].map { $0 + ":00" }
        ),
    ]

    /// Runs from one second before a local midnight: the day's slots in order, then the next day's first.
    @Test(arguments: wholeDays)
    func intervalRestartsAtEveryLocalMidnight(
        zone: String,
        schedule: UploadSchedule,
        midnight: String,
        runs: [String]
    ) throws {
        let zone = try #require(TimeZone(identifier: zone))
        let day = String(midnight.prefix(10))
        var now = Self.moment(midnight).addingTimeInterval(-1)
        var seen: [String] = []
        for _ in runs {
            now = schedule.nextRun(after: now, timeZone: zone)
            let text = Self.wallClock(now, in: zone)
            let time = String(text.split(separator: " ")[1])
            seen.append(text.hasPrefix(day) ? time : "next " + time)
        }
        #expect(seen == runs)
    }

    @Test func elapsedTimeBetweenRunsFollowsTheWallClockOnChangeDays() throws {
        let zone = try #require(TimeZone(identifier: "America/New_York"))
        let schedule = Self.everyHours(2)
        // 00:00 EST → "02:00" (the jump, 03:00 EDT) is 2 hours; 00:00 EDT → 02:00 EST is 3 hours.
        let spring = Self.moment("2026-03-08 00:00 -05:00")
        #expect(schedule.nextRun(after: spring, timeZone: zone).timeIntervalSince(spring) == 2 * 3600)
        let fall = Self.moment("2026-11-01 00:00 -04:00")
        #expect(schedule.nextRun(after: fall, timeZone: zone).timeIntervalSince(fall) == 3 * 3600)
    }

    /// The agent's loop: `next = nextRun(after: start)`, run when `now >= next`, then `next = nextRun(after: now)`.
    @Test func clockJumpingPastSeveralSlotsGivesOneRun() throws {
        let zone = try #require(TimeZone(identifier: "UTC"))
        let schedule = Self.everyHours(1)
        let start = Self.moment("2026-05-10 09:30 +00:00")
        var next = schedule.nextRun(after: start, timeZone: zone)
        #expect(next == Self.moment("2026-05-10 10:00 +00:00"))
        var runs = 0
        // The machine sleeps from 09:45 to 14:20: 10:00 … 14:00 were missed.
        for now in ["2026-05-10 09:45 +00:00", "2026-05-10 14:20 +00:00", "2026-05-10 14:40 +00:00"].map(Self.moment)
        where now >= next {
            runs += 1
            next = schedule.nextRun(after: now, timeZone: zone)
        }
        #expect(runs == 1)
        #expect(next == Self.moment("2026-05-10 15:00 +00:00"))
    }

    // MARK: - From the configuration

    @Test(arguments: [
        (ScheduleSettings(dailyAt: "15:00"), UploadSchedule.daily(ClockTime(hour: 15, minute: 0))),
        (ScheduleSettings(everyMinutes: 90), .every(seconds: 5400)),
        (ScheduleSettings(everyHours: 2), .every(seconds: 7200)),
        (ScheduleSettings(everyHours: 0.5), .every(seconds: 1800)),
    ])
    func settingsGiveTheSchedule(settings: ScheduleSettings, expected: UploadSchedule) {
        #expect(UploadSchedule(settings: settings) == expected)
    }

    @Test(arguments: [
        nil, ScheduleSettings(), ScheduleSettings(dailyAt: "15:00", everyHours: 2),
        ScheduleSettings(everyMinutes: 30, everyHours: 1), ScheduleSettings(dailyAt: "24:00"),
        ScheduleSettings(everyMinutes: 0), ScheduleSettings(everyHours: -1),
    ])
    func absentOrInvalidSettingsGiveNoSchedule(settings: ScheduleSettings?) {
        #expect(UploadSchedule(settings: settings) == nil)
    }

    // MARK: - Helpers

    /// `2026-03-08 01:30 -05:00` (seconds, with a fraction, optional) → that instant.
    static func moment(_ text: String) -> Date {
        let parts = text.split(separator: " ")
        let date = parts[0].split(separator: "-").map { Int($0)! }
        let time = parts[1].split(separator: ":")
        let offset = parts[2].dropFirst().split(separator: ":").map { Int($0)! }
        var utc = Calendar(identifier: .gregorian)
        utc.timeZone = TimeZone(identifier: "UTC")!
        let midnight = utc.date(from: DateComponents(year: date[0], month: date[1], day: date[2]))!
        let seconds = Double(Int(time[0])! * 3600 + Int(time[1])! * 60) + (time.count > 2 ? Double(time[2])! : 0)
        let east = Double((parts[2].hasPrefix("-") ? -1 : 1) * (offset[0] * 3600 + offset[1] * 60))
        return midnight.addingTimeInterval(seconds - east)
    }

    /// `date` on `zone`'s wall clock with the zone's offset then: `2026-03-08 03:00 -04:00` (seconds when not 0,
    /// fractions left out).
    static func wallClock(_ date: Date, in zone: TimeZone) -> String {
        let offset = zone.secondsFromGMT(for: date)
        var utc = Calendar(identifier: .gregorian)
        utc.timeZone = TimeZone(identifier: "UTC")!
        let shifted = date.addingTimeInterval(Double(offset))
        let parts = utc.dateComponents([.year, .month, .day, .hour, .minute, .second], from: shifted)
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        var text = "\(parts.year!)-\(two(parts.month!))-\(two(parts.day!)) \(two(parts.hour!)):\(two(parts.minute!))"
        if parts.second! != 0 { text += ":" + two(parts.second!) }
        let east = abs(offset)
        return text + " " + (offset < 0 ? "-" : "+") + two(east / 3600) + ":" + two(east % 3600 / 60)
    }
}
