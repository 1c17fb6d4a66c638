import FleetSystem
import Foundation
import Synchronization

/// The time requests are signed with: the local clock, corrected by the server's once S3 has said the local
/// clock is too far off.
///
/// S3 refuses a request signed more than 15 minutes away from its own time (`RequestTimeTooSkewed`). A
/// device whose clock drifted (no NTP, a dead RTC battery) would otherwise fail every request until someone
/// sets the clock; with the offset learned from the refusal's `Date` header the next request is signed with
/// the server's time. One clock is shared by every client of the process (`process`), so all worker threads
/// learn the offset from the first refusal.
package final class SigningClock: Sendable {
    /// The process's clock, which every `S3Context` uses unless it is given another.
    package static let process = SigningClock()

    private let base: @Sendable () -> Date
    private let offset = Mutex<TimeInterval>(0)

    /// - Parameter base: The local clock; tests pass one that is deliberately off.
    package init(base: @escaping @Sendable () -> Date = { Date() }) {
        self.base = base
    }

    /// The local time, uncorrected.
    package var localNow: Date { base() }

    /// The time to sign with: the local time plus the offset learned from the server (0 until one is learned).
    package var now: Date { base().addingTimeInterval(offsetSeconds) }

    /// Seconds the server's clock is ahead of the local one (negative when it is behind), as last learned.
    package var offsetSeconds: TimeInterval { offset.withLock { $0 } }

    /// Adopts the server's time: from now on requests are signed with `serverTime`'s offset from the local
    /// clock.
    ///
    /// - Parameters:
    ///   - serverTime: The server's time, from its `Date` header (whole seconds).
    ///   - localTime: The local time the answer arrived at.
    /// - Returns: The offset adopted, in seconds.
    @discardableResult
    package func adopt(serverTime: Date, at localTime: Date) -> TimeInterval {
        let learned = serverTime.timeIntervalSince(localTime)
        offset.withLock { $0 = learned }
        return learned
    }

    /// How far off the local clock is, for people: `the clock is 20 minutes off (behind the server's)`.
    package static func describe(offsetSeconds: TimeInterval) -> String {
        let minutes = Int((abs(offsetSeconds) / 60).rounded())
        let amount = minutes == 1 ? "1 minute" : "\(minutes) minutes"
        return "the clock is \(amount) off (\(offsetSeconds > 0 ? "behind" : "ahead of") the server's)"
    }
}
