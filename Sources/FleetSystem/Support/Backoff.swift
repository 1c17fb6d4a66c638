/// Exponential backoff with full jitter: before attempt n+1 wait a random time in [0, min(cap, base·2ⁿ⁻¹)].
///
/// Full jitter spreads retries of many workers that failed together (a dropped link) instead of sending
/// them back in one wave.
package struct Backoff: Sendable, Equatable {
    package var baseSeconds: Double
    package var capSeconds: Double

    package init(baseSeconds: Double, capSeconds: Double) {
        self.baseSeconds = baseSeconds
        self.capSeconds = capSeconds
    }

    /// The longest wait after `attempt` failed attempts (1-based).
    package func ceiling(afterAttempt attempt: Int) -> Double {
        min(capSeconds, baseSeconds * Double(1 << min(max(attempt - 1, 0), 40)))
    }

    /// A wait drawn uniformly from [0, ceiling].
    package func delay(afterAttempt attempt: Int, using generator: inout some RandomNumberGenerator) -> Double {
        let ceiling = ceiling(afterAttempt: attempt)
        return ceiling > 0 ? Double.random(in: 0...ceiling, using: &generator) : 0
    }

    /// A wait of half the ceiling plus `jitter` (0…1) of the other half: never sooner than half the ceiling.
    ///
    /// Where a wait must not collapse to nothing (the agent's runs, its ledger connection, its retries of
    /// files left unsettled), this spreads the attempts without bringing one back at once. `jitter` comes from
    /// the caller, so a test can fix it.
    package func halfJitteredDelay(afterAttempt attempt: Int, jitter: Double) -> Double {
        let half = ceiling(afterAttempt: attempt) / 2
        return half + half * min(max(jitter, 0), 1)
    }
}
