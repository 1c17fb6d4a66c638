import FleetSystem
import FleetTestSupport
import Foundation
import Synchronization
import Testing

@testable import FleetCore

/// `retry` as a user runs it, against the real PostgreSQL and S3 server.
struct RetryCLITests {
    /// An upload cut off by an outage, then `retry --auto` once the server is back: everything ends up in the
    /// bucket byte for byte, the files the first run uploaded are not sent again, and the ledger counts every
    /// attempt.
    @Test func outageIsCompletedByAutoRetryWithoutUploadingAnythingTwice() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let proxy = try OutageProxy(target: s3.endpoint)
        for index in 0..<1200 { try scratch.write("data/d\(index % 10)/f\(index).bin", "retry-\(index)") }
        let config = try configFile(
            scratch,
            s3,
            upload: outageUploadSettings,
            endpoint: proxy.endpoint,
            sections: #""retry": { "rounds": 4, "round_backoff_base_seconds": 0.1, "round_backoff_cap_seconds": 0.2 }"#
        )

        let upload = try CLI.start(
            "upload",
            ["--config", config, "--database", database.url],
            environment: s3.environment
        )
        let connection = try database.connect()
        #expect(waitForUploads(connection, atLeast: 100) >= 100)
        try proxy.down()
        let first = upload.wait()
        #expect(first.status == 1, "\(first.stderr)")
        let sessionID = try #require(Int64(first.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        let before = try connection.execute(
            """
            SELECT count(*) FILTER (WHERE status = 'uploaded'), count(*) FILTER (WHERE status = 'failed'),
                   coalesce(sum(attempts) FILTER (WHERE status = 'failed'), 0)
            FROM file_uploads
            """
        )
        let uploadedFirst = try #require(before.int(0, 0))
        let failedFirst = try #require(before.int(0, 1))
        #expect(failedFirst > 0)
        #expect(uploadedFirst + failedFirst == 1200)
        let firstFinish = try connection.execute(
            "SELECT id, finished_at::text, etag FROM file_uploads WHERE status = 'uploaded' ORDER BY id"
        )

        try proxy.up()
        let retry = try CLI.run(
            "retry",
            ["--session", String(sessionID), "--auto", "--json", "--database", database.url],
            environment: s3.environment
        )

        #expect(retry.status == 0, "\(retry.stderr)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(retry.stdout.utf8)) as? [String: Any])
        #expect(summary["ending"] as? String == "all_uploaded")
        let session = try #require(summary["session"] as? [String: Any])
        #expect(session["status"] as? String == "completed")
        #expect(session["files_uploaded"] as? Int == 1200)
        #expect(session["files_failed"] as? Int == 0)

        // Byte for byte in the bucket, read with another client.
        let contents = try bucketContents(s3)
        #expect(contents.count == 1200)
        for index in [0, 599, 1199] {
            let key = "\(s3.prefix)d\(index % 10)/f\(index).bin"
            #expect(contents[key]?.1 == SHA256.hex(of: Array("retry-\(index)".utf8)), "\(key)")
        }
        // The ledger: all uploaded; what the first run uploaded untouched; the retried files show the first
        // run's attempts plus the retry's; each round recorded.
        let after = try connection.execute(
            """
            SELECT count(*) FILTER (WHERE status = 'uploaded'), coalesce(sum(attempts), 0)
            FROM file_uploads
            """
        )
        #expect(after.int(0, 0) == 1200)
        #expect((after.int(0, 1) ?? 0) >= (before.int(0, 2) ?? 0) + failedFirst + uploadedFirst)
        let unchanged = try connection.execute(
            "SELECT id, finished_at::text, etag FROM file_uploads WHERE id = ANY(\(PGTextArray((0..<firstFinish.rowCount).map { firstFinish.string($0, 0)! }))::bigint[]) ORDER BY id"
        )
        #expect(unchanged.rowCount == firstFinish.rowCount)
        for row in 0..<unchanged.rowCount {
            #expect(unchanged.string(row, 1) == firstFinish.string(row, 1))
            #expect(unchanged.string(row, 2) == firstFinish.string(row, 2))
        }
        let rounds = try connection.execute(
            "SELECT count(*), sum(files_uploaded), bool_and(finished_at IS NOT NULL) FROM retry_rounds WHERE session_id = \(sessionID)"
        )
        #expect((rounds.int(0, 0) ?? 0) >= 1)
        #expect(rounds.int(0, 1) == failedFirst)
        #expect(rounds.bool(0, 2) == true)
        #expect(try connection.execute("SELECT count(DISTINCT s3_key) FROM object_records").int(0, 0) == 1200)
    }

    /// Two retries of one session at once share the files between them: each file is uploaded by exactly one
    /// of them (its attempts grow by one, not two).
    @Test func twoRetriesAtOnceNeverUploadTheSameFile() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        for index in 0..<1500 { try scratch.write("data/f\(index).txt", "twice-\(index)") }
        let config = try configFile(scratch, s3, upload: #"{ "workers": 3 }"#)
        let upload = try CLI.run(
            "upload",
            ["--config", config, "--database", database.url],
            environment: s3.environment
        )
        #expect(upload.status == 0, "\(upload.stderr)")
        let sessionID = try #require(Int64(upload.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        // As if every file had failed on the network.
        let connection = try database.connect()
        try connection.execute(
            """
            UPDATE file_uploads SET status = 'failed', error_class = 'network', error_message = 'connection reset',
                etag = NULL, checksum_sha256 = NULL
            """
        )

        let runs = Mutex<[CLIResult]>([])
        let group = DispatchGroup()
        for index in 0..<2 {
            DispatchQueue(label: "retry-\(index)").async(group: group) {
                let result =
                    (try? CLI.run(
                        "retry",
                        ["--session", String(sessionID), "--database", database.url],
                        environment: s3.environment
                    ))
                    ?? CLIResult(status: -1, stdout: "", stderr: "could not start")
                runs.withLock { $0.append(result) }
            }
        }
        group.wait()

        for run in runs.withLock({ $0 }) { #expect(run.status == 0, "\(run.stderr)") }
        let rows = try connection.execute(
            """
            SELECT count(*) FILTER (WHERE status = 'uploaded'), count(*) FILTER (WHERE attempts = 2),
                   count(*) FILTER (WHERE checksum_sha256 IS NOT NULL)
            FROM file_uploads
            """
        )
        #expect(rows.int(0, 0) == 1500)
        #expect(rows.int(0, 1) == 1500)
        #expect(rows.int(0, 2) == 1500)
        let rounds = try connection.execute(
            "SELECT count(*), sum(files_attempted) FROM retry_rounds WHERE session_id = \(sessionID)"
        )
        #expect(rounds.int(0, 0) == 2)
        #expect(rounds.int(0, 1) == 1500)
        #expect(try connection.execute("SELECT status FROM sync_sessions").string(0, 0) == "completed")
    }

    /// A file deleted since the session is recorded as a permanent failure; the others are uploaded, and the run
    /// ends with exit 1 because a file is left failed.
    @Test func vanishedFileIsAPermanentFailureAndTheRestIsUploaded() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        for index in 0..<20 { try scratch.write("data/f\(index).txt", "v\(index)") }
        let config = try configFile(scratch, s3)
        let upload = try CLI.run(
            "upload",
            ["--config", config, "--database", database.url],
            environment: s3.environment
        )
        let sessionID = try #require(Int64(upload.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        let connection = try database.connect()
        try connection.execute("UPDATE file_uploads SET status = 'failed', error_class = 'timeout', etag = NULL")
        try FileManager.default.removeItem(atPath: scratch.url.appendingPathComponent("data/f7.txt").path)

        let retry = try CLI.run(
            "retry",
            ["--session", String(sessionID), "--database", database.url],
            environment: s3.environment
        )

        #expect(retry.status == 1, "\(retry.stderr)")
        #expect(retry.stderr.contains("round 1: 20 attempted, 19 uploaded, 1 failed"), "\(retry.stderr)")
        let missing = try connection.execute(
            "SELECT status, error_class, error_message FROM file_uploads WHERE rel_path = 'f7.txt'"
        )
        #expect(missing.string(0, 0) == "permanent_failure")
        #expect(missing.string(0, 1) == "file_missing")
        #expect(missing.string(0, 2)?.contains("file not found") == true)
        #expect(
            try connection.execute("SELECT count(*) FROM file_uploads WHERE status = 'uploaded'").int(0, 0) == 19
        )
        // Nothing left that a plain retry would take: a second one has nothing to do.
        let again = try CLI.run(
            "retry",
            ["--session", String(sessionID), "--database", database.url],
            environment: s3.environment
        )
        #expect(again.status == 1)
        #expect(again.stderr.contains("nothing to retry"), "\(again.stderr)")
    }

    /// The agent's next run (or another upload) stored a file this session had failed: retrying the session
    /// must not send it a second time.
    @Test func filesALaterSessionStoredAreSkippedNotSentAgain() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        for index in 0..<6 { try scratch.write("data/f\(index).log", "later-\(index)") }
        let config = try configFile(scratch, s3)
        let upload = try CLI.run(
            "upload",
            ["--config", config, "--database", database.url],
            environment: s3.environment
        )
        #expect(upload.status == 0, "\(upload.stderr)")
        // As if three of them had failed here and session 2 had stored them since.
        let connection = try database.connect()
        try connection.executeScript(
            """
            INSERT INTO sync_sessions (project_id, device_id, kind, status, hostname, pid, local_directory, finished_at)
            SELECT project_id, device_id, 'immediate', 'completed', hostname, pid, local_directory, now()
            FROM sync_sessions WHERE id = 1;
            UPDATE file_uploads SET status = 'failed', error_class = 'network', attempts = 3
            WHERE session_id = 1 AND rel_path IN ('f0.log', 'f1.log', 'f2.log');
            INSERT INTO file_uploads (session_id, project_id, source, local_path, rel_path, bucket, s3_key, size_bytes,
                                      mtime, checksum_sha256, etag, status, attempts, started_at, finished_at)
            SELECT 2, project_id, source, local_path, rel_path, bucket, s3_key, size_bytes, mtime, checksum_sha256,
                   etag, 'uploaded', 1, now(), now()
            FROM file_uploads WHERE session_id = 1 AND rel_path IN ('f0.log', 'f1.log', 'f2.log');
            """
        )

        let retry = try CLI.run(
            "retry",
            ["--session", "1", "--database", database.url],
            environment: s3.environment
        )
        #expect(retry.status == 0, "\(retry.stderr)")
        let rows = try connection.execute(
            "SELECT status, skip_reason, attempts FROM file_uploads WHERE session_id = 1 AND rel_path < 'f3' ORDER BY rel_path"
        )
        for row in 0..<rows.rowCount {
            #expect(rows.string(row, 0) == "skipped")
            #expect(rows.string(row, 1) == "ledger")
            #expect(rows.int(row, 2) == 3, "no new attempt")
        }
        #expect(rows.rowCount == 3)
    }

    @Test func unknownSessionExitsTwoWithAOneLineReason() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let result = try CLI.run("retry", ["--session", "987654", "--database", database.url])
        #expect(result.status == 2)
        #expect(result.reason == "retry: no session 987654 in the ledger")
    }

    @Test func roundsWithoutAutoIsAUsageError() throws {
        let result = try CLI.run("retry", ["--session", "1", "--rounds", "3"])
        #expect(result.status == 2)
        #expect(result.reason.contains("--rounds applies with --auto"), "\(result.reason)")
    }
}
