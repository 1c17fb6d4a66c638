import Foundation

/// What a file was when it was read for upload: its size and mtime, and where known the device and inode that
/// name it (a file replaced by another of the same size and mtime has another inode).
package struct FileIdentity: Sendable, Equatable {
    package var size: Int64
    package var mtime: Timestamp
    package var device: UInt64?
    package var inode: UInt64?

    package init(size: Int64, mtime: Timestamp, device: UInt64? = nil, inode: UInt64? = nil) {
        self.size = size
        self.mtime = mtime
        self.device = device
        self.inode = inode
    }

    /// Whether `found` (as `fstatat` sees the file now) is this file: same size and mtime, and the same device
    /// and inode where this identity knows them.
    package func matches(_ found: FileIdentity) -> Bool {
        guard found.size == size, found.mtime == mtime else { return false }
        if let device, device != found.device { return false }
        if let inode, inode != found.inode { return false }
        return true
    }
}

/// Deleting local files safely: only regular files, only below a source directory, never through a symbolic
/// link; and tidying the directories left empty.
package enum LocalRemoval {
    /// What happened to a file meant for deletion.
    package enum Outcome: Sendable, Equatable {
        case removed
        /// Not there any more (nothing to delete).
        case vanished
        /// Another size or mtime than expected.
        case changed
        /// Another process has it open: a writer that paused may still append, and what it writes to a deleted
        /// file would never reach S3.
        case inUse
        /// A symbolic link, directory or other non-regular file now has that name.
        case notRegularFile
        /// A directory on the way below the source directory is a symbolic link.
        case linkOnPath
        /// The source directory itself cannot be opened (unmounted, say).
        case rootUnavailable
        /// The path is not below the source directory, or the system refused; the reason says which.
        case failed(String)

        /// Why a file stayed, for a log line.
        package var reason: String {
            switch self {
            case .removed: "removed"
            case .vanished: "already gone"
            case .changed: "it changed since it was read"
            case .inUse: "another process has it open"
            case .notRegularFile: "no longer a regular file"
            case .linkOnPath: "reached through a symbolic link"
            case .rootUnavailable: "its source directory cannot be opened"
            case .failed(let reason): reason
            }
        }
    }

    /// Removes `path` if it is still the regular file `expected` describes (size and mtime, and device and inode
    /// when known), reached from `root` without following a symbolic link.
    ///
    /// The source directory is opened as configured (it may itself be a link); each directory below it is
    /// opened with `O_NOFOLLOW`, relative to the one before. The file is examined with `fstatat` and
    /// `AT_SYMLINK_NOFOLLOW` (the `lstat` of that directory's entry) right before `unlinkat` removes it. The
    /// corresponding C functions are `openat`, `fstatat` and `unlinkat`.
    package static func removeRegularFile(_ path: [UInt8], root: [UInt8], expected: FileIdentity) -> Outcome {
        guard let components = relativeComponents(of: path, under: root) else {
            return .failed("not inside its source directory")
        }
        var directory: Int32
        do {
            directory = try root.withCPath { root throws(SystemCallError) in
                try Syscall.call("open") { open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
            }
        } catch {
            return .rootUnavailable
        }
        defer { close(directory) }
        for component in components.dropLast() {
            do {
                let next = try component.withCPath { name throws(SystemCallError) in
                    try Syscall.call("openat") {
                        openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    }
                }
                close(directory)
                directory = next
            } catch {
                // Why the step failed: a link (O_NOFOLLOW refused it), gone, or something else.
                guard let info = try? entryStatus(component, in: directory) else { return .vanished }
                if (info.st_mode & S_IFMT) == S_IFLNK { return .linkOnPath }
                if (info.st_mode & S_IFMT) != S_IFDIR { return .vanished }
                return .failed(error.description)
            }
        }
        let name = components[components.count - 1]
        let info: stat
        do {
            info = try entryStatus(name, in: directory)
        } catch {
            return error.code == ENOENT || error.code == ENOTDIR ? .vanished : .failed(error.description)
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else { return .notRegularFile }
        let found = FileIdentity(
            size: Int64(info.st_size),
            mtime: Timestamp(seconds: Int64(info.st_mtim.tv_sec), nanoseconds: Int64(info.st_mtim.tv_nsec)),
            device: UInt64(info.st_dev),
            inode: UInt64(info.st_ino)
        )
        guard expected.matches(found) else { return .changed }
        // A write lease is granted only while no other descriptor is open on the file; holding it, nobody can
        // open it for writing before the unlink. Where leases are not available (another owner without
        // CAP_LEASE, a file system without them) this check cannot tell and the identity check stands.
        let descriptor = try? name.withCPath { name throws(SystemCallError) in
            try Syscall.call("openat") { openat(directory, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) }
        }
        if let descriptor {
            defer { close(descriptor) }
            do {
                try Syscall.call("fcntl") { fcntl(descriptor, LocalRemoval.setLease, F_WRLCK) }
            } catch {
                if error.code == EAGAIN || error.code == EBUSY { return .inUse }
                return unlinkIfStill(found, name, in: directory, opened: descriptor)
            }
            defer { _ = fcntl(descriptor, LocalRemoval.setLease, F_UNLCK) }
            return unlinkIfStill(found, name, in: directory, opened: descriptor)
        }
        return unlinkIfStill(found, name, in: directory, opened: nil)
    }

    /// Unlinks `name` if the file opened (when it could be) and the entry are still the one examined: a file
    /// renamed over it since is another inode and stays.
    private static func unlinkIfStill(
        _ examined: FileIdentity,
        _ name: [UInt8],
        in directory: Int32,
        opened descriptor: Int32?
    ) -> Outcome {
        if let descriptor {
            var info = stat()
            guard (try? Syscall.call("fstat", { fstat(descriptor, &info) })) != nil,
                UInt64(info.st_dev) == examined.device, UInt64(info.st_ino) == examined.inode
            else { return .changed }
        }
        guard let info = try? entryStatus(name, in: directory) else { return .vanished }
        guard UInt64(info.st_dev) == examined.device, UInt64(info.st_ino) == examined.inode else { return .changed }
        return unlink(name, in: directory)
    }

    /// The entry `name` in `directory` itself, not what a link there points to. The corresponding C function
    /// is `fstatat` with `AT_SYMLINK_NOFOLLOW`.
    private static func entryStatus(_ name: [UInt8], in directory: Int32) throws(SystemCallError) -> stat {
        var info = stat()
        try name.withCPath { name throws(SystemCallError) in
            try Syscall.call("fstatat") { fstatat(directory, name, &info, AT_SYMLINK_NOFOLLOW) }
        }
        return info
    }

    /// `F_SETLEASE` (`F_LINUX_SPECIFIC_BASE + 0`), which Glibc's headers only declare under `_GNU_SOURCE`.
    static let setLease: Int32 = 1024

    /// The corresponding C function is `unlinkat`.
    private static func unlink(_ name: [UInt8], in directory: Int32) -> Outcome {
        do {
            try name.withCPath { name throws(SystemCallError) in
                try Syscall.call("unlinkat") { unlinkat(directory, name, 0) }
            }
            return .removed
        } catch {
            return error.code == ENOENT ? .vanished : .failed(error.description)
        }
    }

    /// Removes the directories above `path` that are left empty, from the innermost up, stopping at the first
    /// that is not empty (`rmdir` refuses it), at a source directory, or outside every source directory.
    /// The corresponding C function is `rmdir`.
    package static func removeEmptyParents(of path: [UInt8], sourceRoots: Set<[UInt8]>) {
        var directory = path
        while true {
            guard let slash = directory.lastIndex(of: UInt8(ascii: "/")), slash > 0 else { return }
            directory = Array(directory[..<slash])
            if sourceRoots.contains(directory) { return }
            guard sourceRoots.contains(where: { relativeComponents(of: directory, under: $0) != nil }) else { return }
            do {
                try directory.withCPath { path throws(SystemCallError) in try Syscall.call("rmdir") { rmdir(path) } }
            } catch {
                return
            }
        }
    }

    /// The longest of `roots` that `path` lies below.
    package static func root(containing path: [UInt8], among roots: [[UInt8]]) -> [UInt8]? {
        roots.filter { relativeComponents(of: path, under: $0) != nil }.max { $0.count < $1.count }
    }

    /// The names below `root` that lead to `path`; `nil` when it is not below `root` or takes a `.` or `..`
    /// step.
    package static func relativeComponents(of path: [UInt8], under root: [UInt8]) -> [[UInt8]]? {
        let slash = UInt8(ascii: "/")
        let isFileSystemRoot = root == [slash]
        guard path.count > root.count, path.starts(with: root), isFileSystemRoot || path[root.count] == slash else {
            return nil
        }
        let components = path[(isFileSystemRoot ? 1 : root.count + 1)...]
            .split(separator: slash)
            .map { Array($0) }
        let dot = UInt8(ascii: ".")
        guard !components.isEmpty, !components.contains(where: { $0 == [dot] || $0 == [dot, dot] }) else {
            return nil
        }
        return components
    }
}
