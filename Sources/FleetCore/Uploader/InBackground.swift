import Foundation

/// Work started on a thread of its own for a caller that needs its result a few steps later: the work's round
/// trips (connecting to the ledger, asking the bucket) overlap the caller's own instead of following them, which
/// with the servers 100 ms away is a few hundred milliseconds before the first file goes up.
///
/// `@unchecked Sendable`: `result` is written once, by the working thread before it signals `finished`, and
/// read only after waiting for that.
final class InBackground<Value>: @unchecked Sendable {
    private let finished = DispatchSemaphore(value: 0)
    private var result: Result<Value, any Error> = .failure(CancellationError())

    init(_ work: @escaping @Sendable () throws -> Value) {
        Thread.detachNewThread { [self] in
            result = Result { try work() }
            finished.signal()
        }
    }

    /// Waits until the work is done, and returns what it returned.
    ///
    /// - Throws: what the work threw.
    func value() throws -> Value {
        finished.wait()
        finished.signal()
        return try result.get()
    }
}
