import FleetCore
import Foundation
import Synchronization

/// A clock a test sets and moves, for the agent's time-of-day decisions (schedule, operational hours) and its
/// stability waits.
package final class ManualClock: AgentClock {
    private let current: Mutex<Date>

    package init(_ start: Date) { current = Mutex(start) }

    package func now() -> Date { current.withLock { $0 } }
    package func set(_ date: Date) { current.withLock { $0 = date } }
    package func advance(_ seconds: Double) { current.withLock { $0 = $0.addingTimeInterval(seconds) } }
}

/// Waits until `condition` holds, checking every 100 ms; false after `seconds`.
package func eventually(within seconds: Double = 30, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        Thread.sleep(forTimeInterval: 0.1)
    }
    return try condition()
}
