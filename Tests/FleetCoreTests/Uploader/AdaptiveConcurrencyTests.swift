import Testing

@testable import FleetCore

/// `upload.workers: auto` grows the files in flight while files per second grow, steps back when a raise stops
/// paying, and backs off on congestion. The clock is the test's: each interval is a second of its instants, and
/// the files finished in it are what a link with the given capacity would finish at that level.
struct AdaptiveConcurrencyTests {
    /// Drives `control` for `seconds` seconds on a link that finishes `rate(level)` files a second.
    static func run(
        _ control: inout AdaptiveConcurrency,
        from start: ContinuousClock.Instant,
        seconds: Int,
        rate: (Int) -> Int
    ) -> (levels: [Int], end: ContinuousClock.Instant) {
        var levels: [Int] = []
        var now = start
        for _ in 0..<seconds {
            let files = rate(control.level)
            for index in 1...max(1, files) {
                _ = control.fileFinished(at: now + .milliseconds(1000 * index / max(1, files)))
            }
            now += .seconds(1)
            levels.append(control.level)
        }
        return (levels, now)
    }

    /// A long round trip: every file in flight finishes 10 times a second, until the server's 2,000 a second.
    static func longRoundTrip(_ level: Int) -> Int { min(level * 10, 2000) }

    @Test func doublesWhileThroughputGrowsThenSettlesWhereItStopsGrowing() {
        let start = ContinuousClock.now
        var control = AdaptiveConcurrency(now: start)
        #expect(control.level == AdaptiveConcurrency.initialLevel)
        let (levels, _) = Self.run(&control, from: start, seconds: 15, rate: Self.longRoundTrip)
        // Doubling while it pays; 512 finished no more than 256 did, so back to 256, held, probed an eighth
        // higher every five intervals, and back again.
        #expect(levels == [128, 256, 512, 256, 256, 256, 256, 256, 288, 256, 256, 256, 256, 256, 288])
        #expect(control.settled == 256)
    }

    @Test func fixedCapacityIsNeverExceeded() {
        let start = ContinuousClock.now
        var control = AdaptiveConcurrency(maximum: 40, now: start)
        let (levels, _) = Self.run(&control, from: start, seconds: 10, rate: { $0 * 100 })
        #expect(levels.allSatisfy { $0 <= 40 })
        #expect(control.level == 40)
    }

    @Test func congestionTakesAQuarterOffAtOnceAndStopsTheDoubling() {
        let start = ContinuousClock.now
        var control = AdaptiveConcurrency(now: start)
        #expect(control.level == AdaptiveConcurrency.initialLevel)
        // Half a second in: too early for a throughput interval, but throttling counts at once once a second
        // has passed.
        let early = control.congestion(at: start + .milliseconds(500))
        #expect(!early)
        let first = control.congestion(at: start + .seconds(1))
        #expect(first && control.level == 48)
        let second = control.congestion(at: start + .seconds(2))
        #expect(second && control.level == 36)
        // Growing again after a back-off is additive: an eighth at a time, not doubling.
        let (levels, _) = Self.run(&control, from: start + .seconds(2), seconds: 2, rate: { $0 * 10 })
        #expect(levels == [40, 45])
    }

    @Test func aRaiseThatDoesNotPayIsUndone() {
        let start = ContinuousClock.now
        var control = AdaptiveConcurrency(initial: 8, now: start)
        // A fast link saturated from the start: more in flight brings nothing.
        let (levels, _) = Self.run(&control, from: start, seconds: 5, rate: { _ in 500 })
        #expect(levels == [16, 8, 8, 8, 8])
        #expect(control.settled == 8)
    }

    @Test func fewFilesStretchTheIntervalUpToFiveSeconds() {
        let start = ContinuousClock.now
        var control = AdaptiveConcurrency(initial: 4, now: start)
        // Large files: two finish in the first four seconds; no decision on so little.
        let changed = [2, 4, 5].map { control.fileFinished(at: start + .seconds($0)) }
        #expect(changed == [false, false, true])
        #expect(control.level == 8)
    }
}
