import FleetLedger
import Foundation
import Logging

/// Hands claimed files to workers, claiming the next batch from the ledger (FOR UPDATE SKIP LOCKED) when
/// its buffer runs dry.
///
/// An upload claims the session's `pending` files while the scan is still recording them; a process that joined
/// the session (`upload --join`) does the same, learning from the ledger when the scan is over; a retry claims
/// from each of its statuses in turn (never tried first, then failed). Claims move forward by id within each
/// status, so a file that fails again in this run is not claimed twice.
///
/// `@unchecked Sendable`: the buffer and the cursors are only touched while `lock` is held; the connection is
/// the run's `SharedLedger`, taken after `lock`.
package final class JobSource: @unchecked Sendable {
    private let lock = NSLock()
    private let ledger: SharedLedger
    private var buffer: [UploadJob] = []
    private var released = false
    private var scanFinished = false
    private let sessionID: Int64
    private let worker: String
    private let batchSize: Int
    private let state: RunState
    private let statuses: [String]
    private let maxAttempts: Int?
    /// Index into `statuses` of the one being claimed, and the last id claimed from it.
    private var statusIndex = 0
    private var afterID: Int64 = 0
    /// Joined a session another process scans: its phase comes from the ledger.
    private let joined: Bool
    /// For the opener of a session: whether other processes still hold some of its files (files they put back
    /// when they stop become claimable again, so the opener keeps its workers until they are done).
    private let othersAtWork: ((Ledger) throws -> Bool)?
    /// While waiting on the ledger (a scan in another process, other processes' files), ask it at most this often.
    private var quietUntil: ContinuousClock.Instant?

    /// A source for an upload: the session's pending files, as the scan records them.
    ///
    /// - Parameter othersAtWork: For a session other processes may join: asked, once this process finds
    ///   nothing left to claim, whether others still hold files; the source ends when they do not.
    package convenience init(
        ledger: SharedLedger,
        sessionID: Int64,
        batchSize: Int,
        state: RunState,
        othersAtWork: ((Ledger) throws -> Bool)? = nil
    ) {
        self.init(
            ledger: ledger,
            sessionID: sessionID,
            batchSize: batchSize,
            state: state,
            statuses: ["pending"],
            othersAtWork: othersAtWork
        )
    }

    /// A source for a process that joined a session another process opened: its pending files, until the
    /// opener's scan is over and none is left, or the session ends.
    ///
    /// - Parameter afterScan: Claim only once the scan is over (the opener compares with the bucket first).
    package static func joining(
        ledger: SharedLedger,
        sessionID: Int64,
        batchSize: Int,
        state: RunState,
        afterScan: Bool
    ) -> JobSource {
        let source = JobSource(
            ledger: ledger,
            sessionID: sessionID,
            batchSize: batchSize,
            state: state,
            statuses: ["pending"],
            joined: true
        )
        if !afterScan { source.release() }
        return source
    }

    /// A source for a retry: files in `statuses` (in that order) with fewer than `maxAttempts` attempts. Every
    /// file is already recorded, so the source starts released with the scan finished.
    package static func retry(
        ledger: SharedLedger,
        sessionID: Int64,
        batchSize: Int,
        state: RunState,
        statuses: [String],
        maxAttempts: Int?
    ) -> JobSource {
        let source = JobSource(
            ledger: ledger,
            sessionID: sessionID,
            batchSize: batchSize,
            state: state,
            statuses: statuses,
            maxAttempts: maxAttempts
        )
        source.release()
        source.finishScan()
        return source
    }

    private init(
        ledger: SharedLedger,
        sessionID: Int64,
        batchSize: Int,
        state: RunState,
        statuses: [String],
        maxAttempts: Int? = nil,
        joined: Bool = false,
        othersAtWork: ((Ledger) throws -> Bool)? = nil
    ) {
        self.ledger = ledger
        self.sessionID = sessionID
        self.batchSize = batchSize
        self.state = state
        self.statuses = statuses
        self.maxAttempts = maxAttempts
        self.joined = joined
        self.othersAtWork = othersAtWork
        worker = ClaimHolder.thisProcess
    }

    /// Lets workers start claiming (after bucket comparison, when configured).
    package func release() { lock.withLock { released = true } }

    /// No more files will be recorded: an empty claim now means the end.
    package func finishScan() {
        lock.withLock {
            scanFinished = true
            quietUntil = nil
        }
    }

    /// This process committed another batch of the scan: claim again now instead of at the next poll.
    package func filesRecorded() { lock.withLock { quietUntil = nil } }

    /// The next file to upload, or `nil` when there is none left or the run is stopping.
    ///
    /// - Throws: `LedgerError` when claiming fails.
    package func next() throws -> UploadJob? {
        while true {
            switch try claim() {
            case .job(let job): return job
            case .done: return nil
            case .later: Thread.sleep(forTimeInterval: 0.02)
            }
        }
    }

    /// What one look for the next file found.
    package enum Claim: Sendable {
        case job(UploadJob)
        /// Nothing to claim yet (the scan has not recorded more, other processes hold files): look again soon.
        case later
        /// Nothing left, or the run is stopping.
        case done
    }

    /// A file claimed earlier that no worker has started, without asking the ledger; `nil` when there is none.
    package func buffered() -> UploadJob? {
        if state.shouldStop { return nil }
        return lock.withLock { buffer.isEmpty ? nil : buffer.removeFirst() }
    }

    /// The next file, claiming a batch from the ledger when none is left from the last one.
    ///
    /// - Throws: `LedgerError` when claiming fails.
    package func claim() throws -> Claim {
        if state.shouldStop { return .done }
        let (job, done): (UploadJob?, Bool) = try lock.withLock {
            if !buffer.isEmpty { return (buffer.removeFirst(), false) }
            if let quietUntil, ContinuousClock.now < quietUntil { return (nil, false) }
            quietUntil = nil
            if joined {
                switch try ledger.use({ ledger in try ledger.reconnecting { try ledger.sessionPhase(sessionID) } }) {
                case .closed: return (nil, true)
                case .scanned: (released, scanFinished) = (true, true)
                case .scanning: break
                }
            }
            guard released else {
                quietUntil = .now + .milliseconds(200)
                return (nil, false)
            }
            while statusIndex < statuses.count {
                let finished = scanFinished  // read before claiming: rows recorded before this are visible
                // A claim that fails with the connection is rolled back: after a reconnect it runs again.
                buffer = try ledger.use { ledger in
                    try ledger.reconnecting {
                        try ledger.claimFiles(
                            sessionID: sessionID,
                            limit: batchSize,
                            worker: worker,
                            status: statuses[statusIndex],
                            afterID: afterID,
                            maxAttempts: maxAttempts
                        )
                    }
                }
                if let last = buffer.last {
                    afterID = last.id
                    return (buffer.removeFirst(), false)
                }
                guard finished else {
                    // Nothing claimable yet: ask again when this process records the next batch
                    // (`filesRecorded`), or after a pause for batches other processes record, never in a
                    // tight loop of one round trip per idle worker.
                    quietUntil = .now + (joined ? .milliseconds(200) : .seconds(1))
                    return (nil, false)
                }
                if statuses == ["pending"], afterID > 0 {
                    // Claimed rows leave `pending`, so starting over takes only files put back by others.
                    afterID = 0
                    continue
                }
                if let othersAtWork, try ledger.use(othersAtWork) {
                    quietUntil = .now + .milliseconds(500)
                    return (nil, false)
                }
                statusIndex += 1
                afterID = 0
            }
            return (nil, true)
        }
        if let job { return .job(job) }
        return done ? .done : .later
    }

    /// Claimed files no worker started (the run stopped): they go back to the status they were claimed from.
    package func drain() -> [UploadJob] {
        lock.withLock {
            defer { buffer.removeAll() }
            return buffer
        }
    }
}
