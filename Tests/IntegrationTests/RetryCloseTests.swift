import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetLedger

/// A retried session's closing status is decided from its rows when it is written, not from totals read
/// before: two retries of one session finishing together must not close it `completed_with_errors` when every
/// file was uploaded.
struct RetryCloseTests {
    @Test func aCloseWaitingForAnotherRetrysCloseSeesTheFilesThatRetryRecorded() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let ledger = try database.ledger()
        let id = try openTestSession(ledger)
        let connection = try database.connect()
        for (index, status) in ["uploaded", "uploading"].enumerated() {
            try connection.execute(
                """
                INSERT INTO file_uploads (session_id, project_id, local_path, rel_path, bucket, s3_key, size_bytes,
                                          mtime, status, claimed_by)
                SELECT id, project_id, \("/data/f\(index)"), \("f\(index)"), 'fleet-data', \("raw/f\(index)"), 10,
                       now(), \(status), 'other-host:1'
                FROM sync_sessions WHERE id = \(id)
                """
            )
        }

        // The other retry: it records its file uploaded and closes the session, in one transaction that holds
        // the session's row until it commits, half a second after this retry began to close.
        let url = database.url
        let holding = DispatchSemaphore(value: 0)
        let committed = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            defer { committed.signal() }
            guard let other = try? PGConnection(conninfo: url) else {
                holding.signal()
                return
            }
            _ = try? other.execute("BEGIN")
            _ = try? other.execute("UPDATE file_uploads SET status = 'uploaded', claimed_by = NULL")
            _ = try? other.execute("SELECT 1 FROM sync_sessions FOR UPDATE")
            holding.signal()
            Thread.sleep(forTimeInterval: 0.5)
            _ = try? other.execute("COMMIT")
        }
        holding.wait()

        let status = try ledger.closeRetriedSession(id, interrupted: false)
        committed.wait()

        #expect(status == .completed)
        let session = try #require(try ledger.session(id))
        #expect(session.status == .completed)
        let totals = try connection.execute(
            "SELECT total_files, files_uploaded, files_failed FROM sync_sessions WHERE id = \(id)"
        )
        #expect(totals.int(0, 0) == 2)
        #expect(totals.int(0, 1) == 2)
        #expect(totals.int(0, 2) == 0)
    }

    @Test func aRetryThatWasInterruptedKeepsAnInterruptedSessionInterruptedUntilItsFilesAreDone() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let ledger = try database.ledger()
        let id = try openTestSession(ledger)
        let connection = try database.connect()
        try connection.execute(
            """
            INSERT INTO file_uploads (session_id, project_id, local_path, rel_path, bucket, s3_key, size_bytes, mtime,
                                      status)
            SELECT id, project_id, '/data/f', 'f', 'fleet-data', 'raw/f', 10, now(), 'pending'
            FROM sync_sessions WHERE id = \(id)
            """
        )
        _ = try ledger.closeSession(id, status: .interrupted)
        #expect(try ledger.closeRetriedSession(id, interrupted: true) == .interrupted)
        #expect(try ledger.closeRetriedSession(id, interrupted: false) == .completedWithErrors)
        try connection.execute("UPDATE file_uploads SET status = 'uploaded' WHERE session_id = \(id)")
        #expect(try ledger.closeRetriedSession(id, interrupted: true) == .completed)
    }

}
