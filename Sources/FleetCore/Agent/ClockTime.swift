/// A time of day on the wall clock, to the minute: what `HH:MM` in the configuration means.
///
/// It names no zone and no day; `UploadSchedule` and `OperationalHours` place it in the agent's zone.
package struct ClockTime: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// 0…23.
    package let hour: Int
    /// 0…59.
    package let minute: Int

    /// - Precondition: `hour` is 0…23 and `minute` 0…59.
    package init(hour: Int, minute: Int) {
        precondition((0..<24).contains(hour) && (0..<60).contains(minute), "no such time of day: \(hour):\(minute)")
        self.hour = hour
        self.minute = minute
    }

    /// Reads `HH:MM`, 00:00…23:59, with exactly two ASCII digits on each side of the colon.
    ///
    /// `24:00`, `9:5`, `09:60`, ` 09:00` and `0900` are refused: the predecessor wrote times this way and a
    /// looser reading would only hide a typo.
    package init?(parsing text: String) {
        let bytes = Array(text.utf8)
        guard bytes.count == 5, bytes[2] == UInt8(ascii: ":") else { return nil }
        func digit(_ index: Int) -> Int? {
            let byte = bytes[index]
            return byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") ? Int(byte - UInt8(ascii: "0")) : nil
        }
        guard let h1 = digit(0), let h2 = digit(1), let m1 = digit(3), let m2 = digit(4) else { return nil }
        let hour = h1 * 10 + h2
        let minute = m1 * 10 + m2
        guard hour < 24, minute < 60 else { return nil }
        self.init(hour: hour, minute: minute)
    }

    /// 0 for 00:00, 1439 for 23:59.
    package var minutesSinceMidnight: Int { hour * 60 + minute }

    /// `09:05`.
    package var description: String {
        (hour < 10 ? "0" : "") + String(hour) + ":" + (minute < 10 ? "0" : "") + String(minute)
    }

    package static func < (a: ClockTime, b: ClockTime) -> Bool { a.minutesSinceMidnight < b.minutesSinceMidnight }
}
