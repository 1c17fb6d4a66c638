import Dispatch
import Foundation

/// Turns SIGINT and SIGTERM (and, for the agent, SIGHUP) into a call on a queue of its own (libdispatch signal sources), so the run can
/// stop cleanly: in-flight files finish, nothing is left half-recorded.
package final class SignalWatcher {
    private let sources: [any DispatchSourceSignal]

    /// Installs the handlers. `handler` gets the signal number; it runs on the watcher's queue and should only
    /// set flags. A second SIGINT while stopping exits at once (130), as an impatient user expects.
    package init(signals: [Int32] = [SIGINT, SIGTERM], handler: @escaping @Sendable (Int32) -> Void) {
        let queue = DispatchQueue(label: "fleet.signals")
        let seen = Counter()
        sources = signals.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler {
                let stopping = number == SIGINT || number == SIGTERM
                if stopping, seen.increment() > 1, number == SIGINT { exit(130) }
                handler(number)
            }
            source.resume()
            return source
        }
    }

    deinit { for source in sources { source.cancel() } }
}

private final class Counter: @unchecked Sendable {
    // Only touched on the watcher's serial queue.
    private var value = 0
    func increment() -> Int {
        value += 1
        return value
    }
}
