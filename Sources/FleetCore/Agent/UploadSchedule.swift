import Foundation

/// When the agent uploads its whole queue regardless of operational hours (`agent.schedule`).
///
/// Times are read on the wall clock of the agent's zone. An interval restarts at every local midnight: every 2
/// hours is 00:00, 02:00 … 22:00; every 90 minutes is 00:00, 01:30 … 22:30 and then 00:00 of the next day; every
/// 5 hours is 00:00, 05:00, 10:00, 15:00, 20:00. The agent keeps `next = schedule.nextRun(after: start)`, runs
/// when `now >= next`, then sets `next = schedule.nextRun(after: now)`. Slots missed while the machine slept or
/// the clock jumped forward therefore give one run, not one per slot.
///
/// On the days clocks change, a slot is due at the first moment the wall clock shows that time or later:
/// - a slot in the hour that is skipped (02:00 or 02:30 on a spring-forward night in New York) is due at the
///   jump itself, 03:00 daylight time, and slots that land on the same moment give one run;
/// - a slot in the hour that repeats (01:30 on a fall-back night) is due once, at its first occurrence.
package enum UploadSchedule: Sendable, Equatable {
    /// Once a day at this time.
    case daily(ClockTime)
    /// At local midnight and every `seconds` after it until the next midnight.
    case every(seconds: Double)

    /// The schedule `settings` describe; nil when there is none, or when the settings are not valid
    /// (`FleetConfig.problems()` says why).
    package init?(settings: ScheduleSettings?) {
        guard let settings else { return nil }
        switch (settings.dailyAt, settings.everyMinutes, settings.everyHours) {
        case (let text?, nil, nil):
            guard let time = ClockTime(parsing: text) else { return nil }
            self = .daily(time)
        case (nil, let minutes?, nil):
            guard minutes.isFinite, minutes > 0 else { return nil }
            self = .every(seconds: minutes * 60)
        case (nil, nil, let hours?):
            guard hours.isFinite, hours > 0 else { return nil }
            self = .every(seconds: hours * 3600)
        default:
            return nil
        }
    }

    /// The first run strictly after `date`.
    ///
    /// - Parameters:
    ///   - date: Usually now, or the moment the agent started.
    ///   - timeZone: The zone whose wall clock the schedule is read on (`FleetConfig.agentTimeZone`).
    /// - Returns: A moment later than `date`, at most a day and an hour or so away.
    package func nextRun(after date: Date, timeZone: TimeZone) -> Date {
        let after = date.timeIntervalSince1970
        let wallClock = timeZone.wallClockSeconds(at: date)
        var midnight = (wallClock / 86_400).rounded(.down) * 86_400
        // Slots whose wall-clock time is not after `date`'s are due at or before `date`, so the search starts
        // at `date`'s own slot. Due moments grow with the slot, and the next day's midnight (or, after an hour
        // that repeats across midnight, a slot shortly after it) is later than `date`: two days are enough.
        for _ in 0..<3 {
            for slot in slots(fromSecond: wallClock - midnight) {
                let due = timeZone.firstInstant(reachingWallClock: midnight + slot)
                if due > after { return Date(timeIntervalSince1970: due) }
            }
            midnight += 86_400
        }
        return Date(timeIntervalSince1970: after + 86_400)  // not reached with any zone in the tz database
    }

    /// The slots of one day as seconds after midnight on the wall clock, from the last one at or before `second`.
    private func slots(fromSecond second: Double) -> [Double] {
        switch self {
        case .daily(let time):
            return [Double(time.minutesSinceMidnight * 60)]
        case .every(let seconds):
            precondition(seconds > 0, "an interval schedule needs a positive interval")
            let count = Int((86_400 / seconds).rounded(.up))
            let first = min(max(0, Int((second / seconds).rounded(.down))), count)
            return (first..<count).map { Double($0) * seconds }
        }
    }
}

extension TimeZone {
    /// Seconds since 1970-01-01 00:00 on this zone's wall clock at `date`: the instant's seconds plus the zone's
    /// offset then. Whole days of it are local dates; the remainder is the time of day.
    func wallClockSeconds(at date: Date) -> Double {
        date.timeIntervalSince1970 + Double(secondsFromGMT(for: date))
    }

    /// The earliest instant, in seconds since 1970, at which this zone's wall clock reads `wallClock` (as from
    /// `wallClockSeconds(at:)`) or later.
    ///
    /// For a wall-clock time that occurs twice this is its first occurrence; for one the clocks skip, the moment
    /// of the jump.
    func firstInstant(reachingWallClock wallClock: Double) -> Double {
        func offset(_ instant: Double) -> Double {
            Double(secondsFromGMT(for: Date(timeIntervalSince1970: instant)))
        }
        // Offsets lie within ±18 hours, so the instant is within that of `wallClock` read as UTC, and zones
        // change their offset at most once in 18 hours: sampling three instants finds every offset in play.
        let offsets = Set([wallClock - 64_800, wallClock, wallClock + 64_800].map(offset))
        let exact = offsets.map { wallClock - $0 }.filter { offset($0) == wallClock - $0 }
        if let first = exact.min() { return first }

        // The clocks skip `wallClock`: find the jump, to the second, between the instant that reads it with the
        // larger offset (before the jump) and the one that reads it with the smaller (after).
        guard let smallest = offsets.min(), let largest = offsets.max() else { return wallClock }
        var before = (wallClock - largest).rounded(.down)
        var after = (wallClock - smallest).rounded(.up)
        guard before + offset(before) < wallClock, after + offset(after) >= wallClock else { return after }
        while after - before > 1 {
            let middle = ((before + after) / 2).rounded(.down)
            if middle + offset(middle) >= wallClock { after = middle } else { before = middle }
        }
        return after
    }
}
