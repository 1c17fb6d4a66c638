import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore
@testable import FleetLedger

struct JobSourceTests {
    /// The source claims ahead of the workers, on a queue of its own: after one file is taken, the ledger shows
    /// one more claim's worth held by this process, and no more; every file taken or put back is claimed once.
    @Test func claimsRunAheadOfTheWorkersByOneClaimAndNoMore() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let ledger = try database.ledger()
        let (sessionID, projectID, _) = try openTestSession(ledger, project: "survey", device: "rig-1")
        let files = (0..<1000).map { index in
            PlannedFile(
                source: "data",
                localPath: "/data/f\(index).wav",
                relativePath: "f\(index).wav",
                pathBytes: nil,
                bucket: "fleet-data",
                key: "raw/f\(index).wav",
                size: 10,
                mtime: Timestamp(seconds: 1_763_000_000)
            )
        }
        try ledger.recordFiles(files, sessionID: sessionID, projectID: projectID)
        let source = JobSource(
            ledger: SharedLedger(try database.ledger()),
            sessionID: sessionID,
            batchSize: 100,
            state: RunState(giveUpAfter: 60)
        )
        source.keepAhead { 50 }  // fewer in flight than a batch: claims stay at 100
        source.finishScan()
        source.release()

        var taken: [Int64] = []
        guard case .job(let first) = try source.claim() else {
            Issue.record("nothing claimed")
            return
        }
        taken.append(first.id)
        func claimed() throws -> Int {
            try ledger.connection.execute("SELECT count(*) FROM fleet_claimed_files(\(sessionID))").int(0, 0) ?? -1
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while try claimed() < 200, ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.01) }
        Thread.sleep(forTimeInterval: 0.2)  // time for a claim too many to show
        #expect(try claimed() == 200)  // one claim for the first file, one ahead of it

        while taken.count < 500, let job = source.buffered() { taken.append(job.id) }
        let left = source.drain()
        #expect(Set(taken).count == taken.count)
        #expect(Set(taken).isDisjoint(with: left.map(\.id)))
        #expect(try claimed() == taken.count + left.count)
        #expect(left.count < 200, "claims ran further ahead than a claim and a batch: \(left.count)")
    }
}
