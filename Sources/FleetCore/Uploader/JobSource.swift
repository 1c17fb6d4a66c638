import FleetLedger
import Foundation
import Logging

/// Hands claimed files to workers, claiming batches from the ledger ahead of them (`Ledger.claimRange` for an
/// upload, `Ledger.claimFiles` for a retry).
///
/// An upload claims the session's `pending` files while the scan is still recording them; a process that joined
/// the session (`upload --join`) does the same, learning from the ledger when the scan is over; a retry claims
/// from each of its statuses in turn (never tried first, then failed). Claims move forward by id within each
/// status, so a file that fails again in this run is not claimed twice.
///
/// Claims run ahead of the workers: once fewer than one claim's worth of files wait in the buffer, the next
/// batch is claimed on a queue of its own, so that a worker taking a file finds one waiting instead of
/// waiting a round trip to the ledger (and for the result writer's batch ahead of it on the shared connection).
/// A claim is at least `batchSize` files, at least as many as the run keeps in flight (`keepAhead`), and at least
/// as many as the workers took in the last second (`ClaimSize`), so a far ledger costs about one claim a second.
///
/// `@unchecked Sendable`: the buffer, the flags and the claim size are only touched while `lock` is held, which
/// is never held across a round trip to the ledger (the transfer loops take files from the buffer without
/// waiting for a claim); the cursors are only touched while `claiming` is held, taken before `lock` and before the run's
/// `SharedLedger`.
package final class JobSource: @unchecked Sendable {
    private let lock = NSLock()
    /// One claim at a time, ahead or on demand.
    private let claiming = NSLock()
    private let ahead = DispatchQueue(label: "fleet.upload.claims")
    private let ledger: SharedLedger
    /// Claimed files no worker has taken yet.
    private var buffer = ClaimBuffer<UploadJob>()
    /// A claim ahead is queued or running.
    private var claimingAhead = false
    /// A claim found nothing left to claim (and no process is at work on the session): the end.
    private var exhausted = false
    private var released = false
    private var scanFinished = false
    private let sessionID: Int64
    private let worker: String
    private var size: ClaimSize
    private let state: RunState
    private let statuses: [String]
    private let maxAttempts: Int?
    /// An upload's source (not a retry's): its claims are ranges of ids (`Ledger.claimRange`), no file row written.
    private let ranged: Bool
    /// Files the run keeps in flight now (the governor's level): claims are at least that large.
    private var inFlight: @Sendable () -> Int = { 0 }
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
            ranged: true,
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
            ranged: true,
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
        ranged: Bool = false,
        joined: Bool = false,
        othersAtWork: ((Ledger) throws -> Bool)? = nil
    ) {
        self.ledger = ledger
        self.sessionID = sessionID
        size = ClaimSize(batchSize: batchSize, now: .now)
        self.state = state
        self.statuses = statuses
        self.maxAttempts = maxAttempts
        self.ranged = ranged
        self.joined = joined
        self.othersAtWork = othersAtWork
        worker = ClaimHolder.thisProcess
    }

    /// Claims are sized to, and run ahead of, the files the run keeps in flight, as `level` says.
    package func keepAhead(of level: @escaping @Sendable () -> Int) { lock.withLock { inFlight = level } }

    /// Lets workers start claiming (after bucket comparison, when configured).
    package func release() {
        lock.withLock { released = true }
        claimAhead()
    }

    /// No more files will be recorded: an empty claim now means the end.
    package func finishScan() {
        lock.withLock {
            scanFinished = true
            quietUntil = nil
        }
    }

    /// This process committed another batch of the scan: claim again now instead of at the next poll.
    package func filesRecorded() {
        lock.withLock { quietUntil = nil }
        claimAhead()
    }

    /// What one look for the next file found.
    package enum Claim: Sendable {
        case job(UploadJob)
        /// Nothing to claim yet (the scan has not recorded more, other processes hold files): look again soon.
        case later
        /// Nothing left, or the run is stopping.
        case done
    }

    /// A file claimed earlier that no worker has started, without waiting for the ledger; `nil` when there is
    /// none. Taking one may start the next claim ahead.
    package func buffered() -> UploadJob? {
        if state.shouldStop { return nil }
        let job = lock.withLock { take() }
        claimAhead()
        return job
    }

    /// The next file, claiming a batch from the ledger when none is waiting (and none is on its way).
    ///
    /// - Throws: `LedgerError` when claiming fails.
    package func claim() throws -> Claim {
        if state.shouldStop { return .done }
        if let job = lock.withLock({ take() }) { return .job(job) }
        let found = try claiming.withLock { () throws -> Bool? in
            // A claim ahead may have filled the buffer while this one waited for its turn.
            if lock.withLock({ buffer.waiting > 0 }) { return true }
            return try claimBatch()
        }
        if let job = lock.withLock({ take() }) {
            claimAhead()
            return .job(job)
        }
        return found == nil ? .done : .later
    }

    /// The first file of the buffer; the caller holds `lock`.
    private func take() -> UploadJob? {
        let job = buffer.take()
        if job != nil { size.taken(at: .now) }
        return job
    }

    /// Starts a claim on the source's own queue when fewer than one claim's worth of files wait and no claim is
    /// on its way, unless the source is not released yet, is waiting for the ledger, or has nothing left.
    private func claimAhead() {
        let start = lock.withLock { () -> Bool in
            guard released, !exhausted, !claimingAhead, !state.shouldStop else { return false }
            if let quietUntil, ContinuousClock.now < quietUntil { return false }
            guard buffer.waiting < claimSize else { return false }
            claimingAhead = true
            return true
        }
        guard start else { return }
        ahead.async { [self] in
            defer { lock.withLock { claimingAhead = false } }
            do {
                // Until a claim's worth waits, or the ledger has nothing more to give now.
                while try claiming.withLock({ try claimBatch() }) == true,
                    lock.withLock({ buffer.waiting < claimSize })
                {}
            } catch {
                // The workers' own claim meets the same error when the buffer runs dry, and stops the run.
            }
        }
    }

    /// Files one claim asks for; the caller holds `lock`.
    private var claimSize: Int { size.files(inFlight: inFlight()) }

    /// Claims the next batch into the buffer; the caller holds `claiming`.
    ///
    /// - Returns: whether files were claimed (`false`: none yet, look again later), or `nil` when nothing is
    ///   left or the run is stopping.
    /// - Throws: `LedgerError` when claiming fails.
    private func claimBatch() throws -> Bool? {
        if state.shouldStop { return nil }
        let (wasReleased, quiet, limit) = lock.withLock { (released, quietUntil, claimSize) }
        if exhaustedNow { return nil }
        if let quiet, ContinuousClock.now < quiet { return false }
        if joined {
            switch try ledger.use({ ledger in try ledger.reconnecting { try ledger.sessionPhase(sessionID) } }) {
            case .closed:
                lock.withLock { exhausted = true }
                return nil
            case .scanned:
                lock.withLock { (released, scanFinished) = (true, true) }
            case .scanning: break
            }
        }
        guard wasReleased || lock.withLock({ released }) else {
            holdOff(for: .milliseconds(200))
            return false
        }
        while statusIndex < statuses.count {
            let finished = lock.withLock { scanFinished }  // read before claiming: rows recorded before are visible
            // A claim that fails with the connection is rolled back: after a reconnect it runs again.
            let claimed = try ledger.use { ledger in
                try ledger.reconnecting {
                    ranged
                        ? try ledger.claimRange(sessionID: sessionID, limit: limit, worker: worker, afterID: afterID)
                        : try ledger.claimFiles(
                            sessionID: sessionID,
                            limit: limit,
                            worker: worker,
                            status: statuses[statusIndex],
                            afterID: afterID,
                            maxAttempts: maxAttempts
                        )
                }
            }
            if let last = claimed.last {
                afterID = last.id
                lock.withLock {
                    quietUntil = nil
                    buffer.append(contentsOf: claimed)
                }
                return true
            }
            guard finished else {
                // Nothing claimable yet: ask again when this process records the next batch (`filesRecorded`),
                // or after a pause for batches other processes record, never in a tight loop of one round trip
                // per idle worker.
                holdOff(for: joined ? .milliseconds(200) : .seconds(1))
                return false
            }
            if statuses == ["pending"], afterID > 0 {
                // A claim never takes a held file, so starting over takes only files put back by others.
                afterID = 0
                continue
            }
            if let othersAtWork, try ledger.use(othersAtWork) {
                holdOff(for: .milliseconds(500))
                return false
            }
            statusIndex += 1
            afterID = 0
        }
        lock.withLock { exhausted = true }
        return nil
    }

    private var exhaustedNow: Bool { lock.withLock { exhausted } }

    private func holdOff(for pause: Duration) { lock.withLock { quietUntil = .now + pause } }

    /// Claimed files no worker started (the run stopped): they go back to the status they were claimed from.
    /// A claim ahead still on its way is waited for, so that its files are put back too.
    package func drain() -> [UploadJob] {
        claiming.withLock {
            lock.withLock {
                exhausted = true
                return buffer.drain()
            }
        }
    }
}
