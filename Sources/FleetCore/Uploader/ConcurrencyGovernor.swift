import Logging
import Synchronization

/// The number of files one run keeps in flight, shared by its queues: fixed (`upload.workers: N`), or adjusted
/// by `AdaptiveConcurrency` (`auto`) from what every queue reports. It logs the level `auto` settles on and keeps
/// the progress display's count current.
package final class ConcurrencyGovernor: Sendable {
    /// `nil` for a fixed number.
    private let adaptive: Mutex<AdaptiveConcurrency?>
    private let fixed: Int
    private let loggedSettled = Mutex<Int?>(nil)
    private let progress: UploadProgress
    private let logger: Logger

    package init(workers: WorkerCount, progress: UploadProgress, logger: Logger) {
        switch workers {
        case .auto:
            adaptive = Mutex(AdaptiveConcurrency(now: .now))
            fixed = AdaptiveConcurrency.maximumLevel
        case .fixed(let count):
            adaptive = Mutex(nil)
            fixed = count
        }
        self.progress = progress
        self.logger = logger
        let level = self.level
        progress.update { $0.inFlightLevel = level }
    }

    /// The most files the run's queues may hold between them.
    package var capacity: Int { fixed }

    /// The files to keep in flight now.
    package var level: Int { adaptive.withLock { $0?.level } ?? fixed }

    /// The level `auto` settled on (or the fixed number); `nil` while `auto` is still searching.
    package var settledLevel: Int? { adaptive.withLock { $0.map(\.settled) } ?? fixed }

    /// Queue `index`'s share of the level, of `queues` queues (at least one each).
    package func share(of queues: Int, index: Int) -> Int {
        let level = self.level
        return max(1, level / queues + (index < level % queues ? 1 : 0))
    }

    /// A file finished (uploaded, or failed for good).
    package func fileFinished() { tell { $0.fileFinished(at: .now) } }

    /// A request was throttled, timed out or reset.
    package func congestion() { tell { $0.congestion(at: .now) } }

    /// Passes an event to `auto`'s state (nothing for a fixed number) and shows what changed.
    private func tell(_ event: (inout AdaptiveConcurrency) -> Bool) {
        let report = adaptive.withLock { state -> (changed: Bool, level: Int, settled: Int?)? in
            guard var current = state else { return nil }
            defer { state = current }
            return (event(&current), current.level, current.settled)
        }
        guard let (changed, level, settled) = report else { return }
        note(changed ? level : nil, settled: settled)
    }

    /// Shows a new `level` (nil: unchanged), and logs the level settled on when it is new.
    private func note(_ level: Int?, settled: Int?) {
        if let level {
            progress.update { $0.inFlightLevel = level }
            logger.debug("files in flight: \(level)")
        }
        guard let settled else { return }
        let first = loggedSettled.withLock { logged in
            defer { logged = settled }
            return logged != settled
        }
        if first { logger.info("concurrency settled at \(settled) files in flight") }
    }
}
