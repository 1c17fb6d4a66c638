import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore

/// What a run settles at start: multipart uploads abandoned in the bucket, and the rows a killed run left
/// `uploading` when an earlier start could not ask S3 about them. Through the built binaries, against
/// PostgreSQL and the S3 server.
@Suite(.serialized) struct SettleCLITests {
    static func count(_ connection: PGConnection, _ sql: PGQuery) throws -> Int {
        try connection.execute(sql).int(0, 0) ?? 0
    }

    /// Rewrites the configuration file in place: the same project, another setting.
    static func edit(_ path: String, _ old: String, _ new: String) throws {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        try #require(text.contains(old), "\(old) is not in \(path)")
        try text.replacingOccurrences(of: old, with: new).write(toFile: path, atomically: true, encoding: .utf8)
    }

    @Test func anOpenMultipartUploadNoRowOwnsIsAbortedOnceOldEnoughAndRecorded() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.write("data/a.txt", "a file")
        let config = try configFile(scratch, s3, upload: #"{ "workers": 2 }"#)
        // As a process killed right after CreateMultipartUpload leaves it: the id never recorded.
        let client = try s3.client()
        let orphanKey = s3.prefix + "camera/orphan.bin"
        let orphan = try client.createMultipartUpload(bucket: s3.bucket, key: orphanKey)
        // Another project's prefix in the same bucket is not this project's to clean.
        let elsewhereKey = String(s3.prefix.dropLast()) + "-elsewhere/x.bin"
        let elsewhere = try client.createMultipartUpload(bucket: s3.bucket, key: elsewhereKey)
        defer { try? client.abortMultipartUpload(bucket: s3.bucket, key: elsewhereKey, uploadID: elsewhere) }

        // The default age is a day: an upload begun a moment ago may still be recorded by its process.
        let first = try runUpload(config, database, s3)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(try client.listMultipartUploads(bucket: s3.bucket, prefix: s3.prefix).map(\.uploadID) == [orphan])
        let connection = try database.connect()
        #expect(try Self.count(connection, "SELECT count(*) FROM multipart_aborts") == 0)

        try Self.edit(config, #""workers": 2"#, #""workers": 2, "abandoned_multipart_hours": 0"#)
        let second = try runUpload(config, database, s3)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(try client.listMultipartUploads(bucket: s3.bucket, prefix: s3.prefix).isEmpty)
        let aborted = try connection.execute(
            """
            SELECT a.bucket, a.s3_key, a.upload_id, a.initiated_at IS NOT NULL, a.aborted_by, p.name, d.name
            FROM multipart_aborts a JOIN projects p ON p.id = a.project_id JOIN devices d ON d.id = a.device_id
            """
        )
        #expect(aborted.rowCount == 1)
        #expect(aborted.string(0, 0) == s3.bucket)
        #expect(aborted.string(0, 1) == orphanKey)
        #expect(aborted.string(0, 2) == orphan)
        #expect(aborted.string(0, 3) == "t", "S3's Initiated time is recorded")
        #expect(aborted.string(0, 4)?.contains(":") == true, "hostname:pid of the run that aborted it")
        #expect(aborted.string(0, 6) == "test-rig")
        #expect(
            try client.listMultipartUploads(bucket: s3.bucket, prefix: elsewhereKey).map(\.uploadID) == [elsewhere]
        )
        #expect(second.stderr.contains("aborted a multipart upload no ledger row owns"))
        // The files were uploaded as ever, once.
        #expect(try bucketContents(s3).keys.sorted() == [s3.prefix + "a.txt"])
    }

    @Test func anInterruptedMultipartUploadARowOwnsIsLeftToResume() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        _ = try database.ledger()  // migrated before the test queries it
        let scratch = try Scratch()
        defer { scratch.remove() }
        let proxy = try OutageProxy(target: s3.endpoint)
        let file = try MultipartResumeCLITests.writeLargeFile(scratch, "data/radar.bin", mebibytes: 60)
        try scratch.write("data/small.txt", "small")
        let config = try configFile(
            scratch,
            s3,
            upload: MultipartResumeCLITests.multipartSettings(
                partMebibytes: 5,
                lanes: 1,
                extra: #", "abandoned_multipart_hours": 0"#
            ),
            endpoint: proxy.endpoint
        )
        let connection = try database.connect()

        // Killed after a few parts: an open upload whose id and parts the ledger records.
        let killed = try CLI.start(
            "upload",
            ["--config", config, "--database", database.url],
            environment: s3.environment
        )
        defer { kill(killed.process.processIdentifier, SIGKILL) }
        #expect(try eventually(within: 60) { try Self.count(connection, "SELECT count(*) FROM upload_parts") >= 2 })
        try proxy.down()
        kill(killed.process.processIdentifier, SIGKILL)
        _ = killed.wait()
        try proxy.up()
        let client = try s3.client()
        let open = try client.listMultipartUploads(bucket: s3.bucket, prefix: s3.prefix)
        #expect(open.count == 1)
        let killedSession = try Self.count(connection, "SELECT min(id) FROM sync_sessions")

        // A run that settles at start but does not upload the large file: the upload is owned, not abandoned.
        try Self.edit(config, #""source": { "path": "data" }"#, #""source": { "path": "data", "exclude": ["*.bin"] }"#)
        let settling = try runUpload(config, database, s3)
        #expect(settling.status == 0, "\(settling.stderr)")
        #expect(
            try client.listMultipartUploads(bucket: s3.bucket, prefix: s3.prefix).map(\.uploadID)
                == open.map(\.uploadID)
        )
        #expect(try Self.count(connection, "SELECT count(*) FROM multipart_aborts") == 0)

        // It resumes: `retry` of the killed session finishes the file on the same upload.
        let retry = try CLI.run(
            "retry",
            ["--session", String(killedSession), "--database", database.url],
            environment: s3.environment
        )
        #expect(retry.status == 0, "\(retry.stderr)")
        #expect(try bucketContents(s3)[s3.prefix + "radar.bin"]?.1 == (try MultipartResumeCLITests.fileSHA256(file)))
        #expect(try client.listMultipartUploads(bucket: s3.bucket, prefix: s3.prefix).isEmpty)
        let row = try connection.execute(
            "SELECT status, multipart_upload_id FROM file_uploads WHERE s3_key LIKE '%radar.bin' AND session_id = \(killedSession)"
        )
        #expect(row.string(0, 0) == "uploaded")
        #expect(row.string(0, 1) == open.first?.uploadID)
        #expect(try Self.count(connection, "SELECT count(*) FROM multipart_aborts") == 0)
    }

    /// A run killed mid-way leaves rows `uploading`; the next start cannot ask S3 about them (HEAD answers 500)
    /// and goes ahead, uploading those files itself; the start after that, with S3 healthy, must not count the
    /// dead session's rows `uploaded` on the objects the later session sent.
    @Test func aRunThatWentAheadWithoutSettlingNeverLeavesAFileCountedTwice() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        _ = try database.ledger()  // migrated before the test queries it
        let scratch = try Scratch()
        defer { scratch.remove() }
        let proxy = try OutageProxy(target: s3.endpoint)
        var files: [String: String] = [:]
        for index in 0..<120 {
            let text = String(repeating: "settle-\(index) ", count: 20 + index)
            try scratch.write("data/log-\(index).txt", text)
            files[s3.prefix + "log-\(index).txt"] = SHA256.hex(of: Array(text.utf8))
        }
        let config = try configFile(
            scratch,
            s3,
            upload: #"{ "workers": 4, "backoff_base_seconds": 0.05, "backoff_cap_seconds": 0.2 }"#,
            endpoint: proxy.endpoint
        )
        let connection = try database.connect()

        try proxy.latency(milliseconds: 150)
        let killed = try CLI.start(
            "upload",
            ["--config", config, "--database", database.url],
            environment: s3.environment
        )
        defer { kill(killed.process.processIdentifier, SIGKILL) }
        #expect(waitForUploads(connection, atLeast: 16) >= 16)
        kill(killed.process.processIdentifier, SIGKILL)
        _ = killed.wait()
        let uploadedByKilled = try Self.count(connection, "SELECT count(*) FROM file_uploads WHERE status = 'uploaded'")
        let leftUploading = try heldFiles(connection)
        try #require(leftUploading >= 20, "the killed run left \(leftUploading) files held")

        // Three in ten HEADs fail: the bucket check gets through, the settle of ~100 rows cannot.
        try proxy.latency(milliseconds: 0)
        try proxy.errors(fraction: 0.3, status: 500, method: "HEAD")
        let aheadAnyway = try runUpload(config, database, s3, ["--json"])
        #expect(aheadAnyway.status == 0, "\(aheadAnyway.stderr)")
        #expect(aheadAnyway.stderr.contains("cannot check what a stopped run left in flight"))
        #expect(try heldFiles(connection) == leftUploading)

        try proxy.clear()
        let healthy = try runUpload(config, database, s3, ["--json"])
        #expect(healthy.status == 0, "\(healthy.stderr)")

        try expectNothingLeftHalfDone(connection)
        let contents = try bucketContents(s3)
        #expect(contents.count == files.count)
        #expect(files.allSatisfy { contents[$0.key]?.1 == $0.value })
        // Each key exactly one `uploaded` row.
        let perKey = try connection.execute(
            """
            SELECT count(*) FILTER (WHERE status = 'uploaded'), count(DISTINCT s3_key) FILTER (WHERE status = 'uploaded')
            FROM file_uploads
            """
        )
        #expect(perKey.int(0, 0) == files.count, "uploaded rows")
        #expect(perKey.int(0, 1) == files.count, "keys with an uploaded row")
        // Every session's totals are its rows, and add up to the tree once.
        let sessions = try connection.execute(
            """
            SELECT s.id, s.status, s.total_files, s.files_uploaded, s.files_skipped, s.files_failed,
                   count(f.id), count(f.id) FILTER (WHERE f.status = 'uploaded'),
                   count(f.id) FILTER (WHERE f.status = 'skipped'),
                   count(f.id) FILTER (WHERE f.status IN ('failed', 'permanent_failure'))
            FROM sync_sessions s LEFT JOIN file_uploads f ON f.session_id = s.id
            GROUP BY s.id ORDER BY s.id
            """
        )
        #expect(sessions.rowCount == 3)
        var uploadedTotal = 0
        for row in 0..<sessions.rowCount {
            #expect(sessions.int(row, 2) == sessions.int(row, 6), "session \(row + 1): total_files")
            #expect(sessions.int(row, 3) == sessions.int(row, 7), "session \(row + 1): files_uploaded")
            #expect(sessions.int(row, 4) == sessions.int(row, 8), "session \(row + 1): files_skipped")
            #expect(sessions.int(row, 5) == sessions.int(row, 9), "session \(row + 1): files_failed")
            uploadedTotal += sessions.int(row, 3) ?? 0
        }
        #expect(uploadedTotal == files.count)
        // The killed session: what it sent itself, and the rest stored by the session that went ahead.
        #expect(sessions.string(0, 1) == "interrupted")
        #expect(sessions.int(0, 3) == uploadedByKilled)
        #expect(sessions.int(0, 4) == leftUploading)
        let message = "stored by session \(sessions.int(1, 0) ?? 0) %"
        let superseded = try connection.execute(
            """
            SELECT count(*) FROM file_uploads
            WHERE session_id = \(sessions.int(0, 0) ?? 0) AND status = 'skipped' AND skip_reason = 'ledger'
              AND error_message LIKE \(message)
            """
        )
        #expect(superseded.int(0, 0) == leftUploading)
        #expect(sessions.int(1, 3) == files.count - uploadedByKilled, "the session that went ahead sent the rest")
        #expect(sessions.int(2, 3) == 0, "the healthy run had nothing left to send")
    }

    /// 256 rows a killed run left `uploading` after their objects were sent: the next start asks S3 about them
    /// on `upload.workers` threads at once (at 100 ms a request, one at a time would take over 25 s) and
    /// records each `uploaded` without sending it again.
    @Test func theStartUpSettleAsksAboutManyRowsInParallel() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        for index in 0..<256 { try scratch.write("data/f-\(index).txt", "file \(index)") }
        let requestLog = scratch.url.appendingPathComponent("requests.log")
        let proxy = try OutageProxy(target: s3.endpoint, requestLog: requestLog)
        let config = try configFile(scratch, s3, upload: #"{ "workers": 8 }"#, endpoint: proxy.endpoint)
        let first = try runUpload(config, database, s3)
        #expect(first.status == 0, "\(first.stderr)")

        // The state a SIGKILL between the PUTs and the recording of their outcomes leaves: the objects are in the
        // bucket, the rows `uploading` for a process that is gone, its session `running`, nothing stored.
        let gone = Process()
        gone.executableURL = URL(fileURLWithPath: "/bin/true")
        try gone.run()
        gone.waitUntilExit()
        let holder = "\(ProcessInfo.processInfo.hostName):\(gone.processIdentifier)"
        let connection = try database.connect()
        try connection.execute(
            """
            UPDATE file_uploads SET status = 'uploading', claimed_by = \(holder), claimed_at = now(), etag = NULL,
                checksum_sha256 = NULL, finished_at = NULL
            """
        )
        try connection.execute(
            """
            UPDATE sync_sessions SET status = 'running', finished_at = NULL, pid = \(Int(gone.processIdentifier))
            """
        )
        try connection.execute("DELETE FROM stored_objects")

        try proxy.latency(milliseconds: 100)
        let start = Date()
        let second = try runUpload(config, database, s3, ["--json"])
        #expect(second.status == 0, "\(second.stderr)")
        let heads = try OutageProxy.forwardedRequests(loggedIn: requestLog).filter {
            $0.method == "HEAD" && $0.time >= start.timeIntervalSince1970 && $0.target.contains("/f-")
        }
        #expect(heads.count == 256)
        let span = (heads.map(\.time).max() ?? 0) - (heads.map(\.time).min() ?? 0)
        #expect(span < 12, "256 HEADs took \(span) s: not in parallel")
        let puts = try OutageProxy.forwardedRequests(loggedIn: requestLog).filter {
            $0.method == "PUT" && $0.time >= start.timeIntervalSince1970
        }
        #expect(puts.isEmpty, "\(puts.count) objects sent again")
        let sessions = try connection.execute(
            "SELECT status, files_uploaded, files_skipped FROM sync_sessions ORDER BY id"
        )
        #expect(sessions.string(0, 0) == "interrupted")
        #expect(sessions.int(0, 1) == 256, "each row confirmed from its own object")
        #expect(sessions.int(1, 2) == 256)
        try expectNothingLeftHalfDone(connection)
    }

    /// `master run` aborts an abandoned upload when it starts (and daily after: `AgentStateMachineTests`), under
    /// the prefix its key template gives, and records it with the agent's device.
    @Test func theAgentAbortsAnAbandonedUploadWhenItStarts() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        _ = try database.ledger()  // migrated before the test queries it
        let s3 = try TestS3()
        let scratch = try Scratch()
        defer { scratch.remove() }
        try FileManager.default.createDirectory(
            at: scratch.url.appendingPathComponent("terminal"),
            withIntermediateDirectories: true
        )
        let config = try scratch.write(
            "agent.yaml",
            """
            project: { name: settle-agent }
            device: vehicle-7
            s3: { bucket: \(s3.bucket), prefix: "\(s3.prefix.dropLast())", endpoint: "\(s3.endpoint)", region: \(s3.region) }
            sources:
              - { name: terminal, path: terminal }
            keys: { template: "{prefix}/{device}/{date}/{source}/{relpath}" }
            upload: { workers: 2, abandoned_multipart_hours: 0 }
            agent: { stability_seconds: 0.5 }
            """
        )
        let client = try s3.client()
        let key = s3.prefix + "vehicle-7/2026-12-06/terminal/run.mcap"
        let orphan = try client.createMultipartUpload(bucket: s3.bucket, key: key)
        // Another device's keys are outside this agent's prefix.
        let otherKey = s3.prefix + "vehicle-8/2026-12-06/terminal/run.mcap"
        let other = try client.createMultipartUpload(bucket: s3.bucket, key: otherKey)
        defer { try? client.abortMultipartUpload(bucket: s3.bucket, key: otherKey, uploadID: other) }

        let agent = try CLI.start(
            "master",
            ["run", "--config", config, "--database", database.url, "--log-level", "info"],
            environment: s3.environment
        )
        defer { kill(agent.process.processIdentifier, SIGKILL) }
        let connection = try database.connect()
        #expect(try eventually(within: 30) { try Self.count(connection, "SELECT count(*) FROM multipart_aborts") == 1 })
        kill(agent.process.processIdentifier, SIGTERM)
        let result = agent.wait()
        #expect(result.status == 0, "\(result.stderr)")

        let row = try connection.execute(
            "SELECT a.upload_id, d.name FROM multipart_aborts a JOIN devices d ON d.id = a.device_id"
        )
        #expect(row.string(0, 0) == orphan)
        #expect(row.string(0, 1) == "vehicle-7")
        #expect(try client.listMultipartUploads(bucket: s3.bucket, prefix: s3.prefix).map(\.uploadID) == [other])
    }
}
