import Foundation

/// A local file opened for upload: its descriptor, its size and mtime as `fstat` reports them, and
/// SHA-256 over any region of it.
///
/// Owns the descriptor; `deinit` closes it.
package final class LocalFile {
    package let descriptor: Int32
    /// For messages.
    package let displayPath: String

    /// What `fstat` says about the file, compared before and after reading to notice a file that changed.
    package struct Status: Equatable, Sendable {
        package var size: Int64
        package var mtime: Timestamp
        package var device: UInt64
        package var inode: UInt64

        /// What deleting the file later checks it against.
        package var identity: FileIdentity { FileIdentity(size: size, mtime: mtime, device: device, inode: inode) }
    }

    /// Opens `path` (the file system's bytes, so any name works) read-only.
    ///
    /// - Throws: `LocalFileError` `.missing` or `.unreadable`.
    package init(pathBytes: [UInt8]) throws(LocalFileError) {
        displayPath = PathText.escaped(pathBytes)
        let descriptor = pathBytes.withCPath { open($0, O_RDONLY | O_CLOEXEC) }
        guard descriptor >= 0 else {
            let reason = String(cString: strerror(errno))
            switch errno {
            case ENOENT, ENOTDIR: throw LocalFileError(.missing, "\(displayPath): file not found")
            default: throw LocalFileError(.unreadable, "\(displayPath): \(reason)")
            }
        }
        self.descriptor = descriptor
    }

    package convenience init(path: String) throws(LocalFileError) { try self.init(pathBytes: Array(path.utf8)) }

    /// Takes over a descriptor this process opened itself (a `CompressedCopy`'s unnamed file).
    package init(adopting descriptor: Int32, displayPath: String) {
        self.descriptor = descriptor
        self.displayPath = displayPath
    }

    deinit { close(descriptor) }

    /// Size and modification time now. The corresponding C function is `fstat`.
    package func status() throws(LocalFileError) -> Status {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            throw LocalFileError(.unreadable, "\(displayPath): \(String(cString: strerror(errno)))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw LocalFileError(.unreadable, "\(displayPath): not a regular file")
        }
        return Status(
            size: Int64(info.st_size),
            mtime: Timestamp(seconds: Int64(info.st_mtim.tv_sec), nanoseconds: Int64(info.st_mtim.tv_nsec)),
            device: UInt64(info.st_dev),
            inode: UInt64(info.st_ino)
        )
    }

    /// The first `length` bytes of the file, read into memory (small files only).
    package func contents(length: Int64) throws(LocalFileError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(length))
        let failure = bytes.withUnsafeMutableBytes { buffer in
            do throws(LocalFileError) {
                try read(into: buffer)
                return LocalFileError?.none
            } catch {
                return error
            }
        }
        if let failure { throw failure }
        return bytes
    }

    /// Fills `buffer` with the file's first `buffer.count` bytes.
    package func read(into buffer: UnsafeMutableRawBufferPointer) throws(LocalFileError) {
        var done = 0
        while done < buffer.count {
            let got: Int
            do {
                got = try Syscall.call("pread") {
                    pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(done))
                }
            } catch {
                throw LocalFileError(.unreadable, "\(displayPath): \(error)")
            }
            if got == 0 { throw LocalFileError(.changed, "\(displayPath): shrank while it was read") }
            done += got
        }
    }

    /// SHA-256 of `length` bytes from `offset`, each also fed to `also` (the whole file's digest while
    /// parts are hashed in order).
    package func sha256(offset: Int64, length: Int64, also: SHA256? = nil) throws(LocalFileError) -> [UInt8] {
        let digest = SHA256()
        // Sized to the data: most files are a few KiB, and a 1 MiB buffer would cost an mmap per file.
        let chunk = Int(min(Int64(1 << 20), max(length, 1)))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var done: Int64 = 0
        while done < length {
            let want = Int(min(Int64(chunk), length - done))
            let got: Int
            do {
                got = try Syscall.call("pread") { pread(descriptor, buffer.baseAddress, want, off_t(offset + done)) }
            } catch {
                throw LocalFileError(.unreadable, "\(displayPath): \(error)")
            }
            if got == 0 { throw LocalFileError(.changed, "\(displayPath): shrank while it was read") }
            let slice = UnsafeRawBufferPointer(rebasing: buffer[0..<got])
            digest.update(slice)
            also?.update(slice)
            done += Int64(got)
        }
        return digest.finalize()
    }
}

/// A local file that cannot be read as it was: gone, unreadable, or changed while it was read.
package struct LocalFileError: Error, Sendable, CustomStringConvertible {
    package enum Kind: Sendable, Equatable {
        case missing
        case unreadable
        case changed
        /// Not the file: the temporary space a copy of it goes to (a full or missing temporary directory).
        case scratchSpace
        /// A stop ended the reading (of a file being compressed) before its end.
        case stopped
    }

    package var kind: Kind
    /// The path and what went wrong, as `logs/a.txt: Permission denied`.
    package var message: String

    package init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    package var description: String { message }
}

extension Array where Element == UInt8 {
    /// Runs `body` with these path bytes as a NUL-terminated C string (file names need not be UTF-8, so a
    /// Swift `String` cannot carry them).
    @discardableResult
    package func withCPath<R, E: Error>(_ body: (UnsafePointer<CChar>) throws(E) -> R) throws(E) -> R {
        try (self + [0]).withUnsafeBufferPointer { buffer throws(E) in
            try buffer.withMemoryRebound(to: CChar.self) { characters throws(E) in try body(characters.baseAddress!) }
        }
    }

    /// Standard base64, as `x-amz-checksum-sha256` carries a digest.
    package var base64: String { Data(self).base64EncodedString() }
}
