import Foundation
import Logging

/// Hands claimed files to workers, claiming the next batch from the ledger (FOR UPDATE SKIP LOCKED) when
/// its buffer runs dry.
///
/// `@unchecked Sendable`: the ledger connection and the buffer are only touched while `lock` is held, so one
/// thread at a time uses the connection.
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

    package init(ledger: Ledger, sessionID: Int64, batchSize: Int, state: RunState) {
        self.ledger = ledger
        self.sessionID = sessionID
        self.batchSize = batchSize
        self.state = state
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
                let finished = scanFinished  // read before claiming: rows recorded before this are visible
                buffer = try ledger.claimFiles(sessionID: sessionID, limit: batchSize, worker: worker)
                if !buffer.isEmpty { return (buffer.removeFirst(), false) }
                return (nil, finished)
            }
            if let job { return job }
            if done { return nil }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    /// Claimed files no worker started (the run stopped): they go back to `pending`.
    package func drain() -> [UploadJob] {
        lock.withLock {
            defer { buffer.removeAll() }
            return buffer
        }
    }
}
