import Foundation
import Glibc
import Logging

/// Why a `FileWatcher` could not start.
///
/// `kind.rawValue` is the class shown in logs; `message` names the path and the C library's reason.
package struct WatchError: Error, Sendable, Equatable, CustomStringConvertible {
    package enum Kind: String, Sendable {
        /// `inotify_init1` failed (for example `fs.inotify.max_user_instances` was reached).
        case unavailable = "inotify_unavailable"
        /// A root does not exist.
        case noSuchDirectory = "no_such_directory"
        /// A root exists but is not a directory.
        case notADirectory = "not_a_directory"
        /// A root cannot be listed or entered by this process.
        case unreadable
        /// `fs.inotify.max_user_watches` was reached while watching a root itself.
        case watchLimit = "watch_limit"
        /// `inotify_add_watch` failed on a root for another reason.
        case other
    }

    package var kind: Kind
    package var message: String

    package init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    package var description: String { message }
}

/// Watches directory trees for files that appear, change or go away. Not Sendable: one thread owns it.
///
/// A thin layer over Linux inotify: one inotify instance (`inotify_init1`), one watch per directory
/// (`inotify_add_watch`), and `poll`/`read` to collect events. Paths are the file system's bytes, so any file
/// name survives. The watcher owns the inotify descriptor; `deinit` closes it.
///
/// The roots themselves are entered even when they are symbolic links (as `find -H` does); below them, symbolic
/// links are followed only with `followSymlinks`. Roots should not nest: a directory reachable twice is watched
/// once, under the first path it was found by.
///
/// When a root is removed or moved away the watcher reports `.rescanNeeded`, then looks for the root again at the
/// start of every `poll`; once it is back, it is watched again and the files in it are reported as `.changed`.
package final class FileWatcher {
    package enum Event: Equatable, Sendable {
        /// A regular file (full path bytes: root + "/" + relative path) was created, written, closed after writing,
        /// moved in, or had its attributes changed.
        case changed([UInt8])
        /// A file was deleted or moved out.
        case removed([UInt8])
        /// Events may have been missed (kernel queue overflow IN_Q_OVERFLOW, the watch limit reached, a root
        /// removed or moved); the caller should rescan everything.
        case rescanNeeded(reason: String)
    }

    /// One watched directory: where it is and which inode it is.
    private struct Directory {
        var path: [UInt8]
        var identity: FileIdentity
        var isRoot: Bool
    }

    /// `(st_dev, st_ino)`: the same directory reached through two paths (a symbolic link) has one identity.
    private struct FileIdentity: Hashable {
        var device: UInt64
        var inode: UInt64

        init(_ info: stat) {
            device = UInt64(info.st_dev)
            inode = UInt64(info.st_ino)
        }
    }

    /// What happened when one directory was to be watched.
    private enum WatchOutcome {
        case watched
        /// The directory is already watched under `path` (a symbolic link loop or a second path to it).
        case duplicate(of: [UInt8])
        /// The `errno` of the call that failed.
        case failed(Int32)
    }

    private let descriptor: Int32
    /// Where `read` puts events; aligned for `inotify_event`, like the buffer in inotify(7)'s example.
    private let buffer: UnsafeMutableRawBufferPointer
    private let followSymlinks: Bool
    private let logger: Logger

    private var directories: [Int32: Directory] = [:]
    private var watchByPath: [[UInt8]: Int32] = [:]
    private var watchByIdentity: [FileIdentity: Int32] = [:]
    /// Roots removed or moved away since the start, looked for again at every `poll`.
    private var lostRoots: [[UInt8]] = []
    /// Events found outside `poll` (while starting), handed out by the next `poll`.
    private var pending = Batch()
    private var warnedAboutWatchLimit = false

    /// Watches every directory below each root (recursively).
    ///
    /// Files already present are not reported: the caller scans once itself. The corresponding C functions are
    /// `inotify_init1` (with `IN_NONBLOCK | IN_CLOEXEC`) and `inotify_add_watch`.
    ///
    /// - Parameters:
    ///   - roots: the directories to watch; a trailing `/` is ignored.
    ///   - followSymlinks: whether symbolic links below the roots are followed (to files and to directories).
    ///   - logger: where unwatchable directories and the watch limit are reported.
    /// - Throws: `WatchError` when inotify cannot start or a root is not a readable directory. A subdirectory
    ///   that cannot be watched is logged and skipped instead (and, at the watch limit, reported as
    ///   `.rescanNeeded` by the first `poll`).
    package init(roots: [String], followSymlinks: Bool = false, logger: Logger) throws {
        let roots = roots.map { Self.withoutTrailingSlashes(Array($0.utf8)) }
        for root in roots { try Self.checkRoot(root) }

        let descriptor = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard descriptor >= 0 else {
            let code = errno
            let hint = code == EMFILE ? " (fs.inotify.max_user_instances reached)" : ""
            throw WatchError(.unavailable, "cannot start inotify: \(Self.errorText(code))\(hint)")
        }
        self.descriptor = descriptor
        self.buffer = .allocate(byteCount: Self.bufferSize, alignment: MemoryLayout<inotify_event>.alignment)
        self.followSymlinks = followSymlinks
        self.logger = logger

        // From here on deinit runs if this throws, so the descriptor is not leaked.
        var found = Batch()
        for root in roots {
            switch watchTree(root, isRoot: true, report: false, into: &found) {
            case .watched:
                break
            case .duplicate(let other):
                logger.debug(
                    "source directory is already watched through another root",
                    metadata: ["file.path": "\(Self.display(root))", "watch.path": "\(Self.display(other))"]
                )
            case .failed(let code):
                let text = "cannot watch \(Self.display(root)): \(Self.errorText(code))"
                switch code {
                case ENOSPC: throw WatchError(.watchLimit, text + " (fs.inotify.max_user_watches reached)")
                case EACCES, EPERM: throw WatchError(.unreadable, text)
                case ENOENT: throw WatchError(.noSuchDirectory, text)
                case ENOTDIR: throw WatchError(.notADirectory, text)
                default: throw WatchError(.other, text)
                }
            }
        }
        pending = found
        logger.debug("watching source directories", metadata: ["watch.directories": "\(directories.count)"])
    }

    deinit {
        close(descriptor)
        buffer.deallocate()
    }

    /// Number of directories watched (for logs/tests).
    package var watchedDirectoryCount: Int { directories.count }

    // MARK: - Waiting for events

    /// Waits at most `timeout` seconds for events and returns what arrived (maybe empty).
    ///
    /// Returns early as soon as at least one event is available (then drains whatever else is readable without
    /// waiting). New subdirectories (created or moved in) are watched as they appear, and the files already inside
    /// them (they may have been written before the watch existed) are reported as `.changed`, recursively.
    ///
    /// Each path appears at most once, at the place it first appeared, with its latest state: a file written
    /// a hundred times gives one `.changed`, a file deleted and created again gives `.changed`. The corresponding
    /// C functions are `poll` and `read`.
    ///
    /// - Parameter timeout: seconds to wait at most; 0 only collects what is already queued.
    /// - Returns: the events, in order of first appearance.
    package func poll(timeout: Double) -> [Event] {
        var batch = pending
        pending = Batch()
        lookForLostRoots(into: &batch)

        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(timeout > 0 ? min(timeout, Self.longestWait) : 0)
        while true {
            drain(into: &batch)
            // Events that lead to nothing (a directory's attributes, a stale watch) do not end the wait.
            if !batch.isEmpty { break }
            let remaining = clock.now.duration(to: deadline)
            guard remaining > .zero, waitForEvents(milliseconds: Self.milliseconds(remaining)) else { break }
        }
        return batch.events
    }

    /// Waits until the inotify descriptor is readable or the time is up; false when waiting failed.
    ///
    /// The corresponding C function is `poll`. An interrupted wait (`EINTR`) counts as a wake-up: the caller
    /// recomputes what is left of its timeout.
    private func waitForEvents(milliseconds: Int32) -> Bool {
        var request = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        if Glibc.poll(&request, 1, milliseconds) >= 0 { return true }
        let code = errno
        if code == EINTR { return true }
        logger.error("waiting for inotify events failed", metadata: ["error": "\(Self.errorText(code))"])
        return false
    }

    /// Reads every event queued now, without waiting. The corresponding C function is `read`.
    private func drain(into batch: inout Batch) {
        var reads = 0
        while reads < Self.maximumReadsPerPoll {
            let count = read(descriptor, buffer.baseAddress, buffer.count)
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                if code != EAGAIN {
                    logger.error("reading inotify events failed", metadata: ["error": "\(Self.errorText(code))"])
                    batch.rescan("reading inotify events failed: \(Self.errorText(code))")
                }
                return
            }
            if count == 0 { return }
            reads += 1
            parse(count, into: &batch)
        }
    }

    /// Splits the first `count` bytes of the buffer into `struct inotify_event` records and handles each.
    ///
    /// A record is the fixed 16-byte header (`wd`, `mask`, `cookie`, `len`) followed by `len` bytes of name,
    /// NUL-padded so that the next record starts aligned.
    private func parse(_ count: Int, into batch: inout Batch) {
        let bytes = UnsafeRawBufferPointer(buffer)
        let headerSize = MemoryLayout<inotify_event>.size
        var offset = 0
        while offset + headerSize <= count {
            // The kernel keeps records aligned; loadUnaligned just does not depend on it.
            let event = bytes.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
            let nameStart = offset + headerSize
            let nameEnd = min(nameStart + Int(event.len), count)
            let padded = UnsafeRawBufferPointer(rebasing: bytes[nameStart..<nameEnd])
            let name = Array(padded.prefix { $0 != 0 })
            handle(watch: event.wd, mask: event.mask, name: name, into: &batch)
            offset = nameEnd
        }
    }

    // MARK: - Handling one event

    /// Turns one inotify event (the watch it came from, its mask and the entry's name) into what `poll` reports.
    private func handle(watch: Int32, mask: UInt32, name: [UInt8], into batch: inout Batch) {
        if mask & Self.queueOverflow != 0 {
            logger.warning("inotify event queue overflowed; asking for a rescan")
            batch.rescan("inotify event queue overflowed (fs.inotify.max_queued_events); events were lost")
            return
        }
        // Events still queued for a watch already dropped (a directory moved away) are of no use.
        guard let directory = directories[watch] else { return }

        if mask & Self.ignored != 0 {
            forget(watch)
            if directory.isRoot {
                let reason = "the watch on source directory \(Self.display(directory.path)) ended"
                lose(root: directory.path, reason: reason, into: &batch)
            }
            return
        }
        if mask & Self.selfGone != 0 {
            // Below a root the parent's IN_DELETE or IN_MOVED_FROM already says it (or soon will).
            if directory.isRoot {
                let what = mask & Self.unmounted != 0 ? "was unmounted" : "was removed or moved"
                let reason = "source directory \(Self.display(directory.path)) \(what)"
                lose(root: directory.path, reason: reason, into: &batch)
            }
            return
        }
        guard !name.isEmpty else { return }
        let path = Self.join(directory.path, name)

        if mask & Self.gone != 0 {
            if watchByPath[path] != nil {
                // A directory deleted or moved (perhaps elsewhere in the tree, where IN_MOVED_TO watches it again).
                unwatchTree(path)
            } else if mask & Self.directoryFlag == 0 {
                batch.removed(path)
            }
            return
        }

        // IN_CREATE, IN_MODIFY, IN_CLOSE_WRITE, IN_MOVED_TO or IN_ATTRIB: look at what is there now.
        if mask & Self.directoryFlag == 0, batch.hasChanged(path) { return }
        // Gone again already: its IN_DELETE or IN_MOVED_FROM follows.
        guard let info = Self.status(of: path, follow: followSymlinks) else { return }
        if Self.isDirectory(info) {
            if let known = watchByPath[path] {
                if directories[known]?.identity == FileIdentity(info) { return }
                // Another directory took this name (renamed over it).
                unwatchTree(path)
            }
            switch watchTree(path, isRoot: false, report: true, into: &batch) {
            case .watched, .duplicate: break
            case .failed(let code): noteFailure(path, code, into: &batch)
            }
        } else if Self.isRegularFile(info) {
            batch.changed(path)
        }
    }

    // MARK: - Watches

    /// Watches `top` and every directory below it, each before it is listed so nothing written in between is
    /// missed. With `report`, the regular files found are added to `batch` as `.changed`.
    ///
    /// - Returns: what happened to `top`; failures below it are logged (and, at the watch limit, turned into
    ///   `.rescanNeeded`) here.
    private func watchTree(_ top: [UInt8], isRoot: Bool, report: Bool, into batch: inout Batch) -> WatchOutcome {
        guard let info = Self.status(of: top, follow: isRoot || followSymlinks) else { return .failed(errno) }
        guard Self.isDirectory(info) else { return .failed(ENOTDIR) }
        let outcome = watch(top, info: info, isRoot: isRoot)
        guard case .watched = outcome else { return outcome }

        var unlisted = [top]
        while let directory = unlisted.popLast() {
            let names: [[UInt8]]
            switch Self.entries(of: directory) {
            case .success(let found):
                names = found
            case .failure(let error):
                noteUnlistable(directory, error.code)
                continue
            }
            for name in names {
                let path = Self.join(directory, name)
                guard let info = Self.status(of: path, follow: followSymlinks) else { continue }
                if Self.isDirectory(info) {
                    switch watch(path, info: info, isRoot: false) {
                    case .watched:
                        unlisted.append(path)
                    case .duplicate(let other):
                        logger.debug(
                            "directory is already watched under another path",
                            metadata: ["file.path": "\(Self.display(path))", "watch.path": "\(Self.display(other))"]
                        )
                    case .failed(let code):
                        noteFailure(path, code, into: &batch)
                    }
                } else if report, Self.isRegularFile(info) {
                    batch.changed(path)
                }
            }
        }
        return outcome
    }

    /// Adds the watch for one directory whose `stat` is `info`. The corresponding C function is
    /// `inotify_add_watch`.
    private func watch(_ path: [UInt8], info: stat, isRoot: Bool) -> WatchOutcome {
        let identity = FileIdentity(info)
        if let existing = watchByIdentity[identity], let known = directories[existing] {
            // Still the same directory there, so this is a loop or an alias; otherwise the inode was reused.
            if known.path == path { return .duplicate(of: known.path) }
            if let again = Self.status(of: known.path, follow: known.isRoot || followSymlinks),
                FileIdentity(again) == identity
            {
                return .duplicate(of: known.path)
            }
        }
        // The roots are entered like `find -H` does; below them links are followed only when asked.
        let mask = isRoot || followSymlinks ? Self.directoryMask : Self.directoryMask | Self.dontFollow
        let watchID = path.withCPath { inotify_add_watch(descriptor, $0, mask) }
        guard watchID >= 0 else { return .failed(errno) }
        if let previous = directories[watchID], previous.path != path, watchByPath[previous.path] == watchID {
            watchByPath[previous.path] = nil
        }
        directories[watchID] = Directory(path: path, identity: identity, isRoot: isRoot)
        watchByPath[path] = watchID
        watchByIdentity[identity] = watchID
        return .watched
    }

    /// Removes the watches on `path` and every directory below it. The corresponding C function is
    /// `inotify_rm_watch`.
    private func unwatchTree(_ path: [UInt8]) {
        let prefix = path.last == Self.slash ? path : path + [Self.slash]
        for (watchID, directory) in directories where directory.path == path || directory.path.starts(with: prefix) {
            // EINVAL when the kernel has dropped the watch already (the directory was deleted): nothing to undo.
            _ = inotify_rm_watch(descriptor, watchID)
            forget(watchID)
        }
    }

    /// Drops what is known about one watch descriptor.
    private func forget(_ watchID: Int32) {
        guard let directory = directories.removeValue(forKey: watchID) else { return }
        if watchByPath[directory.path] == watchID { watchByPath[directory.path] = nil }
        if watchByIdentity[directory.identity] == watchID { watchByIdentity[directory.identity] = nil }
    }

    /// A root was removed, moved or unmounted: stop watching what was below it and look for it again later.
    private func lose(root: [UInt8], reason: String, into batch: inout Batch) {
        unwatchTree(root)
        if !lostRoots.contains(root) { lostRoots.append(root) }
        logger.warning(
            "source directory is gone; watching for it to come back",
            metadata: ["file.path": "\(Self.display(root))"]
        )
        batch.rescan(reason)
    }

    /// Watches again the roots that are back, reporting the files in them.
    private func lookForLostRoots(into batch: inout Batch) {
        guard !lostRoots.isEmpty else { return }
        var stillLost: [[UInt8]] = []
        for root in lostRoots {
            guard let info = Self.status(of: root, follow: true), Self.isDirectory(info) else {
                stillLost.append(root)
                continue
            }
            switch watchTree(root, isRoot: true, report: true, into: &batch) {
            case .watched, .duplicate:
                logger.notice(
                    "source directory is back; watching it again",
                    metadata: ["file.path": "\(Self.display(root))"]
                )
            case .failed(let code):
                // Tried again at the next poll, without a rescan request (a full watch table would ask each time).
                logger.debug(
                    "source directory is back but cannot be watched yet",
                    metadata: ["file.path": "\(Self.display(root))", "error": "\(Self.errorText(code))"]
                )
                stillLost.append(root)
            }
        }
        lostRoots = stillLost
    }

    /// Logs a directory that could not be watched; at the watch limit, also asks for a rescan.
    private func noteFailure(_ path: [UInt8], _ code: Int32, into batch: inout Batch) {
        let metadata: Logger.Metadata = ["file.path": "\(Self.display(path))", "error": "\(Self.errorText(code))"]
        switch code {
        case ENOSPC:
            if !warnedAboutWatchLimit {
                warnedAboutWatchLimit = true
                logger.warning(
                    "inotify watch limit reached (fs.inotify.max_user_watches); rescans must find the rest",
                    metadata: metadata
                )
            }
            batch.rescan(Self.watchLimitReason)
        case ENOENT, ENOTDIR:
            logger.debug("directory vanished before it could be watched", metadata: metadata)
        default:
            logger.warning("cannot watch directory; skipping it", metadata: metadata)
        }
    }

    /// Logs a directory that is watched but could not be listed.
    private func noteUnlistable(_ path: [UInt8], _ code: Int32) {
        let metadata: Logger.Metadata = ["file.path": "\(Self.display(path))", "error": "\(Self.errorText(code))"]
        if code == ENOENT || code == ENOTDIR {
            logger.debug("directory vanished before it could be listed", metadata: metadata)
        } else {
            logger.warning("cannot list directory; only rescans will find the files already in it", metadata: metadata)
        }
    }

    // MARK: - File system helpers

    /// Checks that a root is an existing directory this process can list and enter.
    ///
    /// The corresponding C functions are `stat` and `access`.
    private static func checkRoot(_ root: [UInt8]) throws {
        guard let info = status(of: root, follow: true) else {
            let code = errno
            let text = "cannot watch \(display(root)): \(errorText(code))"
            switch code {
            case ENOENT, ENOTDIR: throw WatchError(.noSuchDirectory, text)
            case EACCES, EPERM: throw WatchError(.unreadable, text)
            default: throw WatchError(.other, text)
            }
        }
        guard isDirectory(info) else {
            throw WatchError(.notADirectory, "cannot watch \(display(root)): not a directory")
        }
        guard root.withCPath({ access($0, R_OK | X_OK) }) == 0 else {
            throw WatchError(.unreadable, "cannot watch \(display(root)): \(errorText(errno))")
        }
    }

    /// `stat` (following symbolic links) or `lstat` of a path; nil with `errno` set when it fails.
    private static func status(of path: [UInt8], follow: Bool) -> stat? {
        var info = stat()
        let result = path.withCPath { follow ? stat($0, &info) : lstat($0, &info) }
        return result == 0 ? info : nil
    }

    private static func isDirectory(_ info: stat) -> Bool { (info.st_mode & S_IFMT) == S_IFDIR }

    private static func isRegularFile(_ info: stat) -> Bool { (info.st_mode & S_IFMT) == S_IFREG }

    /// The names in a directory, without `.` and `..`, or the `errno` of `opendir`.
    ///
    /// The corresponding C functions are `opendir`, `readdir` and `closedir`.
    private static func entries(of path: [UInt8]) -> Result<[[UInt8]], SystemError> {
        guard let stream = path.withCPath({ opendir($0) }) else { return .failure(SystemError(code: errno)) }
        defer { closedir(stream) }
        var names: [[UInt8]] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { bytes in Array(bytes.prefix { $0 != 0 }) }
            if name == [dot] || name == [dot, dot] { continue }
            names.append(name)
        }
        return .success(names)
    }

    private static func join(_ directory: [UInt8], _ name: [UInt8]) -> [UInt8] {
        directory.last == slash ? directory + name : directory + [slash] + name
    }

    /// `/data/logs/` → `/data/logs`; `/` stays.
    private static func withoutTrailingSlashes(_ path: [UInt8]) -> [UInt8] {
        var path = path
        while path.count > 1, path.last == slash { path.removeLast() }
        return path
    }

    private static func display(_ path: [UInt8]) -> String { PathText.escaped(path) }

    private static func errorText(_ code: Int32) -> String { String(cString: strerror(code)) }

    private static func milliseconds(_ duration: Duration) -> Int32 {
        let (seconds, attoseconds) = duration.components
        let total = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: total)
    }

    // MARK: - Constants

    private static let slash = UInt8(ascii: "/")
    private static let dot = UInt8(ascii: ".")
    /// At least 64 KiB: room for thousands of events per `read`.
    private static let bufferSize = 64 * 1024
    /// Bounds one `poll` when something writes without pause (each new event could otherwise keep it draining).
    private static let maximumReadsPerPoll = 64
    private static let longestWait: Double = 86_400
    private static let watchLimitReason =
        "inotify watch limit reached (fs.inotify.max_user_watches); some directories are not watched"

    private static let directoryMask =
        UInt32(IN_CREATE) | UInt32(IN_MODIFY) | UInt32(IN_CLOSE_WRITE) | UInt32(IN_MOVED_TO) | UInt32(IN_MOVED_FROM)
        | UInt32(IN_DELETE) | UInt32(IN_ATTRIB) | UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF) | UInt32(IN_ONLYDIR)
    private static let dontFollow = UInt32(IN_DONT_FOLLOW)
    private static let gone = UInt32(IN_DELETE) | UInt32(IN_MOVED_FROM)
    private static let selfGone = UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF) | UInt32(IN_UNMOUNT)
    private static let unmounted = UInt32(IN_UNMOUNT)
    private static let ignored = UInt32(IN_IGNORED)
    private static let queueOverflow = UInt32(IN_Q_OVERFLOW)
    private static let directoryFlag = UInt32(IN_ISDIR)

    // MARK: - Helper types

    /// An `errno` value, so it can be a `Result`'s failure.
    private struct SystemError: Error {
        var code: Int32
    }

    /// The events of one `poll`: one per path, at the place the path first appeared, with its latest state.
    private struct Batch {
        private(set) var events: [Event] = []
        private var slots: [[UInt8]: Int] = [:]
        private var reasons: Set<String> = []

        var isEmpty: Bool { events.isEmpty }

        mutating func changed(_ path: [UInt8]) { record(.changed(path), for: path) }

        mutating func removed(_ path: [UInt8]) { record(.removed(path), for: path) }

        /// Whether `path` is already reported as `.changed` (so it need not be looked at again).
        func hasChanged(_ path: [UInt8]) -> Bool {
            guard let slot = slots[path] else { return false }
            if case .changed = events[slot] { return true }
            return false
        }

        mutating func rescan(_ reason: String) {
            if reasons.insert(reason).inserted { events.append(.rescanNeeded(reason: reason)) }
        }

        private mutating func record(_ event: Event, for path: [UInt8]) {
            if let slot = slots[path] {
                events[slot] = event
            } else {
                slots[path] = events.count
                events.append(event)
            }
        }
    }
}

@available(*, unavailable)
extension FileWatcher: Sendable {}
