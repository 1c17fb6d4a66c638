import Testing

@testable import FleetCore

struct ClockTimeTests {
    @Test(arguments: [
        ("00:00", 0, 0, 0),
        ("00:01", 0, 1, 1),
        ("09:05", 9, 5, 545),
        ("12:30", 12, 30, 750),
        ("16:00", 16, 0, 960),
        ("23:59", 23, 59, 1439),
    ])
    func parsesTwoDigitHoursAndMinutes(text: String, hour: Int, minute: Int, minutes: Int) throws {
        let time = try #require(ClockTime(parsing: text))
        #expect(time.hour == hour)
        #expect(time.minute == minute)
        #expect(time.minutesSinceMidnight == minutes)
        #expect(time.description == text)
    }

    @Test(arguments: [
        "24:00", "25:00", "99:99", "09:60", "9:5", "9:05", "09:5", " 09:00", "09:00 ", "0900", "09-00", "09.00",
        "09:00:00", "", ":", "ab:cd", "+9:05", "-1:00", "１２:００", "٠٩:٠٠", "09：00",
    ])
    func refusesAnythingElse(text: String) {
        #expect(ClockTime(parsing: text) == nil)
    }

    @Test func ordersByTimeOfDay() {
        let times = ["23:59", "09:01", "00:00", "10:00", "09:00"].compactMap(ClockTime.init(parsing:))
        #expect(times.sorted().map(\.description) == ["00:00", "09:00", "09:01", "10:00", "23:59"])
        #expect(ClockTime(hour: 9, minute: 0) == ClockTime(parsing: "09:00"))
        #expect(ClockTime(hour: 9, minute: 0) < ClockTime(hour: 9, minute: 1))
    }

    @Test func describesWithLeadingZeros() {
        #expect(ClockTime(hour: 0, minute: 0).description == "00:00")
        #expect(ClockTime(hour: 7, minute: 3).description == "07:03")
        #expect("\(ClockTime(hour: 22, minute: 30))" == "22:30")
    }

    @Test func outOfRangeComponentsAreAProgrammerError() async {
        await #expect(processExitsWith: .failure) { _ = ClockTime(hour: 24, minute: 0) }
    }
}
