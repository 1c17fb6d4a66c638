import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore

/// The store acts on a request and its answer is lost on the way back (or, for a multipart upload, a later
/// request is told the upload does not exist). `upload` must find out what the bucket holds before it sends
/// anything again: every object written once for its ledger row — counted as versions in a versioned bucket —
/// byte for byte, recorded `uploaded`, and no multipart upload started twice or left open.
@Suite(.serialized) struct LostAnswerCLITests {
    /// A versioned bucket behind a proxy that logs every request, and a tree of files to upload to it.
    struct Rig {
        let s3: TestS3
        let scratch: Scratch
        let proxy: OutageProxy
        let requestLog: URL
        let bucket: String
        let config: String
        /// Relative path → SHA-256 of the bytes.
        var files: [String: String] = [:]

        init(upload: String) throws {
            s3 = try TestS3()
            scratch = try Scratch()
            requestLog = scratch.url.appendingPathComponent("requests.log")
            proxy = try OutageProxy(target: s3.endpoint, requestLog: requestLog)
            bucket = try versionedBucket(s3)
            config = try configFile(scratch, s3, upload: upload, endpoint: proxy.endpoint, bucket: bucket)
        }

        mutating func write(_ path: String, _ bytes: [UInt8]) throws {
            let url = scratch.url.appendingPathComponent("data/" + path)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(),
                withIntermediateDirectories: true
            )
            try Data(bytes).write(to: url)
            files[path] = SHA256.hex(of: bytes)
        }

        func upload(_ database: TestDatabase) throws -> CLIResult {
            try CLI.run(
                "upload",
                ["--config", config, "--database", database.url, "--json"],
                environment: s3.environment
            )
        }

        /// Every file once in the bucket as one version, byte for byte, no multipart upload open; the ledger
        /// records each `uploaded` with the file's checksum, and the session's totals count every file.
        func verify(_ connection: PGConnection) throws {
            let contents = try bucketContents(s3, bucket: bucket)
            let expected = Dictionary(uniqueKeysWithValues: files.map { (s3.prefix + $0.key, $0.value) })
            #expect(contents.count == expected.count, "objects in the bucket")
            let wrong = expected.filter { contents[$0.key]?.1 != $0.value }.map(\.key).sorted()
            #expect(wrong.isEmpty, "objects missing or not byte for byte the file: \(wrong.prefix(5))")
            let versions = try objectVersions(s3, bucket: bucket)
            let twice = versions.filter { $0.value != 1 }.map { "\($0.key) ×\($0.value)" }.sorted()
            #expect(twice.isEmpty, "keys written more than once: \(twice.count): \(twice.prefix(5))")
            #expect(versions.count == expected.count, "keys with a version")
            #expect(try s3.client().listMultipartUploads(bucket: bucket, prefix: s3.prefix).isEmpty)

            try expectNothingLeftHalfDone(connection)
            let rows = try connection.execute("SELECT s3_key, status, checksum_sha256 FROM file_uploads")
            #expect(rows.rowCount == files.count)
            var wrongRows: [String] = []
            for row in 0..<rows.rowCount {
                let key = rows.string(row, 0) ?? ""
                if rows.string(row, 1) != "uploaded" || rows.string(row, 2) != expected[key] {
                    wrongRows.append("\(key): \(rows.string(row, 1) ?? "")")
                }
            }
            #expect(wrongRows.isEmpty, "rows not uploaded with the file's checksum: \(wrongRows.sorted().prefix(5))")
            let totals = try connection.execute(
                "SELECT status, total_files, files_uploaded, files_failed FROM sync_sessions ORDER BY id DESC LIMIT 1"
            )
            #expect(totals.string(0, 0) == "completed")
            #expect(totals.int(0, 1) == files.count)
            #expect(totals.int(0, 2) == files.count)
            #expect(totals.int(0, 3) == 0)
        }

        /// How many multipart uploads were started for each key (CreateMultipartUpload requests forwarded).
        func multipartUploadsStarted() throws -> [String: Int] {
            var started: [String: Int] = [:]
            for request in try OutageProxy.forwardedRequests(loggedIn: requestLog)
            where request.method == "POST" && request.target.hasSuffix("?uploads=") {
                let path = request.target.split(separator: "?", maxSplits: 1)[0]
                started[String(path.dropFirst(bucket.count + 2)).removingPercentEncoding ?? "", default: 0] += 1
            }
            return started
        }

        func remove() { scratch.remove() }
    }

    static let settings = """
        { "workers": 4, "max_attempts": 30, "backoff_base_seconds": 0.05, "backoff_cap_seconds": 0.3,
          "give_up_after_seconds": 60, "multipart_threshold_mb": 8, "part_size_mb": 5, "part_concurrency": 2 }
        """

    /// 12 MiB: three parts of 5 MiB (two full, one of 2 MiB), every 4 KiB stamped so parts differ.
    static func largeFile(_ seed: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: seed), count: 12 * 1024 * 1024)
        for index in stride(from: 0, to: bytes.count, by: 4096) {
            bytes[index] = UInt8(truncatingIfNeeded: index / 4096)
        }
        return bytes
    }

    /// 300 files (small ones sent with Content-MD5, some above 256 KiB sent with a SHA-256 checksum) while the
    /// answers to 15 % of the PutObject requests are lost after the server stored the object.
    @Test func lostPutAnswersNeverWriteAnObjectTwice() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        var rig = try Rig(upload: Self.settings)
        defer { rig.remove() }
        for index in 0..<300 {
            let count = index % 25 == 0 ? 300 * 1024 + index : 40 + index * 3
            try rig.write(
                "vehicle/\(index % 7)/log-\(index).bin",
                (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }
            )
        }
        try rig.proxy.loseAnswers(fraction: 0.15, of: .put)
        let result = try rig.upload(database)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try rig.proxy.faults().lostAnswers >= 15, "too few answers were lost to show anything")
        try rig.verify(try database.connect())
    }

    /// Every CompleteMultipartUpload answer is lost after the server completed the object: the object is
    /// confirmed by its composite checksum, and no second multipart upload is started.
    @Test func lostCompleteAnswersAreConfirmedWithoutASecondUpload() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        var rig = try Rig(upload: Self.settings)
        defer { rig.remove() }
        for index in 0..<3 { try rig.write("drive/recording-\(index).mcap", Self.largeFile(index)) }
        try rig.proxy.loseAnswers(fraction: 1, of: .complete)
        let result = try rig.upload(database)
        #expect(result.status == 0, "\(result.stderr)")
        // libcurl sends a request again on a new connection when a reused one closes without an answer: each
        // Complete may reach the store twice, and both answers are lost.
        #expect(try rig.proxy.faults().lostAnswers >= 3)
        try rig.verify(try database.connect())
        let started = try rig.multipartUploadsStarted()
        #expect(started.count == 3 && started.values.allSatisfy { $0 == 1 }, "multipart uploads started: \(started)")
    }

    /// The store completes the object and answers `NoSuchUpload` (as one does to a Complete sent again after a
    /// lost answer): recorded `uploaded`, not `permanent_failure`, and the object is kept, not aborted.
    @Test func noSuchUploadForACompletedObjectIsRecordedUploaded() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        var rig = try Rig(upload: Self.settings)
        defer { rig.remove() }
        for index in 0..<2 { try rig.write("drive/camera-\(index).mcap", Self.largeFile(10 + index)) }
        try rig.proxy.noSuchUpload(next: 2)
        let result = try rig.upload(database)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try rig.proxy.faults().lostAnswers == 2)
        try rig.verify(try database.connect())
        let started = try rig.multipartUploadsStarted()
        #expect(started.count == 2 && started.values.allSatisfy { $0 == 1 }, "multipart uploads started: \(started)")
    }

    /// A run completed a multipart object and died before recording it: the next run settles the row by the
    /// object's composite checksum against the parts the ledger recorded, instead of sending the file again.
    @Test func aDeadRunsCompletedMultipartObjectIsConfirmedByItsRecordedParts() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        var rig = try Rig(upload: Self.settings)
        defer { rig.remove() }
        try rig.write("drive/lidar.mcap", Self.largeFile(20))
        let first = try rig.upload(database)
        #expect(first.status == 0, "\(first.stderr)")

        // As the ledger would be had the process been killed right after CompleteMultipartUpload.
        let dead = Process()
        dead.executableURL = URL(fileURLWithPath: "/bin/true")
        try dead.run()
        dead.waitUntilExit()
        let holder = "\(ProcessInfo.processInfo.hostName):\(dead.processIdentifier)"
        let connection = try database.connect()
        try connection.executeScript(
            """
            UPDATE file_uploads SET status = 'uploading', claimed_by = '\(holder)', claimed_at = now(), etag = NULL,
                   checksum_sha256 = NULL, version_id = NULL, finished_at = NULL;
            UPDATE sync_sessions SET status = 'running', finished_at = NULL, files_uploaded = 0, bytes_uploaded = 0,
                   hostname = '\(ProcessInfo.processInfo.hostName)', pid = \(dead.processIdentifier);
            DELETE FROM stored_objects;
            """
        )
        #expect(try connection.execute("SELECT count(*) FROM upload_parts").int(0, 0) == 3, "parts recorded")

        let second = try rig.upload(database)
        #expect(second.status == 0, "\(second.stderr)")
        let settled = try connection.execute(
            """
            SELECT f.status, f.checksum_sha256, s.status FROM file_uploads AS f JOIN sync_sessions AS s ON s.id = f.session_id
            WHERE f.session_id = (SELECT min(id) FROM sync_sessions)
            """
        )
        #expect(settled.string(0, 0) == "uploaded", "the dead run's row")
        #expect(settled.string(0, 1) == rig.files["drive/lidar.mcap"])
        #expect(settled.string(0, 2) == "interrupted")
        #expect(try rig.multipartUploadsStarted().values.sorted() == [1], "the file was sent again")
        #expect(try objectVersions(rig.s3, bucket: rig.bucket).values.sorted() == [1])
        try expectNothingLeftHalfDone(connection)
    }

    /// A file changed since its key was uploaded replaces the older object (sent on `If-Match` its ETag), once,
    /// even when every answer to its PutObject is lost: two versions for two ledger rows, the newer one the file.
    @Test func aChangedFileReplacesTheOlderObjectOnceEvenWhenItsAnswersAreLost() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        var rig = try Rig(upload: Self.settings)
        defer { rig.remove() }
        try rig.write("logs/can.log", Array("first version of the log".utf8))
        try rig.write("logs/gps.bin", (0..<(300 * 1024)).map { UInt8(truncatingIfNeeded: $0) })
        let first = try rig.upload(database)
        #expect(first.status == 0, "\(first.stderr)")

        Thread.sleep(forTimeInterval: 1.1)  // a new mtime
        try rig.write("logs/can.log", Array("second, longer version of the log".utf8))
        try rig.write("logs/gps.bin", (0..<(300 * 1024 + 7)).map { UInt8(truncatingIfNeeded: $0 &* 3) })
        try rig.proxy.loseAnswers(fraction: 1, of: .put)
        let second = try rig.upload(database)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(try rig.proxy.faults().lostAnswers >= 2)

        let contents = try bucketContents(rig.s3, bucket: rig.bucket)
        for (path, sha256) in rig.files {
            #expect(contents[rig.s3.prefix + path]?.1 == sha256, "\(path) is not the newer file")
        }
        #expect(try objectVersions(rig.s3, bucket: rig.bucket).values.sorted() == [2, 2])
        let connection = try database.connect()
        let rows = try connection.execute(
            "SELECT count(*) FILTER (WHERE status = 'uploaded'), count(*) FROM file_uploads"
        )
        #expect(rows.int(0, 0) == 4 && rows.int(0, 1) == 4, "one uploaded row per file and run")
        try expectNothingLeftHalfDone(connection)
    }

    /// A store without conditional writes answers them 501 NotImplemented: each worker writes without the
    /// condition from then on, every file is uploaded once, and the log says why.
    @Test func aStoreWithoutConditionalWritesGetsPlainWrites() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        var rig = try Rig(upload: Self.settings)
        defer { rig.remove() }
        for index in 0..<40 {
            let count = index % 10 == 0 ? 300 * 1024 + index : 100 + index
            try rig.write("can/\(index).bin", (0..<count).map { UInt8(truncatingIfNeeded: $0 &+ index) })
        }
        try rig.proxy.refuseConditionalWrites()
        let result = try rig.upload(database)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("the store does not implement conditional writes"), "\(result.stderr)")
        let refused = try rig.proxy.faults().errors
        #expect(refused >= 1 && refused <= 4, "one refusal per worker, then plain writes: \(refused)")
        try rig.verify(try database.connect())
    }
}
