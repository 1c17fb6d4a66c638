import Testing

@testable import FleetSystem

struct BackoffTests {
    @Test func ceilingDoublesFromTheBaseUpToTheCap() {
        let backoff = Backoff(baseSeconds: 15, capSeconds: 900)
        #expect((1...8).map { backoff.ceiling(afterAttempt: $0) } == [15, 30, 60, 120, 240, 480, 900, 900])
        #expect(backoff.ceiling(afterAttempt: 0) == 15)
        #expect(backoff.ceiling(afterAttempt: 10_000) == 900)
    }

    @Test func halfJitteredDelaySpansTheUpperHalfOfTheCeiling() {
        let backoff = Backoff(baseSeconds: 2, capSeconds: 300)
        #expect(backoff.halfJitteredDelay(afterAttempt: 1, jitter: 0) == 1)
        #expect(backoff.halfJitteredDelay(afterAttempt: 1, jitter: 0.5) == 1.5)
        #expect(backoff.halfJitteredDelay(afterAttempt: 1, jitter: 1) == 2)
        #expect(backoff.halfJitteredDelay(afterAttempt: 20, jitter: 1) == 300)
        // Out of range jitter is clamped: never sooner than half, never later than the ceiling.
        #expect(backoff.halfJitteredDelay(afterAttempt: 3, jitter: -1) == 4)
        #expect(backoff.halfJitteredDelay(afterAttempt: 3, jitter: 7) == 8)
    }
}
