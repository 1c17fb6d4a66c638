import Foundation

/// The hours in which a file that becomes ready is uploaded at once (`agent.operational_hours`); outside them
/// it waits for the schedule.
///
/// Read on the wall clock of the agent's zone: `start` is inside, `end` is not. An end before the start crosses
/// midnight, so 22:00–06:00 holds 23:30 and 05:59 but not 06:00. Without operational hours (nil) the agent
/// treats every moment as inside.
///
/// On the days clocks change, the wall clock decides: both occurrences of a repeated 01:30 are inside 01:00–02:00,
/// and hours that lie wholly in a skipped hour hold no moment that day.
package struct OperationalHours: Sendable, Equatable {
    package let start: ClockTime
    package let end: ClockTime

    /// - Precondition: `start != end` (validation refuses it: it would mean either never or always).
    package init(start: ClockTime, end: ClockTime) {
        precondition(start != end, "operational hours need a start different from the end")
        self.start = start
        self.end = end
    }

    /// The hours `settings` describe; nil when they are absent or `enabled: false`, and when they are not valid
    /// (`FleetConfig.problems()` says why).
    package init?(settings: OperationalHoursSettings?) {
        guard let settings, settings.enabled != false, let start = ClockTime(parsing: settings.start),
            let end = ClockTime(parsing: settings.end), start != end
        else { return nil }
        self.init(start: start, end: end)
    }

    /// Whether `date` falls within the hours on the wall clock of `timeZone`.
    package func contains(_ date: Date, timeZone: TimeZone) -> Bool {
        let second = timeZone.wallClockSeconds(at: date)
        let timeOfDay = second - (second / 86_400).rounded(.down) * 86_400
        let from = Double(start.minutesSinceMidnight * 60)
        let to = Double(end.minutesSinceMidnight * 60)
        return start < end ? from <= timeOfDay && timeOfDay < to : from <= timeOfDay || timeOfDay < to
    }
}
