import Foundation

/// A system call that failed: which call, and the `errno` it set.
package struct SystemCallError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The C function's name, `openat`.
    package var call: String
    package var code: Int32

    package init(call: String, code: Int32) {
        self.call = call
        self.code = code
    }

    /// `openat: Permission denied`.
    package var description: String { "\(call): \(String(cString: strerror(code)))" }
}

/// The one way this package makes a system call that reports failure as -1 and `errno`.
package enum Syscall {
    /// Runs `body` again while it fails with `EINTR` (a signal arrived), and turns any other failure into a
    /// `SystemCallError` naming the call.
    ///
    /// - Parameters:
    ///   - name: The C function `body` calls, for the error.
    ///   - body: The call; -1 means it failed and `errno` says why.
    /// - Returns: What the call returned.
    @discardableResult
    package static func call<Result: FixedWidthInteger>(
        _ name: String,
        _ body: () -> Result
    ) throws(SystemCallError) -> Result {
        while true {
            let result = body()
            if result != -1 { return result }
            let code = errno
            if code != EINTR { throw SystemCallError(call: name, code: code) }
        }
    }
}
