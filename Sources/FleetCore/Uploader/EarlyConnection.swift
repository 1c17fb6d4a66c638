import FleetLedger
import Foundation
import Logging

/// A ledger connection opened on a thread of its own, for a caller that needs it a few steps later: its round
/// trips (connecting, the schema check) overlap the caller's own instead of following them, which with the
/// ledger 100 ms away is half a second before the first file goes up.
///
/// `@unchecked Sendable`: `result` is written once by the connecting thread before `opened` is signalled, and
/// read only after waiting for it.
final class EarlyConnection: @unchecked Sendable {
    private let opened = DispatchSemaphore(value: 0)
    private var result: Result<Ledger, any Error> = .failure(CancellationError())

    init(url: String, logger: Logger) {
        Thread.detachNewThread { [self] in
            result = Result { try Ledger(url: url, logger: logger) }
            opened.signal()
        }
    }

    /// Waits until the connection is open, and returns it.
    ///
    /// - Throws: what connecting threw (`LedgerError`).
    func take() throws -> Ledger {
        opened.wait()
        opened.signal()
        return try result.get()
    }
}
