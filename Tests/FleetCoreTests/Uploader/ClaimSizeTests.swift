import Testing

@testable import FleetCore

/// Claims grow with the files the workers take a second, so a far ledger costs about one claim a second; the
/// instants are the test's.
struct ClaimSizeTests {
    /// Takes `count` files spread evenly over `seconds` from `start`; returns the end.
    static func take(
        _ size: inout ClaimSize,
        _ count: Int,
        over seconds: Double,
        from start: ContinuousClock.Instant
    ) -> ContinuousClock.Instant {
        for index in 1...count {
            size.taken(at: start + .milliseconds(Int(seconds * 1000) * index / count))
        }
        return start + .milliseconds(Int(seconds * 1000))
    }

    @Test func aNewSourceClaimsTheBatchOrTheFilesInFlight() {
        let size = ClaimSize(batchSize: 256, now: .now)
        #expect(size.files(inFlight: 64) == 256)
        #expect(size.files(inFlight: 1024) == 1024)
    }

    @Test func claimsGrowToASecondOfTakenFilesOnceASecondHasPassed() {
        let start = ContinuousClock.now
        var size = ClaimSize(batchSize: 256, largest: 4000, now: start)
        // Within the first second nothing is known yet, however fast files go.
        let half = Self.take(&size, 900, over: 0.5, from: start)
        #expect(size.files(inFlight: 256) == 256)
        // 1,500 taken over the full second: a second's worth.
        _ = Self.take(&size, 600, over: 0.5, from: half)
        #expect(size.perSecond == 1500)
        #expect(size.files(inFlight: 256) == 1500)
        #expect(size.files(inFlight: 2048) == 2048)
    }

    @Test func claimsShrinkWhenTheRateFallsAndStopAtTheLargest() {
        let start = ContinuousClock.now
        var size = ClaimSize(batchSize: 100, largest: 1024, now: start)
        var now = Self.take(&size, 10_000, over: 1, from: start)
        #expect(size.files(inFlight: 0) == 1024)
        now = Self.take(&size, 300, over: 1, from: now)
        #expect(size.files(inFlight: 0) == 300)
        _ = Self.take(&size, 20, over: 2, from: now)
        #expect(size.perSecond == 10)
        #expect(size.files(inFlight: 50) == 100)
    }
}
