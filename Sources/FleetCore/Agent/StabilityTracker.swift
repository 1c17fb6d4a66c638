import FleetSystem
import Foundation

/// A file in one of the agent's sources: the source's index in the configuration and the path below it.
package struct SourceFile: Hashable, Sendable {
    package var source: Int
    package var relativePath: [UInt8]

    package init(source: Int, relativePath: [UInt8]) {
        self.source = source
        self.relativePath = relativePath
    }
}

/// One version of a file: its size and mtime, the identity the predecessor's registry used (path, size, mtime).
package struct FileVersion: Hashable, Sendable {
    package var size: Int64
    package var mtime: Timestamp

    package init(size: Int64, mtime: Timestamp) {
        self.size = size
        self.mtime = mtime
    }
}

/// Decides when a file is complete enough to upload, and remembers what was done with each version.
///
/// A file is *settling* from the moment it is seen until its size and mtime have stayed the same for
/// `stabilitySeconds`; it is then *ready* (in the upload queue) until an upload run *handles* it (uploaded,
/// already stored, or refused for good). A handled version is never queued again; a new version (the file
/// grew or was rewritten) settles again. Time comes from the caller, so tests can drive it.
///
/// Memory follows the work, not the disk: only pending files (settling or ready) are kept whole. A handled
/// version is remembered as a 16-byte fingerprint of its source, path, size and mtime (`HandledVersions`), and a
/// full scan keeps only the fingerprints of the files it still finds that are young enough to be taken up, so a
/// vehicle holding a million uploaded files keeps about 16 MB for them. What is uploaded lives in the ledger: after
/// a restart the first run finds those files stored and marks them handled again.
package struct StabilityTracker {
    private enum State {
        case settling(since: Date)
        case ready(since: Date)
    }
    private struct Entry {
        var version: FileVersion
        var state: State
        /// The scan that last found the file, so a complete scan can forget the files it did not find.
        var scan: UInt32
    }

    package var stabilitySeconds: Double
    private var entries: [SourceFile: Entry] = [:]
    private var handled = HandledVersions()
    private var scan: UInt32 = 0

    package init(stabilitySeconds: Double) {
        self.stabilitySeconds = stabilitySeconds
    }

    /// A file found by a start-up scan or rescan and modified at least this long ago is complete: it skips the
    /// stability wait; younger ones might still be being written.
    package static let settledAge: Double = 120

    /// Notes that `file` exists as `version` at `now` (a file event, or a scan through `scanned`).
    ///
    /// - Parameter settled: the file comes from a scan and was last modified `settledAge` or more before `now`;
    ///   it is ready at once unless this version is known already.
    /// - Returns: true when the file became ready by this call (a settled file not known in this version).
    @discardableResult
    package mutating func observe(_ file: SourceFile, _ version: FileVersion, now: Date, settled: Bool = false) -> Bool
    {
        if entries[file] == nil, handled.contains(file, version) { return false }
        return enter(file, version, now: now, settled: settled)
    }

    /// Keeps `file` pending in `version` (known not handled in it): a version already pending is only marked
    /// found by the current scan; another one starts afresh. True when it is ready at once.
    private mutating func enter(_ file: SourceFile, _ version: FileVersion, now: Date, settled: Bool) -> Bool {
        if let entry = entries[file], entry.version == version {
            entries[file]?.scan = scan
            return false
        }
        entries[file] = Entry(version: version, state: settled ? .ready(since: now) : .settling(since: now), scan: scan)
        return settled
    }

    /// Notes, during a scan, that the ledger stores `version` of `file` (an earlier run uploaded it): handled,
    /// never pending.
    package mutating func markStored(_ file: SourceFile, _ version: FileVersion) {
        guard entries[file] == nil else { return }
        handled.insert(file, version)
    }

    /// Whether `file` is pending (settling or ready) or handled in `version`.
    package func knows(_ file: SourceFile, _ version: FileVersion) -> Bool {
        entries[file] != nil || handled.contains(file, version)
    }

    /// Forgets a file that is gone. (The fingerprint of a handled version goes with the next complete scan.)
    package mutating func forget(_ file: SourceFile) { entries[file] = nil }

    /// A full scan of the sources begins: files it reports through `scanned` are kept, and once it ends complete
    /// (`endScan`) pending files it did not find are forgotten.
    package mutating func beginScan() {
        scan &+= 1
        handled.beginScan()
    }

    /// What a scan's look at one file did.
    package enum ScanOutcome: Equatable {
        /// Nothing new: pending or handled in this version, or too old to be taken up.
        case noted
        /// The file became ready (a settled file not known in this version).
        case ready
        /// Neither pending nor handled, and held back as asked: the caller finds out whether the ledger stores
        /// it, then calls `markStored` or `scannedUnknown`.
        case unknown
    }

    /// The scan in progress found `file` as `version`.
    ///
    /// - Parameters:
    ///   - take: the file is young enough to be taken up (`scan.max_age_days`); an older one is only kept when it
    ///     is pending already, and a handled fingerprint of it is dropped (an older file is not taken up again).
    ///   - settled: as for `observe`.
    /// - Returns: true when the file became ready by this call.
    package mutating func scanned(
        _ file: SourceFile,
        _ version: FileVersion,
        take: Bool,
        settled: Bool,
        now: Date
    ) -> Bool {
        scanned(file, version, take: take, settled: settled, now: now, holdingUnknown: false) == .ready
    }

    /// The scan in progress found `file` as `version`; with `holdingUnknown`, a file young enough to be taken up
    /// that is neither pending nor handled is not queued but answered `.unknown`.
    package mutating func scanned(
        _ file: SourceFile,
        _ version: FileVersion,
        take: Bool,
        settled: Bool,
        now: Date,
        holdingUnknown: Bool
    ) -> ScanOutcome {
        if entries[file] == nil {
            // A handled file too old to be taken up is not reported found: its fingerprint goes with this scan.
            if take ? handled.noteFound(file, version) : handled.contains(file, version) { return .noted }
            if take, holdingUnknown { return .unknown }
        }
        guard take else {
            entries[file]?.scan = scan
            return .noted
        }
        return enter(file, version, now: now, settled: settled) ? .ready : .noted
    }

    /// A file `scanned` answered `.unknown` for, which the ledger does not store: queued as the scan found it.
    ///
    /// - Returns: true when the file became ready by this call.
    package mutating func scannedUnknown(_ file: SourceFile, _ version: FileVersion, settled: Bool, now: Date) -> Bool {
        enter(file, version, now: now, settled: settled)
    }

    /// The scan begun by `beginScan` ended. When it was complete, pending files it did not find are forgotten and
    /// only the handled fingerprints it found are kept; an incomplete scan forgets nothing.
    package mutating func endScan(complete: Bool) {
        handled.endScan(complete: complete)
        guard complete else { return }
        let current = scan
        entries = entries.filter { $0.value.scan == current }
    }

    /// Moves files that have settled long enough to ready, after checking them once more: `current` gives a
    /// file's version now (nil: gone). A file that changed since it was last seen starts settling again.
    ///
    /// - Returns: the files that became ready.
    package mutating func promote(now: Date, current: (SourceFile) -> FileVersion?) -> [SourceFile] {
        var promoted: [SourceFile] = []
        // Collected first: changing the dictionary while iterating it would copy it whole.
        let due = entries.compactMap { file, entry -> (SourceFile, Entry)? in
            guard case .settling(let since) = entry.state, now.timeIntervalSince(since) >= stabilitySeconds else {
                return nil
            }
            return (file, entry)
        }
        for (file, entry) in due {
            guard let version = current(file) else {
                entries[file] = nil
                continue
            }
            if version == entry.version {
                entries[file]?.state = .ready(since: now)
                promoted.append(file)
            } else {
                entries[file] = Entry(version: version, state: .settling(since: now), scan: entry.scan)
            }
        }
        return promoted
    }

    /// Marks `version` of `file` handled, unless the file has changed since (then the new version stays).
    package mutating func markHandled(_ file: SourceFile, _ version: FileVersion) {
        guard let entry = entries[file], entry.version == version else { return }
        entries[file] = nil
        handled.insert(file, version)
    }

    /// The files waiting for an upload, oldest in the queue first, with their versions.
    package var ready: [(file: SourceFile, version: FileVersion)] {
        entries.compactMap { file, entry -> (SourceFile, FileVersion, Date)? in
            guard case .ready(let since) = entry.state else { return nil }
            return (file, entry.version, since)
        }
        .sorted { $0.2 < $1.2 }
        .map { ($0.0, $0.1) }
    }

    /// The version of `file` when it is ready, else nil.
    package func readyVersion(of file: SourceFile) -> FileVersion? {
        guard let entry = entries[file], case .ready = entry.state else { return nil }
        return entry.version
    }

    /// Files ready and their total size: the queue a heartbeat reports.
    package var queue: (files: Int, bytes: Int64) {
        entries.values.reduce(into: (0, Int64(0))) { total, entry in
            if case .ready = entry.state {
                total.0 += 1
                total.1 += entry.version.size
            }
        }
    }

    /// Files still settling.
    package var settlingCount: Int {
        entries.values.count { if case .settling = $0.state { true } else { false } }
    }

    /// Files pending (settling or ready): the only ones held whole.
    package var pendingCount: Int { entries.count }

    /// Handled versions remembered.
    package var handledCount: Int { handled.count }
}
