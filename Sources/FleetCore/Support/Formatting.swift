import FleetSystem
import Foundation

/// Numbers as people read them in summaries and progress lines.
package enum Formatting {
    /// `1.23 GiB`, `512 B`.
    package static func bytes(_ count: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(count)
        var unit = 0
        // Past 1023.5 a unit would print as "1024", so the next unit takes over there.
        while abs(value) >= (unit == 0 ? 1024 : 1023.5), unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        if unit == 0 { return "\(count) B" }
        // The thresholds are where the rounded text gains a digit, so 99.99 prints as "100", not "100.0".
        let magnitude = abs(value)
        return String(
            format: magnitude >= 99.95 ? "%.0f %@" : magnitude >= 9.995 ? "%.1f %@" : "%.2f %@",
            value,
            units[unit]
        )
    }

    /// `300,000`.
    package static func count(_ number: Int) -> String {
        let digits = String(number.magnitude)
        var out = ""
        for (index, character) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(character)
        }
        return number < 0 ? "-" + out : out
    }

    /// `2.4 s`, `3 min 05 s`, `1 h 02 min`.
    package static func duration(_ seconds: Double) -> String {
        if seconds < 59.95 { return String(format: "%.1f s", seconds) }
        let whole = Int(seconds.rounded())
        if whole < 3600 { return String(format: "%d min %02d s", whole / 60, whole % 60) }
        return String(format: "%d h %02d min", whole / 3600, whole % 3600 / 60)
    }

    /// `2026-11-23 14:05:09`: an instant in UTC to the second, for tables.
    package static func utc(_ time: Timestamp) -> String { String(time.iso8601.prefix(19)) }

    /// `just now`, `45s ago`, `3m ago`, `5h ago`, `12d ago`: how long ago something happened, in its largest
    /// whole unit. Anything under a second, or in the future (clock skew), is `just now`.
    package static func ago(_ seconds: Double) -> String {
        guard seconds >= 1 else { return "just now" }
        let whole = Int(seconds)
        if whole < 60 { return "\(whole)s ago" }
        if whole < 3600 { return "\(whole / 60)m ago" }
        if whole < 86_400 { return "\(whole / 3600)h ago" }
        return "\(whole / 86_400)d ago"
    }
}
