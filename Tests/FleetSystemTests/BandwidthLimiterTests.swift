import Testing

@testable import FleetSystem

struct BandwidthScheduleTests {
    @Test(arguments: [
        ("8M", Int64(8 << 20)), ("2MiB", 2 << 20), ("512k", 512 << 10), ("1.5M", 3 << 19), ("1G", 1 << 30),
        ("4096", 4096), ("4096B", 4096), ("10MB", 10 << 20),
    ])
    func aRateIsBytesPerSecondWithBinaryUnits(text: String, bytes: Int64) throws {
        let schedule = try BandwidthSchedule(parsing: text)
        #expect(schedule.bytesPerSecond(atMinute: 0) == bytes)
        #expect(schedule.bytesPerSecond(atMinute: 1439) == bytes)
    }

    @Test func aTimetableAppliesEachRateFromItsTimeUntilTheNextAndWrapsAroundMidnight() throws {
        let schedule = try BandwidthSchedule(parsing: "08:00,2M 12:30,512K 19:00,off")
        #expect(schedule.bytesPerSecond(atMinute: 7 * 60 + 59) == nil)  // before 08:00: the evening's "off"
        #expect(schedule.bytesPerSecond(atMinute: 8 * 60) == 2 << 20)
        #expect(schedule.bytesPerSecond(atMinute: 12 * 60 + 29) == 2 << 20)
        #expect(schedule.bytesPerSecond(atMinute: 12 * 60 + 30) == 512 << 10)
        #expect(schedule.bytesPerSecond(atMinute: 19 * 60) == nil)
        #expect(schedule.description == "08:00,2M 12:30,512K 19:00,off")
        #expect(schedule.limits)
        #expect(try !BandwidthSchedule(parsing: "off").limits)
    }

    @Test(arguments: [
        ("", "is empty"), ("fast", "'fast' is not a rate"), ("0", "'0' is not a rate"), ("-2M", "'-2M' is not a rate"),
        ("100", "below the smallest cap"), ("8:00,2M", "'8:00,2M' is not HH:MM,RATE"),
        ("08:00,2M 07:00,off", "'07:00' is not later"), ("24:00,1M", "'24:00,1M' is not HH:MM,RATE"),
        ("08:00 2M", "'08:00' is not HH:MM,RATE"), ("08:00,2X", "'2X' is not a rate"),
    ])
    func badValuesAreRefusedNamingThePart(text: String, message: String) {
        #expect {
            try BandwidthSchedule(parsing: text)
        } throws: { error in
            "\(error)".contains(message)
        }
    }
}

struct TokenBucketTests {
    @Test func sendersWaitTheirTurnSoTheRateHoldsOverTime() {
        var bucket = TokenBucket()
        let rate: Int64 = 1 << 20
        // 64 transfers each reserving 16 KiB at the same moment: 1 MiB, one second of the rate; the last waits
        // almost a second, the first not at all (the allowance covers one piece).
        let waits = (0..<64).map { _ in bucket.reserve(16 << 10, rate: rate, burst: 16 << 10, now: 100) }
        #expect(waits.first == 0)
        #expect(abs(waits.last! - 63.0 / 64.0) < 1e-9)
        #expect(zip(waits, waits.dropFirst()).allSatisfy { $0 < $1 })
        // A minute of senders that always reserve the moment their wait is over sends a minute of the rate.
        var now = 200.0
        var sent: Int64 = 0
        var bucket2 = TokenBucket()
        while now < 260 {
            let wait = bucket2.reserve(8 << 10, rate: rate, burst: 8 << 10, now: now)
            now += wait
            if now < 260 { sent += 8 << 10 }
        }
        #expect(abs(Double(sent) - 60 * Double(rate)) <= Double(rate) * 0.01)
    }

    @Test func idleTimeSavesNoMoreThanTheBurst() {
        var bucket = TokenBucket()
        #expect(bucket.reserve(1000, rate: 1000, burst: 500, now: 0) == 0.5)
        // An hour idle saves 500 bytes, not 3.6 million.
        #expect(bucket.reserve(500, rate: 1000, burst: 500, now: 3600) == 0)
        #expect(bucket.reserve(500, rate: 1000, burst: 500, now: 3600) == 0.5)
    }
}
