/// The date format of HTTP headers such as `Date` and `Retry-After` (RFC 9110, section 5.6.7).
///
/// Servers send the preferred form, `Sun, 06 Nov 1994 08:49:37 GMT`; the two obsolete forms a recipient must
/// still accept, `Sunday, 06-Nov-94 08:49:37 GMT` and `Sun Nov  6 08:49:37 1994`, are read too. Anything else
/// is not a date.
package enum HTTPDate {
    private static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

    /// The instant `text` names, or nil when it is not an HTTP date.
    ///
    /// A two-digit year (the obsolete RFC 850 form) is read as the nearest year that is not more than 50 years
    /// in the future of `now`, as RFC 9110 asks.
    package static func parse(_ text: String, now: Timestamp = .now()) -> Timestamp? {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        let day: String
        let month: String
        var year: String
        let time: String
        switch words.count {
        case 6 where words[5] == "GMT":  // Sun, 06 Nov 1994 08:49:37 GMT
            (day, month, year, time) = (words[1], words[2], words[3], words[4])
        case 4 where words[3] == "GMT":  // Sunday, 06-Nov-94 08:49:37 GMT
            let parts = words[1].split(separator: "-").map(String.init)
            guard parts.count == 3 else { return nil }
            (day, month, year, time) = (parts[0], parts[1], parts[2], words[2])
        case 5:  // Sun Nov  6 08:49:37 1994
            (day, month, year, time) = (words[2], words[1], words[4], words[3])
        default:
            return nil
        }
        let clock = time.split(separator: ":", omittingEmptySubsequences: false)
        guard let monthIndex = months.firstIndex(of: month.lowercased()),
            let dayNumber = digits(day, count: 1...2), (1...31).contains(dayNumber),
            clock.count == 3, let hour = digits(clock[0], count: 2...2), hour < 24,
            let minute = digits(clock[1], count: 2...2), minute < 60,
            let second = digits(clock[2], count: 2...2), second < 61
        else { return nil }
        if words.count == 4, let short = digits(year, count: 2...2) {
            let (currentYear, _, _) = Timestamp.civilFromDays(now.seconds.floorDiv(86_400))
            var full = currentYear - currentYear % 100 + short
            if full > currentYear + 50 { full -= 100 }
            year = String(full)
        }
        guard let yearNumber = digits(year, count: 4...4) else { return nil }
        let days = Timestamp.daysFromCivil(year: yearNumber, month: Int64(monthIndex + 1), day: dayNumber)
        return Timestamp(seconds: days * 86_400 + hour * 3600 + minute * 60 + second)
    }

    /// The number `text` spells with `count` ASCII digits, or nil.
    private static func digits(_ text: some StringProtocol, count: ClosedRange<Int>) -> Int64? {
        guard count.contains(text.utf8.count), text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        return Int64(text)
    }
}
