import FleetLedger
import FleetSystem
import Foundation
import Logging

/// Where a found file would go and whether the ledger confirms it is there.
struct DeletionVerdict {
    var placement: Placement?
    var uploaded: Bool
}

/// Files found in the sources, kept compactly for sorting: every path's bytes in one buffer, and a small
/// fixed-size entry per file (tens of thousands of files on a vehicle take a few MiB).
struct FoundFiles {
    struct Entry {
        var pathStart: Int
        var pathCount: Int32
        /// Index into the configured sources.
        var source: Int32
        var size: Int64
        var mtime: Timestamp
    }

    private(set) var bytes: [UInt8] = []
    var entries: [Entry] = []

    mutating func append(path: [UInt8], source: Int, size: Int64, mtime: Timestamp) {
        entries.append(
            Entry(pathStart: bytes.count, pathCount: Int32(path.count), source: Int32(source), size: size, mtime: mtime)
        )
        bytes.append(contentsOf: path)
    }

    func path(_ entry: Entry) -> [UInt8] { Array(bytes[entry.pathStart..<entry.pathStart + Int(entry.pathCount)]) }

    /// Oldest mtime first; the order found breaks ties.
    mutating func sortOldestFirst() {
        entries.sort { $0.mtime != $1.mtime ? $0.mtime < $1.mtime : $0.pathStart < $1.pathStart }
    }
}

/// One policy run's deletions: queues files, deletes each batch through `LocalDeleter` (the ledger records a
/// batch before any file in it goes), and counts and logs what happened.
struct DeletionSweep {
    let deleter: LocalDeleter
    let reason: String
    let logger: Logger
    /// How a deletion of a file never uploaded is logged.
    var unuploadedLevel: Logger.Level = .error
    var report: DeletionReport
    /// Files waiting for the next `flush`, with whether the ledger confirmed their upload.
    private(set) var queued: [(candidate: LocalDeleter.Candidate, uploaded: Bool)] = []
    private(set) var queuedBytes: Int64 = 0
    var queuedFiles: Int { queued.count }

    init(policies: DeletionPolicies, reason: String, logger: Logger, unuploadedLevel: Logger.Level = .error) {
        let resolved = policies.config.resolved
        deleter = LocalDeleter(
            ledger: policies.ledger,
            projectID: policies.projectID,
            deviceID: policies.deviceID,
            logger: logger,
            deletableRoots: resolved.deletableSourceRoots,
            emptyDirectoriesUnder: resolved.upload.removeEmptyDirectories
                ? Set(resolved.sources.map { Array($0.path.utf8).trailingSlashRemoved }) : nil
        )
        self.reason = reason
        self.logger = logger
        self.unuploadedLevel = unuploadedLevel
        report = DeletionReport(reason: reason)
    }

    /// Queues one found file the ledger was asked about.
    mutating func queue(_ found: FoundFiles, _ index: Int, roots: [[UInt8]], verdict: DeletionVerdict) {
        let entry = found.entries[index]
        let path = found.path(entry)
        queue(
            path: path,
            displayPath: PathText.escaped(path),
            root: roots[Int(entry.source)],
            size: entry.size,
            mtime: entry.mtime,
            uploaded: verdict.uploaded,
            bucket: verdict.placement?.bucket ?? "",
            key: verdict.placement?.key ?? "",
            sessionID: nil
        )
    }

    /// Queues one file, to be deleted if it is still the regular file of `size` and `mtime` (and `device` and
    /// `inode` when the upload recorded them).
    ///
    /// - Parameter uploaded: whether the ledger confirmed its upload (only then does a changed file count in
    ///   `changedSinceUpload`).
    mutating func queue(
        path: [UInt8],
        displayPath: String,
        root: [UInt8],
        size: Int64,
        mtime: Timestamp,
        device: UInt64? = nil,
        inode: UInt64? = nil,
        uploaded: Bool,
        bucket: String,
        key: String,
        sessionID: Int64?
    ) {
        let candidate = LocalDeleter.Candidate(
            path: path,
            displayPath: displayPath,
            root: root,
            expected: FileIdentity(size: size, mtime: mtime, device: device, inode: inode),
            wasUploaded: uploaded,
            sessionID: sessionID,
            bucket: bucket,
            key: key
        )
        queued.append((candidate, uploaded))
        queuedBytes += size
    }

    /// Deletes the queued files, counts and logs each outcome, and empties the queue.
    ///
    /// - Returns: each queued file's outcome, in queue order.
    /// - Throws: the ledger's error; when it could not record the batch, nothing in it was deleted.
    @discardableResult
    mutating func flush() throws -> [LocalRemoval.Outcome] {
        guard !queued.isEmpty else { return [] }
        let batch = queued
        queued.removeAll(keepingCapacity: true)
        queuedBytes = 0
        let outcomes: [LocalRemoval.Outcome]
        do {
            outcomes = try deleter.delete(batch.map(\.candidate), reason: reason)
        } catch let error as LocalDeleter.UnconfirmedDeletions {
            count(batch, error.outcomes)
            throw error
        }
        count(batch, outcomes)
        return outcomes
    }

    private mutating func count(
        _ batch: [(candidate: LocalDeleter.Candidate, uploaded: Bool)],
        _ outcomes: [LocalRemoval.Outcome]
    ) {
        for ((candidate, uploaded), outcome) in zip(batch, outcomes) {
            let record = candidate.record
            let metadata: Logger.Metadata = ["file.path": "\(record.displayPath)"]
            switch outcome {
            case .removed:
                report.deletedFiles += 1
                report.deletedBytes += record.size
                if uploaded {
                    logger.debug("deleted an uploaded file", metadata: metadata)
                } else {
                    report.deletedUnuploaded += 1
                    logger.log(level: unuploadedLevel, "deleting a file that was never uploaded", metadata: metadata)
                }
            case .vanished:
                logger.debug("file already gone", metadata: metadata)
            case .changed:
                if uploaded { report.changedSinceUpload += 1 }
                logger.log(
                    level: uploaded ? .notice : .debug,
                    "not deleting a file that changed since it was examined",
                    metadata: metadata
                )
            case .inUse:
                logger.info("not deleting a file another process has open; next time", metadata: metadata)
            case .notRegularFile, .linkOnPath:
                if uploaded { report.changedSinceUpload += 1 }
                logger.warning("not deleting: \(outcome.reason)", metadata: metadata)
            case .rootUnavailable:
                logger.warning("source directory cannot be opened; not deleting in it", metadata: metadata)
            case .failed(let reason):
                logger.warning("cannot delete a file: \(reason)", metadata: metadata)
            }
        }
    }
}
