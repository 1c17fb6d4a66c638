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
}
