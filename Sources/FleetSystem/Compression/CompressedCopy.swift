import Foundation

/// A local file compressed with zstd into a temporary file of its own, uploaded in its place.
///
/// The copy is an unnamed file: it is created in a private directory (mode 0700, `fleet-upload-XXXXXX`) under
/// `TMPDIR`, else `/tmp`, and its name and the directory are removed as soon as it is open, so nothing is left
/// behind however the upload or the process ends; the space is freed when the copy is closed (`deinit`). While the
/// upload runs it takes the compressed size in that file system (memory, when it is a tmpfs).
///
/// The original is read once, in order, a piece at a time: each piece is hashed (the original's SHA-256, its
/// identity in the ledger) and compressed (`ZstdCompressor`: one thread, fixed parameters, so the same file at
/// the same level makes the same copy every time). Memory is the read buffer and the compressor's window, however
/// large the file. A file whose size or mtime changes meanwhile is `.changed`.
package final class CompressedCopy {
    /// The compressed bytes, opened for upload.
    package let file: LocalFile
    /// The size of `file`: what is sent.
    package let size: Int64
    /// The original as it was read.
    package let original: LocalFile.Status
    package let originalSHA256: [UInt8]

    /// The bytes read from the original per step.
    static let readSize = 1 << 20

    /// `TMPDIR`, else `/tmp`.
    package static var defaultDirectory: String {
        let variable = ProcessInfo.processInfo.environment["TMPDIR"] ?? ""
        return variable.isEmpty ? "/tmp" : variable
    }

    /// Compresses `source` at `level` into a new unnamed file under `directory`; `shouldEnd`, asked before each
    /// piece, ends it early (a stop).
    ///
    /// - Throws: `LocalFileError`: the original is gone, unreadable or changed while it was read, or
    ///   `.scratchSpace` when the copy cannot be made or written (the message names the directory), `.stopped`
    ///   when `shouldEnd` said so.
    package init(
        of source: LocalFile,
        level: Int,
        in directory: String = CompressedCopy.defaultDirectory,
        shouldEnd: () -> Bool = { false }
    )
        throws(LocalFileError)
    {
        let before = try source.status()
        let descriptor: Int32
        do {
            descriptor = try Self.unnamedFile(in: directory)
        } catch {
            throw LocalFileError(.scratchSpace, "\(source.displayPath): no temporary file in \(directory): \(error)")
        }
        let copy = LocalFile(adopting: descriptor, displayPath: "\(source.displayPath) (compressed copy)")
        let digest = SHA256()
        let buffer = UnsafeMutableRawBufferPointer.allocate(
            byteCount: Int(min(Int64(Self.readSize), max(before.size, 1))),
            alignment: 16
        )
        defer { buffer.deallocate() }
        var written: Int64 = 0
        do {
            let compressor = try ZstdCompressor(level: level, pledgedSize: before.size)
            var offset: Int64 = 0
            repeat {
                if shouldEnd() {
                    throw LocalFileError(.stopped, "\(source.displayPath): stopped while it was compressed")
                }
                let want = Int(min(Int64(buffer.count), before.size - offset))
                let got =
                    want == 0
                    ? 0
                    : try Syscall.call("pread") { pread(source.descriptor, buffer.baseAddress, want, off_t(offset)) }
                if want > 0, got == 0 {
                    throw LocalFileError(.changed, "\(source.displayPath): shrank while it was compressed")
                }
                let piece = UnsafeRawBufferPointer(rebasing: buffer[0..<got])
                digest.update(piece)
                offset += Int64(got)
                try compressor.compress(piece, last: offset == before.size) { out in
                    try Self.write(out, to: descriptor, at: written)
                    written += Int64(out.count)
                }
            } while offset < before.size
        } catch let error as LocalFileError {
            throw error
        } catch let error as SystemCallError where error.call == "pread" {
            throw LocalFileError(.unreadable, "\(source.displayPath): \(error)")
        } catch let error as SystemCallError where error.call == "pwrite" {
            throw LocalFileError(.scratchSpace, "\(source.displayPath): compressing into \(directory): \(error)")
        } catch {
            throw LocalFileError(.unreadable, "\(source.displayPath): compressing into \(directory): \(error)")
        }
        let after = try source.status()
        guard after == before else {
            throw LocalFileError(
                .changed,
                "\(source.displayPath) changed while it was compressed (size \(before.size) → \(after.size), mtime \(before.mtime) → \(after.mtime))"
            )
        }
        file = copy
        size = written
        original = before
        originalSHA256 = digest.finalize()
    }

    private static func write(
        _ bytes: UnsafeRawBufferPointer,
        to descriptor: Int32,
        at offset: Int64
    )
        throws(SystemCallError)
    {
        var done = 0
        while done < bytes.count {
            done += try Syscall.call("pwrite") {
                pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
            }
        }
    }

    /// A new file, read-write, that no name leads to: made in a private directory, then the name and the
    /// directory removed.
    private static func unnamedFile(in directory: String) throws(SystemCallError) -> Int32 {
        var template = Array("\(directory)/fleet-upload-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!).map { String(cString: $0) } }
        guard let made else { throw SystemCallError(call: "mkdtemp", code: errno) }
        defer { rmdir(made) }
        let path = made + "/copy.zst"
        let descriptor = try Syscall.call("open") { open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600) }
        unlink(path)
        return descriptor
    }
}
