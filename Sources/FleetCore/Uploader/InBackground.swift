import Foundation

/// Work started on a thread of its own for a caller that needs its result a few steps later: the work's round
/// trips (connecting to the ledger, asking the bucket) overlap the caller's own instead of following them, which
/// with the servers 100 ms away is a few hundred milliseconds before the first file goes up.
///
/// What the work returns goes to one caller (a connection, for instance, is not to be shared): the first
/// `value()` takes it, later ones throw `CancellationError`. Work nobody waits for runs to its end on its thread
/// and its result is then dropped (a connection opened for a run that failed before using it is closed).
///
/// `@unchecked Sendable`: `result` is written by the working thread before it signals `finished`, and after that
/// only by `value()` callers, one at a time (each waits for the signal and passes it on when done).
final class InBackground<Value>: @unchecked Sendable {
    private let finished = DispatchSemaphore(value: 0)
    private var result: Result<Value, any Error> = .failure(CancellationError())

    init(_ work: @escaping @Sendable () throws -> Value) {
        Thread.detachNewThread { [self] in
            result = Result { try work() }
            finished.signal()
        }
    }

    /// Waits until the work is done and returns what it returned, or throws what it threw; a second call throws
    /// `CancellationError`.
    func value() throws -> Value {
        finished.wait()
        defer {
            result = .failure(CancellationError())
            finished.signal()
        }
        return try result.get()
    }
}
