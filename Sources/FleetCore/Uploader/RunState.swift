import FleetAWS
import Foundation
import Synchronization

/// What every thread of one run shares: whether to stop, and whether the store has been unreachable for too
/// long to keep trying.
package final class RunState: Sendable {
    private struct State {
        var stopRequested = false
        var stopRequestedAt: Date?
        var abandoned = false
        var lastSuccess = Date()
        var lastError: S3Error?
    }
    private let state = Mutex(State())
    /// After this long without one success while errors keep coming, the run gives up.
    package let giveUpAfter: TimeInterval
    /// A stop requested of the parent stops this run too (a retry round within the retry command).
    private let parent: RunState?

    /// After a stop is requested, how long transfers in flight may go on before they are ended
    /// (`upload.stop_timeout_seconds`).
    package let transferGrace: TimeInterval

    package init(
        giveUpAfter: TimeInterval,
        transferGrace: TimeInterval = ResolvedConfig.Upload.defaultStopTimeoutSeconds,
        parent: RunState? = nil
    ) {
        self.giveUpAfter = giveUpAfter
        self.transferGrace = transferGrace
        self.parent = parent
    }

    /// Asks every worker to stop after its current file (SIGINT, SIGTERM); a transfer still going
    /// `transferGrace` seconds later is ended.
    package func requestStop() {
        state.withLock { state in
            state.stopRequested = true
            state.stopRequestedAt = state.stopRequestedAt ?? Date()
        }
    }
    package var stopRequested: Bool { state.withLock { $0.stopRequested } || parent?.stopRequested == true }

    /// A stop was requested and its grace is over: transfers in flight end now (a multipart upload keeps the
    /// parts it sent for the next attempt).
    package var transfersMustEnd: Bool {
        guard let since = stopRequestedAt else { return false }
        return Date().timeIntervalSince(since) >= transferGrace
    }

    /// When a stop was first requested, of this run or its parent.
    private var stopRequestedAt: Date? {
        let own = state.withLock { $0.stopRequestedAt }
        guard let inherited = parent?.stopRequestedAt else { return own }
        return min(own ?? inherited, inherited)
    }
    /// The run gave up on the store; remaining files are recorded failed.
    package var abandoned: Bool { state.withLock { $0.abandoned } }
    package var lastError: S3Error? { state.withLock { $0.lastError } }
    /// Stop claiming: interrupted or abandoned.
    package var shouldStop: Bool { stopRequested || abandoned }

    package func recordSuccess() { state.withLock { $0.lastSuccess = Date() } }

    /// Notes a transient failure; returns true when nothing has succeeded for `giveUpAfter` (the run gives up).
    package func recordTransientFailure(_ error: S3Error) -> Bool {
        state.withLock { state in
            state.lastError = error
            if Date().timeIntervalSince(state.lastSuccess) >= giveUpAfter { state.abandoned = true }
            return state.abandoned
        }
    }

    /// Sleeps up to `seconds`, waking early when the run stops.
    package func pause(_ seconds: Double) {
        let end = Date().addingTimeInterval(seconds)
        while !shouldStop, Date() < end { Thread.sleep(forTimeInterval: min(0.05, max(0, end.timeIntervalSinceNow))) }
    }
}

/// Counters for the progress display and the summary.
package final class UploadProgress: Sendable {
    package struct Snapshot: Sendable {
        /// Files recorded `pending` so far (to upload), and their bytes.
        package var plannedFiles = 0
        package var plannedBytes: Int64 = 0
        package var skippedFiles = 0
        package var uploadedFiles = 0
        package var uploadedBytes: Int64 = 0
        package var failedFiles = 0
        package var scanFinished = false
        package var retries = 0
        /// Files the run keeps in flight now (`upload.workers`, or where `auto` has got to).
        package var inFlightLevel = 0
    }
    private let state = Mutex(Snapshot())
    package let started = Date()

    package init() {}

    package var snapshot: Snapshot { state.withLock { $0 } }
    package func update(_ body: (inout Snapshot) -> Void) { state.withLock { body(&$0) } }
}
