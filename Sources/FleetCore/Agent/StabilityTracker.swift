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
package struct StabilityTracker {
    private enum State {
        case settling(since: Date)
        case ready(since: Date)
        case handled
    }
    private struct Entry {
        var version: FileVersion
        var state: State
    }

    package var stabilitySeconds: Double
    private var entries: [SourceFile: Entry] = [:]

    package init(stabilitySeconds: Double) {
        self.stabilitySeconds = stabilitySeconds
    }

    /// A file found by a start-up scan or rescan and modified at least this long ago is complete: it skips the
    /// stability wait; younger ones might still be being written.
    package static let settledAge: Double = 120

    /// Notes that `file` exists as `version` at `now`.
    ///
    /// - Parameter settled: the file comes from a scan and was last modified `settledAge` or more before `now`;
    ///   it is ready at once unless this version is known already.
    /// - Returns: true when the file became ready by this call (a settled file not known in this version).
    @discardableResult
    package mutating func observe(_ file: SourceFile, _ version: FileVersion, now: Date, settled: Bool = false) -> Bool
    {
        if let entry = entries[file], entry.version == version { return false }
        entries[file] = Entry(version: version, state: settled ? .ready(since: now) : .settling(since: now))
        return settled
    }

    /// Whether the file is known in any state.
    package func knows(_ file: SourceFile) -> Bool { entries[file] != nil }

    /// Forgets a file that is gone.
    package mutating func forget(_ file: SourceFile) { entries[file] = nil }

    /// Forgets every file `gone` says no longer exists (after a full rescan).
    package mutating func forgetMissing(where gone: (SourceFile) -> Bool) {
        for file in entries.keys where gone(file) { entries[file] = nil }
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
                entries[file] = Entry(version: version, state: .settling(since: now))
            }
        }
        return promoted
    }

    /// Marks `version` of `file` handled, unless the file has changed since (then the new version stays).
    package mutating func markHandled(_ file: SourceFile, _ version: FileVersion) {
        guard let entry = entries[file], entry.version == version else { return }
        entries[file]?.state = .handled
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

    /// Every file known, in any state.
    package var knownCount: Int { entries.count }
}
