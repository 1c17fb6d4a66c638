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
///
/// A file is deleted only from a source that allows it (`allow_deletion`, false by default below the system's
/// directories): the deleter is given those sources' directories (`deletableRoots`, none unless given), and a
/// candidate whose source directory is not among them is refused before anything is recorded, whichever policy
/// asked.
package struct LocalDeleter {
    /// A file to delete: what to record, the source directory it lies in, and what it must still be.
    package struct Candidate: Sendable {
        package var record: LocalDeletionRecord
        /// The source directory the walk starts from (as configured; it may itself be a link).
        package var root: [UInt8]
        package var expected: FileIdentity

        /// A file that must still be `expected` (its size and mtime are what the ledger records).
        package init(
            path: [UInt8],
            displayPath: String,
            root: [UInt8],
            expected: FileIdentity,
            wasUploaded: Bool,
            sessionID: Int64?,
            bucket: String,
            key: String
        ) {
            record = LocalDeletionRecord(
                path: path,
                displayPath: displayPath,
                size: expected.size,
                mtime: expected.mtime,
                wasUploaded: wasUploaded,
                sessionID: sessionID,
                bucket: bucket,
                key: key
            )
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
    /// The source directories, when directories a deletion leaves empty are removed too
    /// (`upload.remove_empty_directories`); never a source directory itself.
    package var emptyDirectoriesUnder: Set<[UInt8]>?
    /// The directories of the sources that allow deletion (`ResolvedConfig.deletableSourceRoots`); a candidate
    /// whose `root` is not one of them stays.
    package var deletableRoots: Set<[UInt8]>

    /// Why a file of a source that keeps its files stays.
    package static let protectedReason = "its source keeps its files (allow_deletion is false)"

    /// Intents of this process whose settling failed (`UnconfirmedDeletions`): the only intents of its own that
    /// `settleLeftovers` may settle. Every other intent this process holds may be in the middle of a `delete`
    /// on another thread.
    private static let orphaned = Mutex<Set<Int64>>([])

    package init(
        ledger: Ledger,
        projectID: Int64,
        deviceID: Int64,
        logger: Logger,
        deletableRoots: Set<[UInt8]> = [],
        emptyDirectoriesUnder: Set<[UInt8]>? = nil
    ) {
        self.ledger = ledger
        self.projectID = projectID
        self.deviceID = deviceID
        self.logger = logger
        self.deletableRoots = deletableRoots
        self.emptyDirectoriesUnder = emptyDirectoriesUnder
    }

    /// Deletes the candidates that are still what they must be, recording every deletion before it happens.
    ///
    /// - Parameters:
    ///   - candidates: Distinct files.
    ///   - reason: `after_upload`, `age` or `emergency`.
    /// - Returns: what happened to each candidate, in order; a candidate of a source that keeps its files is
    ///   `.failed(protectedReason)`.
    /// - Throws: the ledger's error when it cannot record the intents (then nothing was deleted);
    ///   `UnconfirmedDeletions` when it cannot settle them after the files were removed (logged first, naming
    ///   every file).
    package func delete(_ candidates: [Candidate], reason: String) throws -> [LocalRemoval.Outcome] {
        let allowed = candidates.filter { deletableRoots.contains($0.root) }
        guard allowed.count == candidates.count else {
            // The files of sources that keep theirs are not even recorded; the others go as usual.
            func merged(_ outcomes: [LocalRemoval.Outcome]) -> [LocalRemoval.Outcome] {
                var next = outcomes.makeIterator()
                return candidates.map { candidate in
                    deletableRoots.contains(candidate.root)
                        ? next.next() ?? .failed("no outcome") : .failed(Self.protectedReason)
                }
            }
            do {
                return merged(try delete(allowed, reason: reason))
            } catch let error as UnconfirmedDeletions {
                throw UnconfirmedDeletions(outcomes: merged(error.outcomes), underlying: error.underlying)
            }
        }
        guard !candidates.isEmpty else { return [] }
        // A path listed twice (overlapping sources) is deleted once: the first listing carries it.
        var first: [[UInt8]: Int] = [:]
        var unique: [Candidate] = []
        for (index, candidate) in candidates.enumerated() where first[candidate.record.path] == nil {
            first[candidate.record.path] = index
            unique.append(candidate)
        }
        // Not retried on a broken connection: intents the lost answer may have committed are this process's
        // until it ends, then the next run settles them by what is on disk.
        let ids = try ledger.intendDeletions(
            unique.map(\.record),
            reason: reason,
            projectID: projectID,
            deviceID: deviceID
        )

        var removal: [[UInt8]: LocalRemoval.Outcome] = [:]
        var deleted: [Int64] = []
        var kept: [Int64] = []
        for candidate in unique {
            let path = candidate.record.path
            guard let id = ids[path] else {
                removal[path] = .failed("its deletion was not recorded")
                continue
            }
            let outcome = LocalRemoval.removeRegularFile(path, root: candidate.root, expected: candidate.expected)
            removal[path] = outcome
            if outcome == .removed { deleted.append(id) } else { kept.append(id) }
        }
        let outcomes = candidates.enumerated().map { index, candidate in
            let outcome = removal[candidate.record.path] ?? .failed("its deletion was not recorded")
            let repeated = first[candidate.record.path] != index
            return repeated && outcome == .removed ? .vanished : outcome
        }
        do {
            try ledger.reconnecting {
                try ledger.settleDeletions(deleted: deleted, kept: kept, projectID: projectID, deviceID: deviceID)
            }
        } catch {
            Self.orphaned.withLock { $0.formUnion(deleted + kept) }
            let gone = zip(candidates, outcomes).filter { $0.1 == .removed }.map(\.0.record.displayPath)
            logger.error(
                "deleted \(gone.count) files but cannot confirm it in the ledger; the next run settles them",
                metadata: ["error": "\(error)", "file.paths": "\(gone.joined(separator: ", "))"]
            )
            throw UnconfirmedDeletions(outcomes: outcomes, underlying: error)
        }
        // Only once confirmed: `settleLeftovers` needs a removed file's directory to tell "gone" from "unmounted".
        if let roots = emptyDirectoriesUnder {
            for candidate in unique where removal[candidate.record.path] == .removed {
                LocalRemoval.removeEmptyParents(of: candidate.record.path, sourceRoots: roots)
            }
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
        let own = ClaimHolder.thisProcess
        let hostname = own[..<(own.lastIndex(of: ":") ?? own.endIndex)]
        let orphaned = Self.orphaned.withLock { $0 }
        var deleted: [Int64] = []
        var withdrawn: [Int64] = []
        for intent in try ledger.openDeletionIntents(deviceID: deviceID) {
            if intent.holder == own {
                guard orphaned.contains(intent.id) else { continue }
            } else {
                guard let colon = intent.holder.lastIndex(of: ":"), intent.holder[..<colon] == hostname,
                    let pid = Int32(intent.holder[intent.holder.index(after: colon)...]),
                    !LocalProcess.isAlive(pid, since: intent.recordedAt)
                else { continue }
            }
            switch Self.state(of: intent.path) {
            case .gone: deleted.append(intent.id)
            case .present: withdrawn.append(intent.id)
            case .unknown: continue
            }
        }
        try ledger.settleDeletions(deleted: deleted, kept: withdrawn, projectID: projectID, deviceID: deviceID)
        Self.orphaned.withLock { $0.subtract(deleted + withdrawn) }
        if !deleted.isEmpty || !withdrawn.isEmpty {
            logger.notice(
                "settled deletions a stopped process left open",
                metadata: ["files.deleted": "\(deleted.count)", "files.kept": "\(withdrawn.count)"]
            )
        }
        return (deleted.count, withdrawn.count)
    }

    /// Whether a file an intent names is still there. Gone only when its directory is there without it: a
    /// directory that is missing (a source not mounted yet) or cannot be examined says nothing.
    private static func state(of path: [UInt8]) -> (FileState) {
        guard let slash = path.lastIndex(of: UInt8(ascii: "/")) else { return .unknown }
        let directory = slash == 0 ? [UInt8(ascii: "/")] : Array(path[..<slash])
        var info = stat()
        do {
            try directory.withCPath { name throws(SystemCallError) in
                try Syscall.call("lstat") { lstat(name, &info) }
            }
        } catch {
            return .unknown
        }
        do {
            try path.withCPath { name throws(SystemCallError) in
                try Syscall.call("lstat") { lstat(name, &info) }
            }
            return .present
        } catch {
            return error.code == ENOENT ? .gone : .unknown
        }
    }

    private enum FileState {
        case gone, present, unknown
    }
}
