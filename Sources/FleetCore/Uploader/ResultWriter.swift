import FleetLedger
import FleetSystem
import Foundation
import Logging
import Synchronization

/// Collects outcomes from the workers and writes them to the ledger in batches on a thread of its own: one
/// transaction per batch, never one round trip per file.
///
/// `@unchecked Sendable`: the ledger connection is the run's `SharedLedger`, used under its lock; the shared
/// buffer is behind a `Mutex`.
package final class ResultWriter: @unchecked Sendable {
    private let ledger: SharedLedger
    private let sessionID: Int64
    private let projectID: Int64
    private let deviceID: Int64
    private let deleteAfterUpload: Bool
    private let removeEmptyDirectories: Bool
    /// Directories never removed: the sources themselves.
    private let sourceRoots: Set<[UInt8]>
    /// The sources whose files may be deleted (`allow_deletion`).
    private let deletableRoots: Set<[UInt8]>
    private let logger: Logger
    private let pending = Mutex<[UploadOutcome]>([])
    private let finished = Mutex(false)
    private let failure = Mutex<(any Error)?>(nil)
    /// Rows whose upload finished but could not be recorded.
    private let unrecorded = Mutex<[Int64]>([])
    private let done = DispatchSemaphore(value: 0)
    /// A batch is written when `largestBatch` outcomes wait; when `smallBatch` wait and `interval` has passed
    /// since the last write; or when anything waits and `longestWait` has passed. The ledger's round trips then
    /// grow with the files (one batch per hundred or more) and only slowly with the time a trickle of files takes,
    /// and a run writes about once a second up to 1,000 files a second (in batches of 1,000 above that): the
    /// connection it shares with the claims spends a round trip per batch, which with the ledger 100 ms away and a
    /// batch per 500 files took a third of that connection's time at 1,500 files a second; and each batch costs the
    /// server a few ms whatever its size (the counting trigger; planning, on a connection's first batch), a few µs
    /// per file at a batch per 500 files.
    private let largestBatch = 1000
    private let smallBatch = 100
    private let interval = 1.0
    private let longestWait = 2.0
    /// The session's heartbeat and this process's (as one at work on it) are renewed this often, even while
    /// a long multipart upload records nothing: a process silent for a minute counts as gone.
    private let heartbeatInterval: Duration = .seconds(5)
    package let progress: UploadProgress

    package init(
        ledger: SharedLedger,
        sessionID: Int64,
        projectID: Int64,
        deviceID: Int64,
        config: FleetConfig,
        progress: UploadProgress,
        logger: Logger
    ) {
        self.ledger = ledger
        self.sessionID = sessionID
        self.projectID = projectID
        self.deviceID = deviceID
        deleteAfterUpload = config.resolved.upload.deleteAfterUpload
        removeEmptyDirectories = config.resolved.upload.removeEmptyDirectories
        sourceRoots = Set(config.resolved.sources.map { Array($0.path.utf8).trailingSlashRemoved })
        deletableRoots = config.resolved.deletableSourceRoots
        self.progress = progress
        self.logger = logger
    }

    /// The first error writing to the ledger, if any (the run stops on it).
    package var error: (any Error)? { failure.withLock { $0 } }

    /// Rows whose file is in the bucket but whose result the ledger refused: they must stay claimed, so that
    /// the next run looks them up in the bucket instead of sending them again.
    package var uploadedButUnrecorded: [Int64] { unrecorded.withLock { $0 } }

    package func start() {
        Thread.detachNewThread { [self] in
            run()
            done.signal()
        }
    }

    package func submit(_ outcome: UploadOutcome) { pending.withLock { $0.append(outcome) } }

    /// Writes what is left and stops the writer thread.
    package func finish() throws {
        finished.withLock { $0 = true }
        done.wait()
        if let error { throw error }
    }

    /// Writes a batch once enough outcomes wait for the time since the last write (see `largestBatch`): writing
    /// whatever arrived during the previous write made batches of a few dozen files, and each batch costs a
    /// round trip on the connection the claims share and a transaction on the server.
    private func run() {
        var lastWrite = ContinuousClock.now
        var lastHeartbeat = ContinuousClock.now
        while true {
            if lastHeartbeat.duration(to: .now) >= heartbeatInterval {
                lastHeartbeat = .now
                do {
                    try ledger.use { try $0.workerHeartbeat(sessionID: sessionID) }
                } catch {
                    logger.debug("heartbeat not recorded", metadata: ["error": "\(error)"])
                }
            }
            let stop = finished.withLock { $0 }
            let waited = lastWrite.duration(to: .now)
            let batch: [UploadOutcome] = pending.withLock { outcomes in
                let due =
                    stop || waited >= .seconds(longestWait)
                    || (waited >= .seconds(interval) && outcomes.count >= smallBatch)
                let count = due || outcomes.count >= largestBatch ? min(outcomes.count, largestBatch) : 0
                defer { outcomes.removeFirst(count) }
                return Array(outcomes.prefix(count))
            }
            if !batch.isEmpty {
                write(batch)
                lastWrite = .now
            } else if stop {
                return
            } else {
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
    }

    /// Writes one batch, retrying a few times when the database hiccups, and connecting again (for up to a
    /// minute) when the connection is gone: a restarted server does not lose the run's results.
    private func write(_ batch: [UploadOutcome]) {
        var attempt = 0
        while true {
            do {
                try ledger.use { ledger in
                    try ledger.reconnecting {
                        try ledger.recordOutcomes(batch, sessionID: sessionID)
                    }
                }
                break
            } catch {
                attempt += 1
                guard attempt < 5 else {
                    logger.error("cannot record results in the ledger", metadata: ["error": "\(error)"])
                    failure.withLock { $0 = $0 ?? error }
                    unrecorded.withLock { $0 += batch.filter { $0.status == .uploaded }.map(\.job.id) }
                    return
                }
                logger.notice("recording results failed; retrying", metadata: ["error": "\(error)"])
                Thread.sleep(forTimeInterval: 0.5 * Double(attempt))
            }
        }
        if deleteAfterUpload { deleteLocalFiles(batch.filter { $0.status == .uploaded && $0.sha256 != nil }) }
    }

    /// Deletes local files whose upload the ledger now records with a verified checksum, the one way every
    /// deletion goes (`LocalDeleter`): recorded first, and only while the file is still the one uploaded (size,
    /// mtime, device and inode), reached from its source directory without following a symbolic link. Files of a
    /// source that keeps its files (`allow_deletion` false) are left alone.
    private func deleteLocalFiles(_ outcomes: [UploadOutcome]) {
        let roots = Array(sourceRoots)
        var candidates: [LocalDeleter.Candidate] = []
        for outcome in outcomes {
            guard let root = LocalRemoval.root(containing: outcome.job.path, among: roots) else {
                logger.warning(
                    "not deleting a file outside the source directories",
                    metadata: ["file.path": "\(outcome.job.displayPath)"]
                )
                continue
            }
            guard deletableRoots.contains(root) else { continue }  // its source keeps its files
            candidates.append(
                LocalDeleter.Candidate(
                    path: outcome.job.path,
                    displayPath: outcome.job.displayPath,
                    root: root,
                    expected: FileIdentity(
                        size: outcome.size,
                        mtime: outcome.mtime,
                        device: outcome.device,
                        inode: outcome.inode
                    ),
                    wasUploaded: true,
                    sessionID: sessionID,
                    bucket: outcome.job.bucket,
                    key: outcome.job.key
                )
            )
        }
        let results: [LocalRemoval.Outcome]
        do {
            results = try ledger.use { ledger in
                try LocalDeleter(
                    ledger: ledger,
                    projectID: projectID,
                    deviceID: deviceID,
                    logger: logger,
                    deletableRoots: deletableRoots,
                    emptyDirectoriesUnder: removeEmptyDirectories ? sourceRoots : nil
                ).delete(candidates, reason: "after_upload")
            }
        } catch let error as LocalDeleter.UnconfirmedDeletions {
            results = error.outcomes
        } catch {
            logger.error(
                "not deleting uploaded files: the ledger cannot record their deletion",
                metadata: ["error": "\(error)", "files": "\(candidates.count)"]
            )
            return
        }
        for (candidate, result) in zip(candidates, results) where result != .removed {
            logger.notice(
                "not deleting an uploaded file: \(result.reason)",
                metadata: ["file.path": "\(candidate.record.displayPath)"]
            )
        }
    }
}

extension Array where Element == UInt8 {
    var trailingSlashRemoved: [UInt8] {
        var bytes = self
        while bytes.count > 1, bytes.last == UInt8(ascii: "/") { bytes.removeLast() }
        return bytes
    }
}
