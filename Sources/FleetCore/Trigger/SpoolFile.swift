import FleetSystem
import Foundation

/// An unlinked temporary file: written once from the start, then read by offset as often as needed.
///
/// The file loses its name as soon as it is created, so nothing is left behind however the process ends;
/// `deinit` closes the descriptor and the kernel frees the space. Writes are buffered, so appending many
/// small pieces costs few system calls.
package final class SpoolFile {
    package let descriptor: Int32
    /// Bytes appended so far, buffered ones included.
    package private(set) var length: Int64 = 0
    private var buffer: [UInt8] = []
    private let bufferLimit = 256 * 1024

    /// Creates the file in `directory`, readable by its owner only, and removes its name at once. The
    /// corresponding C functions are `open` (with `O_EXCL`) and `unlink`.
    ///
    /// - Throws: `TriggerError.Kind.payload` when the file cannot be created.
    package init(directory: String = NSTemporaryDirectory()) throws(TriggerError) {
        let folder = directory.hasSuffix("/") ? directory : directory + "/"
        let path = folder + "fleet-trigger-" + UUID().uuidString
        let descriptor = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw TriggerError(
                .payload,
                "cannot create a temporary file in \(folder): \(String(cString: strerror(errno)))"
            )
        }
        unlink(path)
        self.descriptor = descriptor
        buffer.reserveCapacity(bufferLimit + 4096)
    }

    deinit { close(descriptor) }

    /// Appends the UTF-8 bytes of `text`.
    package func append(_ text: String) throws(TriggerError) {
        buffer.append(contentsOf: text.utf8)
        length += Int64(text.utf8.count)
        if buffer.count >= bufferLimit { try flush() }
    }

    /// Writes out what is buffered and returns the whole file as a request body region.
    package func finish() throws(TriggerError) -> FileRegion {
        try flush()
        return FileRegion(descriptor: descriptor, offset: 0, length: length)
    }

    /// The corresponding C function is `write`.
    private func flush() throws(TriggerError) {
        var done = 0
        while done < buffer.count {
            do {
                done += try buffer.withUnsafeBytes { bytes throws(SystemCallError) in
                    try Syscall.call("write") { write(descriptor, bytes.baseAddress! + done, bytes.count - done) }
                }
            } catch {
                throw TriggerError(.payload, "cannot write the payload file: \(error)")
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }
}
