import FleetLedger
import FleetSystem
import Foundation
import Logging

/// With `upload.delete_after_upload`: deletes the local copies of the files a session recorded `skipped`
/// because the ledger already stores their object.
///
/// A run killed after uploading a file but before deleting it leaves the file behind; the next run finds its
/// object in the ledger's records and skips it, and deleting only what a run uploads itself would keep such files
/// forever. So, once the session's uploads are done, each file skipped that way is read and hashed: only when
/// its SHA-256 is the checksum S3 verified for the stored object, and its size and mtime are still the recorded
/// ones, is it handed to `LocalDeleter`, the one way files are deleted (recorded first, removed only while it is
/// still that file by device and inode, reached from its source without a link, then confirmed).
package struct SkippedFileDeletion {
    package let ledger: Ledger
    package var sessionID: Int64
    package var projectID: Int64
    package var deviceID: Int64
    /// The source directories: a file outside them is never deleted.
    package var sourceRoots: Set<[UInt8]>
    /// The sources whose files may be deleted (`allow_deletion`): files of the others are not even read.
    package var deletableRoots: Set<[UInt8]>
    /// Also remove the directories a deletion leaves empty (`upload.remove_empty_directories`).
    package var removeEmptyDirectories: Bool
    package var logger: Logger
    /// Files looked up, hashed and deleted per round.
    package var batchSize = 500

    package init(
        ledger: Ledger,
        session: (id: Int64, projectID: Int64, deviceID: Int64),
        config: FleetConfig,
        logger: Logger
    ) {
        self.ledger = ledger
        sessionID = session.id
        projectID = session.projectID
        deviceID = session.deviceID
        sourceRoots = Set(config.resolved.sources.map { Array($0.path.utf8).trailingSlashRemoved })
        deletableRoots = config.resolved.deletableSourceRoots
        removeEmptyDirectories = config.resolved.upload.removeEmptyDirectories
        self.logger = logger
    }

    /// Deletes every such file of the session, batch by batch, until none is left or `state` asks to stop.
    ///
    /// - Returns: how many were deleted, and how many were kept (changed, another content, in use, …).
    /// - Throws: `LedgerError` when the ledger cannot list them or record their deletion (then the batch at hand
    ///   stays on disk; files already deleted are confirmed or left to the next run to settle).
    @discardableResult
    package func run(state: RunState) throws -> (deleted: Int, kept: Int) {
        let deleter = LocalDeleter(
            ledger: ledger,
            projectID: projectID,
            deviceID: deviceID,
            logger: logger,
            deletableRoots: deletableRoots,
            emptyDirectoriesUnder: removeEmptyDirectories ? sourceRoots : nil
        )
        let roots = Array(sourceRoots)
        var afterID: Int64 = 0
        var totals = (deleted: 0, kept: 0)
        while !state.stopRequested {
            let files = try ledger.reconnecting {
                try ledger.storedSkippedFiles(sessionID: sessionID, afterID: afterID, limit: batchSize)
            }
            guard let last = files.last else { break }
            afterID = last.id
            // Reading and hashing a batch takes a while: the session shows it is alive.
            try ledger.reconnecting { try ledger.workerHeartbeat(sessionID: sessionID) }
            var candidates: [LocalDeleter.Candidate] = []
            for file in files {
                if state.stopRequested { break }  // a stop does not wait for the rest of the batch's hashing
                if let root = LocalRemoval.root(containing: file.path, among: roots), !deletableRoots.contains(root) {
                    continue  // its source keeps its files
                }
                switch candidate(file, roots: roots) {
                case .success(let candidate): candidates.append(candidate)
                case .failure(let reason):
                    totals.kept += 1
                    logger.notice(
                        "not deleting a file the ledger stores: \(reason)",
                        metadata: ["file.path": "\(file.displayPath)"]
                    )
                }
            }
            let outcomes: [LocalRemoval.Outcome]
            do {
                outcomes = try deleter.delete(candidates, reason: "after_upload")
            } catch let error as LocalDeleter.UnconfirmedDeletions {
                outcomes = error.outcomes
            }
            for (candidate, outcome) in zip(candidates, outcomes) {
                if outcome == .removed {
                    totals.deleted += 1
                } else {
                    totals.kept += 1
                    logger.notice(
                        "not deleting a file the ledger stores: \(outcome.reason)",
                        metadata: ["file.path": "\(candidate.record.displayPath)"]
                    )
                }
            }
        }
        if totals.deleted > 0 || totals.kept > 0 {
            logger.info(
                "deleted files an earlier run had uploaded",
                metadata: ["files.deleted": "\(totals.deleted)", "files.kept": "\(totals.kept)"]
            )
        }
        return totals
    }

    /// The file as a deletion candidate pinned to the file that was hashed, or why it is kept.
    private func candidate(_ file: StoredSkippedFile, roots: [[UInt8]]) -> Result<LocalDeleter.Candidate, Reason> {
        guard let root = LocalRemoval.root(containing: file.path, among: roots) else {
            return .failure(Reason("it lies outside the source directories"))
        }
        let status: LocalFile.Status
        do {
            let local = try LocalFile(pathBytes: file.path)
            status = try local.status()
            guard FileIdentity(size: file.size, mtime: file.mtime).matches(status.identity) else {
                return .failure(Reason("it changed since the scan"))
            }
            let digest = try local.sha256(offset: 0, length: file.size)
            guard digest.hexString == file.checksum else {
                return .failure(Reason("its SHA-256 is not the stored object's"))
            }
            guard try local.status() == status else { return .failure(Reason("it changed while it was read")) }
        } catch {
            return .failure(Reason("\(error)"))
        }
        return .success(
            LocalDeleter.Candidate(
                path: file.path,
                displayPath: file.displayPath,
                root: root,
                expected: status.identity,
                wasUploaded: true,
                sessionID: nil,
                bucket: file.bucket,
                key: file.key
            )
        )
    }

    /// Why a file stays.
    private struct Reason: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}
