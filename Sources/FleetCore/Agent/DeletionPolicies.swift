import FleetLedger
import FleetSystem
import Foundation
import Logging

/// What one run of a deletion policy did.
package struct DeletionReport: Sendable, Equatable {
    /// `after_upload`, `age` or `emergency`: the `local_deletions.reason` of its deletions.
    package var reason: String
    package var deletedFiles = 0
    package var deletedBytes: Int64 = 0
    /// Deleted although the ledger could not confirm their upload (`include_unuploaded`); counted in
    /// `deletedFiles` too.
    package var deletedUnuploaded = 0
    /// Files the policy would have deleted but kept because the ledger cannot confirm their upload.
    package var keptUnuploaded = 0
    /// Uploaded files kept because what is on disk now is not what was uploaded: another size or mtime, or no
    /// longer a regular file reached without symbolic links.
    package var changedSinceUpload = 0

    package init(reason: String) { self.reason = reason }
}

/// The agent's three local deletion policies (`deletion.after_upload`, `deletion.age`, `deletion.emergency`).
///
/// The promise they keep: a file is deleted only once the ledger confirms its upload (S3 verified its
/// SHA-256 and the key's latest record is still that object with the file's size and mtime), unless
/// `include_unuploaded` says otherwise. Files go the one way every deletion goes (`LocalDeleter`), in batches:
/// the ledger confirms the uploads, records the deletions as intended, the files are removed, and the ledger
/// confirms what went; a ledger that cannot be written makes a policy throw before anything in the batch is
/// deleted. Each call first settles the intents a stopped process left open.
///
/// Only regular files inside the configured sources that allow it (`allow_deletion`, false by default below
/// `/var`, `/etc`, `/usr`, `/boot`, `/proc` and `/sys`) are deleted: the others are not even walked, and
/// `LocalDeleter` refuses their files whatever asks. Right before each `unlink` the file is
/// examined again without following links (`fstatat` with `AT_SYMLINK_NOFOLLOW`, the `lstat` of the directory
/// it is in), and the directories down to it are opened one at a time with `O_NOFOLLOW`: a file whose size or
/// mtime differs, or that is reached through a symbolic link, stays. Directories are never deleted, except those
/// left empty when `upload.remove_empty_directories` is on (never a source directory).
///
/// Every deletion is one `local_deletions` row (state `deleted`) and sets `file_uploads.local_deleted_at` on the
/// rows that recorded the file. Each call logs one summary line (`info` when it deleted or kept something, `debug`
/// otherwise).
package struct DeletionPolicies {
    package var config: FleetConfig
    package let ledger: Ledger
    package var projectID: Int64
    package var deviceID: Int64
    package var logger: Logger
    private let diskUsage: (String) throws -> DiskUsage

    /// `file_uploads` rows `afterUpload` examines per call, so one call stays short.
    package static let afterUploadLimit = 5000
    /// Deleted files recorded in the ledger per transaction.
    static let recordBatch = 500
    /// Files confirmed with the ledger per query (`age`, `emergency`).
    static let confirmBatch = 1000
    /// Emergency deletion measures the disk again after this many deleted files, or after 1 % of the disk.
    static let emergencyCheckFiles = 50

    /// - Parameters:
    ///   - projectID: the project whose uploads confirm a file (`object_records`).
    ///   - deviceID: this device: `after_upload` looks at its sessions' files, and deletions are recorded for it.
    ///   - diskUsage: measures the file system holding a path (tests pass a fake one).
    package init(
        config: FleetConfig,
        ledger: Ledger,
        projectID: Int64,
        deviceID: Int64,
        logger: Logger,
        diskUsage: @escaping (String) throws -> DiskUsage = { try DiskUsage.of(path: $0) }
    ) {
        self.config = config
        self.ledger = ledger
        self.projectID = projectID
        self.deviceID = deviceID
        self.logger = logger
        self.diskUsage = diskUsage
    }

    /// The configured sources, named.
    private var sources: [SourceSettings] { config.resolved.sources }

    /// Each source directory as bytes, without a trailing slash (as `SourceWalk` joins paths).
    private var sourceRoots: [[UInt8]] { sources.map { Array($0.path.utf8).trailingSlashRemoved } }

    /// The indices of the sources whose files may be deleted (`allow_deletion`).
    private var deletableSources: [Int] { sources.indices.filter { sources[$0].allowDeletion == true } }

    // MARK: - After upload

    /// `deletion.after_upload`: deletes the files whose upload finished at least `keep_days` before `now`.
    ///
    /// It looks at the files of this device's sessions that the ledger records `uploaded` with a SHA-256 checksum,
    /// whose key's latest record is still that same object, whose local copy is not known to be gone
    /// (`local_deleted_at` null) and that lie in a configured source; at most `afterUploadLimit` of them per
    /// call. Each is deleted when it is still the regular file that was uploaded (same size and mtime); the
    /// deletion is recorded as `after_upload`, `was_uploaded` true, with the session that uploaded it.
    ///
    /// A file already gone from the disk (deleted by hand) gets `local_deleted_at` so it is not examined again,
    /// but no `local_deletions` row: that table lists what fleet-upload deleted. A file kept (changed, reached
    /// through a symbolic link, not deletable) goes to the back of the queue; once a changed file is uploaded
    /// again, the key's latest record is the new version and the old row no longer qualifies.
    ///
    /// - Returns: `nil` when the policy is off (no `deletion.after_upload`, or `enabled: false`).
    /// - Throws: `LedgerError`; nothing is deleted when the candidates cannot be read.
    package func afterUpload(now: Date) throws -> DeletionReport? {
        guard let settings = config.resolved.deletion.afterUpload else { return nil }
        var logger = self.logger
        logger[metadataKey: "deletion.reason"] = "after_upload"
        try settleLeftovers(logger: logger)
        let keepDays = max(settings.keepDays, 0)
        let cutoff = Timestamp(microseconds: Timestamp(now).microseconds - Self.microseconds(days: keepDays))
        let allRoots = sourceRoots
        let roots = deletableSources.map { allRoots[$0] }
        guard !roots.isEmpty else { return DeletionReport(reason: "after_upload") }
        let candidates = try ledger.afterUploadCandidates(
            projectID: projectID,
            deviceID: deviceID,
            finishedBefore: cutoff,
            rootPrefixes: roots.map(Self.prefixText),
            limit: Self.afterUploadLimit
        )

        var sweep = DeletionSweep(policies: self, reason: "after_upload", logger: logger)
        var gone: [AfterUploadCandidate] = []
        var kept: [AfterUploadCandidate] = []
        var batch: [AfterUploadCandidate] = []
        for candidate in candidates {
            guard let root = LocalRemoval.root(containing: candidate.path, among: roots) else {
                kept.append(candidate)
                continue
            }
            sweep.queue(
                path: candidate.path,
                displayPath: candidate.displayPath,
                root: root,
                size: candidate.size,
                mtime: candidate.mtime,
                device: candidate.device,
                inode: candidate.inode,
                uploaded: true,
                bucket: candidate.bucket,
                key: candidate.key,
                sessionID: candidate.sessionID
            )
            batch.append(candidate)
            if sweep.queuedFiles >= Self.recordBatch {
                Self.sort(batch, try sweep.flush(), gone: &gone, kept: &kept)
                batch.removeAll()
            }
        }
        Self.sort(batch, try sweep.flush(), gone: &gone, kept: &kept)
        try ledger.markLocalCopiesGone(gone)
        try ledger.deferAfterUploadCandidates(kept)
        if !gone.isEmpty {
            logger.debug("uploaded files already gone from the disk", metadata: ["files": "\(gone.count)"])
        }
        Self.logSummary(sweep.report, logger: logger)
        return sweep.report
    }

    /// Files gone before the policy got to them are marked gone; files kept go to the back of the queue.
    private static func sort(
        _ batch: [AfterUploadCandidate],
        _ outcomes: [LocalRemoval.Outcome],
        gone: inout [AfterUploadCandidate],
        kept: inout [AfterUploadCandidate]
    ) {
        for (candidate, outcome) in zip(batch, outcomes) {
            switch outcome {
            case .removed: break
            case .vanished: gone.append(candidate)
            default: kept.append(candidate)
            }
        }
    }

    // MARK: - Age

    /// `deletion.age`: deletes every file in the sources last modified more than `max_age_days` before `now`
    /// (a file exactly that old stays), once the ledger confirms its upload.
    ///
    /// The sources that allow deletion are walked with their scan patterns but without `scan.max_age_days` and
    /// `scan.min_age_seconds`. A file whose upload the ledger cannot confirm is kept (`keptUnuploaded`), or with
    /// `include_unuploaded` deleted, recorded with `was_uploaded` false and logged as a warning (the operator
    /// chose this retention for such files).
    ///
    /// - Returns: `nil` when the policy is off (no `deletion.age`, or `enabled: false`).
    /// - Throws: `LedgerError` (nothing in the batch being confirmed is deleted), `ScanError`, `KeyTemplateError`.
    package func ageBased(now: Date) throws -> DeletionReport? {
        guard let settings = config.resolved.deletion.age else { return nil }
        var logger = self.logger
        logger[metadataKey: "deletion.reason"] = "age"
        try settleLeftovers(logger: logger)
        let includeUnuploaded = settings.includeUnuploaded
        let cutoff = Timestamp(now).microseconds - Self.microseconds(days: settings.maxAgeDays)
        let mapper = try KeyMapper(config: config)
        let found = try collect(sources: deletableSources, mapper: mapper, now: now, logger: logger) {
            $0.mtime.microseconds < cutoff
        }

        let roots = sourceRoots
        var sweep = DeletionSweep(policies: self, reason: "age", logger: logger, unuploadedLevel: .warning)
        for start in stride(from: 0, to: found.entries.count, by: Self.confirmBatch) {
            let batch = Array(start..<min(start + Self.confirmBatch, found.entries.count))
            let verdicts = try confirm(batch, in: found, mapper: mapper)
            for (index, verdict) in zip(batch, verdicts) {
                guard verdict.uploaded || includeUnuploaded else {
                    sweep.report.keptUnuploaded += 1
                    continue
                }
                sweep.queue(found, index, roots: roots, verdict: verdict)
            }
            try sweep.flush()
        }
        if sweep.report.keptUnuploaded > 0 {
            let days = settings.maxAgeDays.formatted()
            logger.warning(
                "kept \(sweep.report.keptUnuploaded) files older than \(days) days: never uploaded",
                metadata: ["files.kept_unuploaded": "\(sweep.report.keptUnuploaded)"]
            )
        }
        Self.logSummary(sweep.report, logger: logger)
        return sweep.report
    }

    // MARK: - Emergency

    /// `deletion.emergency`: frees space on each file system holding a source that is at least `act_percent`
    /// full or has less than `reserved_gb` free, down to below `warn_percent` with `reserved_gb` free.
    ///
    /// Sources are grouped by file system (`DiskUsage.fileSystemID`) and each group is handled once. The files of
    /// its sources that allow deletion (scan patterns apply, ages do not) are taken oldest mtime first: first
    /// those whose upload the ledger confirms; the disk is measured again after every 50 deleted files or 1 % of
    /// the disk, and deleting stops as soon as it is below `warn_percent` and has `reserved_gb` free. Still short,
    /// and only with `include_unuploaded`, the oldest files never uploaded follow, each logged as an error. A file
    /// system at or above `warn_percent` (or short of `reserved_gb`) that does not call for deleting only gets a
    /// warning; so does any full file system when the policy is off, and one whose sources all keep their files.
    ///
    /// - Parameter now: the instant the sources are scanned at.
    /// - Returns: `nil` when no file system calls for deleting, or the policy is off.
    /// - Throws: `LedgerError` (nothing in the batch being confirmed is deleted), `ScanError`, `KeyTemplateError`.
    package func emergency(now: Date) throws -> DeletionReport? {
        let settings = config.resolved.deletion.emergency
        let active = settings.active
        let warn = settings.warnPercent
        let act = settings.actPercent
        let deletable = Set(deletableSources)
        var logger = self.logger
        logger[metadataKey: "deletion.reason"] = "emergency"

        var groups: [(usage: DiskUsage, sources: [Int])] = []
        for (index, source) in sources.enumerated() {
            let usage: DiskUsage
            do {
                usage = try diskUsage(source.path)
            } catch {
                logger.warning(
                    "cannot measure the disk of a source",
                    metadata: ["source": "\(source.path)", "error": "\(error)"]
                )
                continue
            }
            if let group = groups.firstIndex(where: { $0.usage.fileSystemID == usage.fileSystemID }) {
                groups[group].sources.append(index)
            } else {
                groups.append((usage, [index]))
            }
        }

        var report: DeletionReport?
        var mapper: KeyMapper?
        for group in groups where settings.isTight(group.usage) {
            let paths = group.sources.map { sources[$0].path }.joined(separator: ", ")
            let full = Self.percentText(group.usage.usedPercent)
            let free = Formatting.bytes(group.usage.availableBytes)
            let metadata: Logger.Metadata = [
                "disk.used_percent": "\(Self.percentText(group.usage.usedPercent))", "sources": "\(paths)",
                "disk.available_bytes": "\(group.usage.availableBytes)",
            ]
            let reserve = settings.reservedBytes > 0 ? ", \(settings.reservedGb.formatted()) GiB reserved" : ""
            func state(_ threshold: String, _ percent: Double) -> String {
                "disk \(full) % full, \(free) free (\(threshold) at \(Self.percentText(percent)) %\(reserve))"
            }
            let own = group.sources.filter(deletable.contains)
            guard active, settings.mustFreeSpace(group.usage), !own.isEmpty else {
                let note =
                    !active
                    ? "deletion.emergency is off, so nothing is deleted"
                    : !settings.mustFreeSpace(group.usage)
                        ? "deleting starts at \(Self.percentText(act)) %"
                        : "its sources keep their files (allow_deletion is false), so nothing is deleted"
                logger.warning("\(state("warning", warn)); \(note)", metadata: metadata)
                continue
            }
            logger.warning("\(state("act", act)): deleting the oldest uploaded files", metadata: metadata)
            if mapper == nil { try settleLeftovers(logger: logger) }
            let keyMapper = try mapper ?? KeyMapper(config: config)
            mapper = keyMapper
            var sweep = DeletionSweep(policies: self, reason: "emergency", logger: logger, unuploadedLevel: .error)
            sweep.report = report ?? DeletionReport(reason: "emergency")
            try freeSpace(
                group: own,
                usage: group.usage,
                settings: settings,
                mapper: keyMapper,
                now: now,
                sweep: &sweep
            )
            report = sweep.report
        }
        if let report { Self.logSummary(report, logger: logger) }
        return report
    }

    /// Deletes the oldest files of the given sources (on one file system) until it is below `warn_percent` full
    /// with `reserved_gb` free.
    private func freeSpace(
        group: [Int],
        usage: DiskUsage,
        settings: ResolvedConfig.Deletion.Emergency,
        mapper: KeyMapper,
        now: Date,
        sweep: inout DeletionSweep
    ) throws {
        var found = try collect(sources: group, mapper: mapper, now: now, logger: sweep.logger) { _ in true }
        found.sortOldestFirst()
        let probe = sources[group[0]].path
        let step = max(usage.totalBytes / 100, 1)
        let roots = sourceRoots
        var current = usage

        /// Records what is pending and measures again; true once below `warn_percent` with `reserved_gb` free (or
        /// when the disk cannot be measured any more: no deleting blind).
        func belowWarn() throws -> Bool {
            try sweep.flush()
            do {
                current = try diskUsage(probe)
            } catch {
                sweep.logger.warning(
                    "cannot measure the disk again; stopping emergency deletion",
                    metadata: ["error": "\(error)"]
                )
                return true
            }
            return !settings.isTight(current)
        }

        // Uploaded files, oldest first; the others are set aside in the same order.
        var unconfirmed: [Int] = []
        var done = false
        var start = 0
        while !done, start < found.entries.count {
            let batch = Array(start..<min(start + Self.confirmBatch, found.entries.count))
            let verdicts = try confirm(batch, in: found, mapper: mapper)
            for (index, verdict) in zip(batch, verdicts) {
                guard verdict.uploaded else {
                    unconfirmed.append(index)
                    continue
                }
                sweep.queue(found, index, roots: roots, verdict: verdict)
                if sweep.queuedFiles >= Self.emergencyCheckFiles || sweep.queuedBytes >= step {
                    done = try belowWarn()
                    if done { break }
                }
            }
            start = batch.last.map { $0 + 1 } ?? found.entries.count
        }
        if !done { done = try belowWarn() }

        // Still too full: files never uploaded, oldest first, only when the configuration says so. They are
        // confirmed again (an upload may have finished meanwhile), so `was_uploaded` says what is true.
        let deletedBefore = sweep.report.deletedFiles
        let includeUnuploaded = settings.includeUnuploaded
        if !done, includeUnuploaded, !unconfirmed.isEmpty {
            let full = Self.percentText(current.usedPercent)
            let free = Formatting.bytes(current.availableBytes)
            sweep.logger.error(
                "disk still \(full) % full, \(free) free, after deleting the uploaded files: deleting files never uploaded",
                metadata: ["files.unuploaded": "\(unconfirmed.count)"]
            )
            var offset = 0
            while !done, offset < unconfirmed.count {
                let batch = Array(unconfirmed[offset..<min(offset + Self.confirmBatch, unconfirmed.count)])
                let verdicts = try confirm(batch, in: found, mapper: mapper)
                for (index, verdict) in zip(batch, verdicts) {
                    sweep.queue(found, index, roots: roots, verdict: verdict)
                    if sweep.queuedFiles >= Self.emergencyCheckFiles || sweep.queuedBytes >= step {
                        done = try belowWarn()
                        if done { break }
                    }
                }
                offset += batch.count
            }
            if !done { done = try belowWarn() }
        }
        let handled = sweep.report.deletedFiles - deletedBefore
        sweep.report.keptUnuploaded += unconfirmed.count - handled
        if settings.isTight(current) {
            let hint = includeUnuploaded ? "" : "; files never uploaded are kept (include_unuploaded is off)"
            let free = Formatting.bytes(current.availableBytes)
            sweep.logger.error(
                "disk still \(Self.percentText(current.usedPercent)) % full, \(free) free, after emergency deletion\(hint)",
                metadata: ["files.kept_unuploaded": "\(unconfirmed.count - handled)"]
            )
        }
    }

    // MARK: - Finding and confirming files

    /// Walks the given sources with their scan patterns (not their age limits) and keeps the files `keep`
    /// accepts, compactly. A source directory that cannot be read is skipped with a warning.
    private func collect(
        sources indices: [Int],
        mapper: KeyMapper,
        now: Date,
        logger: Logger,
        keep: (ScannedFile) -> Bool
    ) throws -> FoundFiles {
        var found = FoundFiles()
        for index in indices {
            let source = sources[index]
            guard FileManager.default.isReadableDirectory(source.path) else {
                logger.warning(
                    "source directory cannot be read; nothing in it is deleted",
                    metadata: ["source": "\(source.path)"]
                )
                continue
            }
            var walkConfig = config
            walkConfig.scan?.maxAgeDays = nil
            walkConfig.scan?.minAgeSeconds = nil
            if walkConfig.sources != nil {
                walkConfig.sources = [source]
            } else {
                walkConfig.source = source
            }
            var walk = SourceWalk(config: walkConfig, mapper: mapper, logger: logger)
            walk.takesHardLinksOnce = false  // a policy weighs every name on disk
            _ = try walk.run(now: Timestamp(now)) { walked in
                if keep(walked.file) {
                    found.append(path: walked.fullPath, source: index, size: walked.file.size, mtime: walked.file.mtime)
                }
            }
        }
        return found
    }

    /// For each of `found`'s entries at `indices`, where it would be uploaded and whether the ledger confirms
    /// that upload (`storedMatches`). A file that cannot have a key is never confirmed.
    private func confirm(_ indices: [Int], in found: FoundFiles, mapper: KeyMapper) throws -> [DeletionVerdict] {
        var verdicts: [DeletionVerdict] = []
        var candidates: [StoredCandidate] = []
        var asked: [Int] = []
        verdicts.reserveCapacity(indices.count)
        let names = sources.map { $0.name ?? "" }
        let compressionRules = sources.map { CompressionRule($0) }
        let rootLengths = sourceRoots.map(\.count)
        for index in indices {
            let entry = found.entries[index]
            let source = Int(entry.source)
            let relative = Array(found.path(entry).dropFirst(rootLengths[source] + 1))
            let placement = try? CompressionRule.placing(
                mapper.place(source: names[source], relativePath: relative, mtime: entry.mtime),
                by: compressionRules[source],
                relativePath: relative
            )
            verdicts.append(DeletionVerdict(placement: placement, uploaded: false))
            if let placement {
                asked.append(verdicts.count - 1)
                candidates.append(
                    StoredCandidate(bucket: placement.bucket, key: placement.key, size: entry.size, mtime: entry.mtime)
                )
            }
        }
        for (position, stored) in zip(
            asked,
            try ledger.storedMatches(projectID: projectID, candidates, acceptingImported: false)
        ) {
            verdicts[position].uploaded = stored
        }
        return verdicts
    }

    // MARK: - Helpers

    /// Settles the deletions a stopped process left between intent and confirmation.
    private func settleLeftovers(logger: Logger) throws {
        try LocalDeleter(ledger: ledger, projectID: projectID, deviceID: deviceID, logger: logger).settleLeftovers()
    }

    private static func microseconds(days: Double) -> Int64 { Int64((days * 86_400 * 1_000_000).rounded()) }

    /// The text a source's files' `local_path` starts with.
    private static func prefixText(_ root: [UInt8]) -> String {
        root == [UInt8(ascii: "/")] ? "/" : String(decoding: root, as: UTF8.self) + "/"
    }

    private static func percentText(_ percent: Double) -> String { String(format: "%.1f", percent) }

    private static func logSummary(_ report: DeletionReport, logger: Logger) {
        let acted = report.deletedFiles + report.keptUnuploaded + report.changedSinceUpload > 0
        let bytes = Formatting.bytes(report.deletedBytes)
        logger.log(
            level: acted ? .info : .debug,
            "\(report.reason) deletion: \(report.deletedFiles) files (\(bytes)) deleted",
            metadata: [
                "files.deleted": "\(report.deletedFiles)", "bytes.deleted": "\(report.deletedBytes)",
                "files.deleted_unuploaded": "\(report.deletedUnuploaded)",
                "files.kept_unuploaded": "\(report.keptUnuploaded)",
                "files.changed": "\(report.changedSinceUpload)",
            ]
        )
    }
}
