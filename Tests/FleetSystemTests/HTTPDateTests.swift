import Testing

@testable import FleetSystem

struct HTTPDateTests {
    /// RFC 9110's example instant in its three forms: the preferred one and the two obsolete ones a recipient
    /// must accept.
    @Test(arguments: [
        "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
        "sun, 06 nov 1994 08:49:37 GMT",
    ])
    func everyFormReadsAsTheSameInstant(text: String) {
        let now = Timestamp(seconds: 1_796_000_000)  // in 2026
        #expect(HTTPDate.parse(text, now: now) == Timestamp(seconds: 784_111_777))
    }

    @Test func aServerDateHeaderReadsToTheSecond() {
        #expect(HTTPDate.parse("Sun, 06 Dec 2026 15:05:07 GMT")?.iso8601 == "2026-12-06 15:05:07.000000+00")
    }

    /// A two-digit year is the nearest one not more than 50 years ahead.
    @Test func twoDigitYearsStayWithinFiftyYearsAhead() {
        let now = Timestamp(seconds: 1_796_000_000)  // 2026
        #expect(HTTPDate.parse("Monday, 01-Jan-30 00:00:00 GMT", now: now)?.iso8601.hasPrefix("2030-") == true)
        #expect(HTTPDate.parse("Monday, 01-Jan-99 00:00:00 GMT", now: now)?.iso8601.hasPrefix("1999-") == true)
    }

    @Test(arguments: [
        "", "120", "Sun, 06 Nov 1994 08:49:37", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 32 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT", "Sun, 06 Nov 1994 8:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT", "Sun, 06 Nov 1994 08:49 GMT", "2026-12-06T15:05:07Z",
    ])
    func anythingElseIsNotADate(text: String) {
        #expect(HTTPDate.parse(text) == nil)
    }
}
