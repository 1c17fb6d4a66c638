import FleetLedger
import Foundation

/// The one ledger connection a run's threads share: the job source's claims, the result writer's batches and
/// heartbeats, the multipart journal's parts. One thread at a time uses it; the others wait for the lock.
///
/// Sharing keeps a whole upload at two connections whatever `upload.workers` and
/// `upload.part_concurrency` say: this one for the run, and the session's own, on which the scan records its
/// batches while this one claims and writes results (see docs/architecture.md). Each statement is short (a
/// claim, one batch of outcomes), so a thread seldom waits long.
///
/// `@unchecked Sendable`: the connection is only touched while `lock` is held. A body must not wait for
/// another lock that a thread holding this one could be waiting for: callers take their own lock first (the
/// job source's, the journal's), then this one, never the other way round.
package final class SharedLedger: @unchecked Sendable {
    private let lock = NSLock()
    private let ledger: Ledger

    package init(_ ledger: Ledger) { self.ledger = ledger }

    /// Runs `body` with the connection, holding the lock.
    package func use<T>(_ body: (Ledger) throws -> T) rethrows -> T {
        try lock.withLock { try body(ledger) }
    }
}
