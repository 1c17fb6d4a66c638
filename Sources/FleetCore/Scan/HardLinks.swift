import Synchronization

/// The files with several names (hard links) a session's walk has taken, by device and inode.
///
/// Overlapping source directories are refused when the configuration loads; hard links are the other way one
/// file turns up under several names, in one source or in two. The first name the walk accepts is uploaded;
/// every further name of the same file is left out of the session (not recorded) and reported, so the bytes go
/// up once. Only files whose link count is above 1 are remembered, so memory grows with the hard-linked files,
/// not with the tree.
///
/// A class behind a `Mutex`, so one registry spans the scans of every source of a session.
package final class HardLinks: Sendable {
    private struct FileID: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    private let taken = Mutex<[FileID: String]>([:])

    package init() {}

    /// Takes `file`, found at `path`, unless another name of it was taken already.
    ///
    /// - Returns: `nil` when this is the file's first name (it is now taken); otherwise the path it was taken
    ///   under first.
    package func take(_ file: ScannedFile, path: String) -> String? {
        let id = FileID(device: file.device, inode: file.inode)
        return taken.withLock { taken in
            if let first = taken[id] { return first }
            taken[id] = path
            return nil
        }
    }
}
