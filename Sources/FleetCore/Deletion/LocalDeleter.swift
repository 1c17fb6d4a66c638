import FleetLedger
import FleetSystem
import Foundation
import Logging
import Synchronization

/// The one way fleet-upload deletes a local file, for `upload.delete_after_upload` and every agent policy.
///
/// A batch goes in three steps. The ledger records each deletion as intended first; when it cannot, nothing
/// is deleted. Then `LocalRemoval` removes each file only while it is still the regular file expected (size
/// and mtime, device and inode where known), reached from its source directory without following a symbolic
/// link at any depth; a file outside its source directory is never touched. Last, the ledger confirms the
/// files that went and withdraws the intents of those that stayed. An intent left open by a process that died
/// between the steps is settled by `settleLeftovers`: confirmed when the file is gone, withdrawn when it is not.
package struct LocalDeleter {
    /// A file to delete: what to record, the source directory it lies in, and what it must still be.
    package struct Candidate: Sendable {
        package var record: LocalDeletionRecord
        /// The source directory the walk starts from (as configured; it may itself be a link).
        package var root: [UInt8]
        package var expected: FileIdentity

        package init(record: LocalDeletionRecord, root: [UInt8], expected: FileIdentity) {
            self.record = record
            self.root = root
            self.expected = expected
        }
    }

    /// The ledger failed after files were removed: they are gone, and their intents stay open until
    /// `settleLeftovers` confirms them.
    package struct UnconfirmedDeletions: Error, CustomStringConvertible {
        /// What happened to each candidate, in order.
        package var outcomes: [LocalRemoval.Outcome]
        package var underlying: any Error

        package var description: String { "deletions not confirmed in the ledger: \(underlying)" }
    }

    package let ledger: Ledger
    package var projectID: Int64
    package var deviceID: Int64
    package var logger: Logger

    /// Intents this process is between recording and settling: `settleLeftovers` leaves them alone.
    private static let inFlight = Mutex<Set<Int64>>([])

    package init(ledger: Ledger, projectID: Int64, deviceID: Int64, logger: Logger) {
        self.ledger = ledger
        self.projectID = projectID
        self.deviceID = deviceID
        self.logger = logger
    }

    /// Deletes the candidates that are still what they must be, recording every deletion before it happens.
    ///
    /// - Parameters:
    ///   - candidates: Distinct files.
    ///   - reason: `after_upload`, `age` or `emergency`.
    /// - Returns: what happened to each candidate, in order.
    /// - Throws: the ledger's error when it cannot record the intents (then nothing was deleted);
    ///   `UnconfirmedDeletions` when it cannot settle them after the files were removed (logged first, naming
    ///   every file).
    package func delete(_ candidates: [Candidate], reason: String) throws -> [LocalRemoval.Outcome] {
        guard !candidates.isEmpty else { return [] }
        let ids = try ledger.reconnecting {
            try ledger.intendDeletions(
                candidates.map(\.record),
                reason: reason,
                projectID: projectID,
                deviceID: deviceID
            )
        }
        Self.inFlight.withLock { $0.formUnion(ids.values) }
        defer { Self.inFlight.withLock { $0.subtract(ids.values) } }

        var outcomes: [LocalRemoval.Outcome] = []
        var deleted: [Int64] = []
        var kept: [Int64] = []
        for candidate in candidates {
            guard let id = ids[candidate.record.path] else {
                // Not recorded (cannot happen for distinct paths): not deleted either.
                outcomes.append(.failed("its deletion was not recorded"))
                continue
            }
            let outcome = LocalRemoval.removeRegularFile(
                candidate.record.path,
                root: candidate.root,
                expected: candidate.expected
            )
            outcomes.append(outcome)
            if outcome == .removed { deleted.append(id) } else { kept.append(id) }
        }
        do {
            try ledger.reconnecting {
                try ledger.settleDeletions(deleted: deleted, kept: kept, projectID: projectID, deviceID: deviceID)
            }
        } catch {
            let gone = zip(candidates, outcomes).filter { $0.1 == .removed }.map(\.0.record.displayPath)
            logger.error(
                "deleted \(gone.count) files but cannot confirm it in the ledger; the next run settles them",
                metadata: ["error": "\(error)", "file.paths": "\(gone.joined(separator: ", "))"]
            )
            throw UnconfirmedDeletions(outcomes: outcomes, underlying: error)
        }
        return outcomes
    }

    /// Settles the intents on this device that their process left open: it died between recording and
    /// settling, or (this process) a ledger error interrupted the settling.
    ///
    /// An intent held by a live process on this host, or by a process on another host, is left alone: only
    /// this machine can look at the file, and a live process settles its own.
    ///
    /// - Returns: how many intents became deletions and how many were withdrawn.
    @discardableResult
    package func settleLeftovers() throws -> (deleted: Int, withdrawn: Int) {
        let hostname = ProcessInfo.processInfo.hostName
        let ownPID = getpid()
        let inFlight = Self.inFlight.withLock { $0 }
        var deleted: [Int64] = []
        var withdrawn: [Int64] = []
        for intent in try ledger.openDeletionIntents(deviceID: deviceID) {
            guard let colon = intent.holder.lastIndex(of: ":"), intent.holder[..<colon] == hostname,
                let pid = Int32(intent.holder[intent.holder.index(after: colon)...])
            else { continue }
            if pid == ownPID {
                if inFlight.contains(intent.id) { continue }
            } else if LocalProcess.exists(pid) {
                continue
            }
            var info = stat()
            do {
                try intent.path.withCPath { path throws(SystemCallError) in
                    try Syscall.call("lstat") { lstat(path, &info) }
                }
                withdrawn.append(intent.id)
            } catch {
                if error.code == ENOENT || error.code == ENOTDIR { deleted.append(intent.id) } else { continue }
            }
        }
        try ledger.settleDeletions(deleted: deleted, kept: withdrawn, projectID: projectID, deviceID: deviceID)
        if !deleted.isEmpty || !withdrawn.isEmpty {
            logger.notice(
                "settled deletions a stopped process left open",
                metadata: ["files.deleted": "\(deleted.count)", "files.kept": "\(withdrawn.count)"]
            )
        }
        return (deleted.count, withdrawn.count)
    }
}
