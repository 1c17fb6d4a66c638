import Foundation
import Synchronization

/// Where the agent reads the time: the system clock, or a clock a test moves.
package protocol AgentClock: Sendable {
    func now() -> Date
}

package struct SystemClock: AgentClock {
    package init() {}
    package func now() -> Date { Date() }
}

/// Requests to the running agent, from signal handlers (SIGTERM, SIGINT, SIGHUP) or tests.
package final class AgentControl: Sendable {
    private struct Requests {
        var stop = false
        var reload = false
    }
    private let requests = Mutex(Requests())

    package init() {}

    /// Finish or abandon in-flight uploads and return (SIGTERM, SIGINT).
    package func requestStop() { requests.withLock { $0.stop = true } }
    package var stopRequested: Bool { requests.withLock { $0.stop } }

    /// Read the configuration file again (SIGHUP).
    package func requestReload() { requests.withLock { $0.reload = true } }

    /// Whether a reload was requested since the last call.
    func takeReload() -> Bool {
        requests.withLock { requests in
            defer { requests.reload = false }
            return requests.reload
        }
    }
}
