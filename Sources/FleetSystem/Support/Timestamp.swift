import Foundation

/// A point in time with microsecond precision, as PostgreSQL's `timestamptz` stores it.
///
/// File modification times are kept in this form end to end (scan, ledger, comparison), so "same mtime" means
/// the same integer and no floating-point rounding can make a file look changed.
package struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Microseconds since 1970-01-01T00:00:00Z.
    package var microseconds: Int64

    package init(microseconds: Int64) { self.microseconds = microseconds }

    package init(seconds: Int64, nanoseconds: Int64 = 0) {
        microseconds = seconds * 1_000_000 + nanoseconds / 1000
    }

    package init(_ date: Date) {
        microseconds = Int64((date.timeIntervalSince1970 * 1_000_000).rounded(.down))
    }

    package static func now() -> Timestamp { Timestamp(Date()) }

    package var date: Date { Date(timeIntervalSince1970: Double(microseconds) / 1_000_000) }

    package static func < (a: Timestamp, b: Timestamp) -> Bool { a.microseconds < b.microseconds }

    /// Whole seconds since the epoch, rounded towards negative infinity.
    package var seconds: Int64 { microseconds.floorDiv(1_000_000) }

    /// `2026-11-23 14:05:09.123456+00`, the text form PostgreSQL reads back exactly.
    package var iso8601: String {
        let micros = microseconds.floorMod(1_000_000)
        let (date, time) = civil(offsetSeconds: 0)
        return date + " " + time + "." + String(micros).leftPadded(to: 6) + "+00"
    }

    package var description: String { iso8601 }

    /// `2026-11-23T14:05:09.123Z`: RFC 3339 in UTC with milliseconds, for JSON.
    package var rfc3339: String {
        let (date, time) = civil(offsetSeconds: 0)
        return date + "T" + time + "." + String(microseconds.floorMod(1_000_000) / 1000).leftPadded(to: 3) + "Z"
    }

    /// `YYYY-MM-DD` of this instant in a zone `offsetSeconds` east of UTC.
    package func calendarDate(offsetSeconds: Int) -> String { civil(offsetSeconds: offsetSeconds).date }

    /// Parses PostgreSQL's text output for `timestamptz` (`2026-11-23 14:05:09.123456+00`, the fraction and the
    /// minutes of the offset optional; seconds too, as in `+05:53:28` for a zone's local mean time).
    package init?(postgres text: String) {
        let bytes = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int64? {
            guard range.upperBound <= bytes.count else { return nil }
            var value: Int64 = 0
            for b in bytes[range] {
                guard b >= 48, b <= 57 else { return nil }
                value = value * 10 + Int64(b - 48)
            }
            return value
        }
        func byte(_ index: Int, is characters: String) -> Bool { characters.utf8.contains(bytes[index]) }
        guard bytes.count >= 19, byte(4, is: "-"), byte(7, is: "-"), byte(10, is: " T"), byte(13, is: ":"),
            byte(16, is: ":"), let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19)
        else { return nil }
        var index = 19
        var micros: Int64 = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            var digits = 0
            while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
                if digits < 6 { micros = micros * 10 + Int64(bytes[index] - 48) }
                digits += 1
                index += 1
            }
            if digits < 6 { for _ in digits..<6 { micros *= 10 } }
        }
        var offset: Int64 = 0
        if index < bytes.count {
            guard byte(index, is: "+-"), let hours = number(index + 1..<index + 3) else { return nil }
            let sign: Int64 = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            offset = hours * 3600
            index += 3
            for unit: Int64 in [60, 1] where index < bytes.count {
                guard byte(index, is: ":"), let value = number(index + 1..<index + 3) else { return nil }
                offset += value * unit
                index += 3
            }
            guard index == bytes.count else { return nil }
            offset *= sign
        }
        let days = Timestamp.daysFromCivil(year: year, month: month, day: day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset
        self.init(microseconds: seconds * 1_000_000 + micros)
    }

    // MARK: - Civil calendar arithmetic (Howard Hinnant's days_from_civil / civil_from_days)

    private func civil(offsetSeconds: Int) -> (date: String, time: String) {
        let local = seconds + Int64(offsetSeconds)
        let days = local.floorDiv(86_400)
        let secondOfDay = local.floorMod(86_400)
        let (y, m, d) = Timestamp.civilFromDays(days)
        let date = String(y).leftPadded(to: 4) + "-" + String(m).leftPadded(to: 2) + "-" + String(d).leftPadded(to: 2)
        let time =
            String(secondOfDay / 3600).leftPadded(to: 2) + ":" + String(secondOfDay % 3600 / 60).leftPadded(to: 2)
            + ":" + String(secondOfDay % 60).leftPadded(to: 2)
        return (date, time)
    }

    package static func civilFromDays(_ z0: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    static func daysFromCivil(year y0: Int64, month m: Int64, day d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}

extension Int64 {
    package func floorDiv(_ d: Int64) -> Int64 { (self >= 0 ? self : self - d + 1) / d }
    package func floorMod(_ d: Int64) -> Int64 { self - floorDiv(d) * d }
}

extension String {
    package func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
