import Foundation
import Synchronization

/// Standard output and standard error, written with `write(2)` and checked.
///
/// Foundation's `FileHandle.write` traps when the write fails (a full device, a closed descriptor), which
/// killed a command after its session was recorded; `print` buffers and loses the error at exit, so a
/// session id written to a full disk was gone while the command said 0. Every line a command prints goes
/// through here instead: a failed write is remembered (the first one), the command goes on (the ledger's
/// outcome stands), and `FleetCommand.main` turns a run that would have exited 0 or 1 into exit 3 with the
/// reason. SIGPIPE is ignored by `main`, so a reader that went away (`upload … | head -1`) is a failed write
/// (`EPIPE`), never a killed run.
package enum StandardStreams {
    /// The first write that failed: `standard output: No space left on device`.
    private static let failed = Mutex<String?>(nil)

    /// Writes `text` and a newline to standard output.
    package static func printLine(_ text: String) { write(text + "\n", to: STDOUT_FILENO) }

    /// Writes `text` and a newline to standard error.
    package static func printError(_ text: String) { write(text + "\n", to: STDERR_FILENO) }

    /// Writes `text` to standard error as it is (progress lines that redraw themselves).
    package static func writeError(_ text: String) { write(text, to: STDERR_FILENO) }

    /// Which stream failed first and why; `nil` while every write succeeded.
    package static var failure: String? { failed.withLock { $0 } }

    /// Writes all of `text` to `descriptor`, in as few calls as the kernel allows; lines from several threads
    /// stay whole up to the pipe's atomic size. Interrupted calls are retried; a non-blocking descriptor is
    /// waited for.
    private static func write(_ text: String, to descriptor: Int32) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Foundation.write(descriptor, $0.baseAddress, $0.count) }
            if written >= 0 {
                offset += written
                continue
            }
            let code = errno
            if code == EINTR { continue }
            if code == EAGAIN || code == EWOULDBLOCK {
                var ready = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                _ = poll(&ready, 1, 1000)
                continue
            }
            let name = descriptor == STDOUT_FILENO ? "standard output" : "standard error"
            let reason = "cannot write to \(name): \(String(cString: strerror(code)))"
            failed.withLock { first in first = first ?? reason }
            return
        }
    }
}

/// Writes one line to stderr (checked, see `StandardStreams`).
package func standardError(_ line: String) {
    StandardStreams.printError(line)
}

/// Writes one line to stdout (checked, see `StandardStreams`): what a command prints for scripts.
package func standardOutput(_ text: some CustomStringConvertible) {
    StandardStreams.printLine(text.description)
}
