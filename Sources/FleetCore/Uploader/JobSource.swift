import Foundation
import Logging

/// Hands claimed files to workers, claiming the next batch from the ledger (FOR UPDATE SKIP LOCKED) when
/// its buffer runs dry.
///
/// An upload claims the session's `pending` files while the scan is still recording them; a retry claims
/// from each of its statuses in turn (never tried first, then failed). Claims move forward by id within each
/// status, so a file that fails again in this run is not claimed twice.
///
/// `@unchecked Sendable`: the ledger connection, the buffer and the cursors are only touched while `lock` is
/// held, so one thread at a time uses the connection.
package final class JobSource: @unchecked Sendable {
    private let lock = NSLock()
    private let ledger: Ledger
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

    /// A source for an upload: the session's pending files, as the scan records them.
    package convenience init(ledger: Ledger, sessionID: Int64, batchSize: Int, state: RunState) {
        self.init(ledger: ledger, sessionID: sessionID, batchSize: batchSize, state: state, statuses: ["pending"])
    }

    /// A source for a retry: files in `statuses` (in that order) with fewer than `maxAttempts` attempts. Every
    /// file is already recorded, so the source starts released with the scan finished.
    package static func retry(
        ledger: Ledger,
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
        ledger: Ledger,
        sessionID: Int64,
        batchSize: Int,
        state: RunState,
        statuses: [String],
        maxAttempts: Int? = nil
    ) {
        self.ledger = ledger
        self.sessionID = sessionID
        self.batchSize = batchSize
        self.state = state
        self.statuses = statuses
        self.maxAttempts = maxAttempts
        worker = "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier)"
    }

    /// Lets workers start claiming (after bucket comparison, when configured).
    package func release() { lock.withLock { released = true } }

    /// No more files will be recorded: an empty claim now means the end.
    package func finishScan() { lock.withLock { scanFinished = true } }

    /// The next file to upload, or `nil` when there is none left or the run is stopping.
    ///
    /// - Throws: `LedgerError` when claiming fails.
    package func next() throws -> UploadJob? {
        while true {
            if state.shouldStop { return nil }
            let (job, done): (UploadJob?, Bool) = try lock.withLock {
                if !buffer.isEmpty { return (buffer.removeFirst(), false) }
                guard released else { return (nil, false) }
                while statusIndex < statuses.count {
                    let finished = scanFinished  // read before claiming: rows recorded before this are visible
                    buffer = try ledger.claimFiles(
                        sessionID: sessionID,
                        limit: batchSize,
                        worker: worker,
                        status: statuses[statusIndex],
                        afterID: afterID,
                        maxAttempts: maxAttempts
                    )
                    if let last = buffer.last {
                        afterID = last.id
                        return (buffer.removeFirst(), false)
                    }
                    guard finished else { return (nil, false) }
                    statusIndex += 1
                    afterID = 0
                }
                return (nil, true)
            }
            if let job { return job }
            if done { return nil }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    /// Claimed files no worker started (the run stopped): they go back to the status they were claimed from.
    package func drain() -> [UploadJob] {
        lock.withLock {
            defer { buffer.removeAll() }
            return buffer
        }
    }
}
