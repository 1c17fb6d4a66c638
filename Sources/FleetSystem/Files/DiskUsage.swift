import Foundation

/// How full the file system holding a path is, counted the way `df` counts.
///
/// `usedPercent` is what emergency deletion compares with `warn_percent` and `act_percent`; `fileSystemID` lets
/// the agent measure sources that share a file system once.
package struct DiskUsage: Sendable, Equatable {
    /// The file system's size: `f_blocks × f_frsize`.
    package var totalBytes: Int64
    /// Blocks in use: `(f_blocks − f_bfree) × f_frsize`.
    package var usedBytes: Int64
    /// Free space an unprivileged process may use: `f_bavail × f_frsize` (the root reserve left out).
    package var availableBytes: Int64
    /// The device the path lies on (`st_dev`); equal for paths on the same file system.
    package var fileSystemID: UInt64

    package init(totalBytes: Int64, usedBytes: Int64, availableBytes: Int64, fileSystemID: UInt64) {
        self.totalBytes = totalBytes
        self.usedBytes = usedBytes
        self.availableBytes = availableBytes
        self.fileSystemID = fileSystemID
    }

    /// `df`'s Use%: used / (used + available) × 100, so a disk whose root reserve is all that is left reads 100.
    /// 0 for a file system with no blocks.
    package var usedPercent: Double {
        let usable = usedBytes + availableBytes
        return usable > 0 ? Double(usedBytes) / Double(usable) * 100 : 0
    }

    /// Measures the file system that holds `path`. The corresponding C functions are `statvfs` and `stat`.
    ///
    /// - Parameter path: Any file or directory on the file system; symbolic links are followed.
    /// - Throws: `DiskUsageError` with the path and the system's reason, as when the path does not exist.
    package static func of(path: String) throws(DiskUsageError) -> DiskUsage {
        var volume = statvfs()
        guard statvfs(path, &volume) == 0 else { throw DiskUsageError(path: path, code: errno) }
        var info = stat()
        guard stat(path, &info) == 0 else { throw DiskUsageError(path: path, code: errno) }
        let blockSize = UInt64(volume.f_frsize)
        func bytes(_ blocks: UInt64) -> Int64 {
            let product = blocks.multipliedReportingOverflow(by: blockSize)
            return product.overflow ? .max : Int64(clamping: product.partialValue)
        }
        return DiskUsage(
            totalBytes: bytes(UInt64(volume.f_blocks)),
            usedBytes: bytes(UInt64(volume.f_blocks) - min(UInt64(volume.f_bfree), UInt64(volume.f_blocks))),
            availableBytes: bytes(UInt64(volume.f_bavail)),
            fileSystemID: UInt64(info.st_dev)
        )
    }
}

/// The disk usage of a path could not be read.
///
/// `description` reads `disk usage of /data/ros: No such file or directory`.
package struct DiskUsageError: Error, CustomStringConvertible, Sendable, Equatable {
    package var path: String
    /// The `errno` value, as `ENOENT`.
    package var code: Int32
    /// `strerror`'s text for `code`.
    package var reason: String

    package init(path: String, code: Int32) {
        self.path = path
        self.code = code
        reason = String(cString: strerror(code))
    }

    package var description: String { "disk usage of \(path): \(reason)" }
}
