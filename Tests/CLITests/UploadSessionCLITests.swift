import FleetAWS
import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore

/// `upload` end to end, as a user runs it: real PostgreSQL, real S3 server, results checked in the bucket
/// (read back with boto3, a different client) and in the ledger.
struct UploadSessionCLITests {
    @Test func awkwardTreeUploadsByteExactAndEveryRowIsUploaded() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let names = [
            "plain.wav", "with space.wav", "plus+sign.jpg", "100%.json", "café/日本語.mp4", "zero-bytes.bin",
            String(repeating: "deep/", count: 30) + "leaf.log", "a/b/c/d/e/f/g.txt",
        ]
        var expected: [String: URL] = [:]
        for (index, name) in names.enumerated() {
            let path = try scratch.write(
                "data/" + name,
                name == "zero-bytes.bin" ? "" : String(repeating: "x", count: 100 * index + 1)
            )
            expected[s3.prefix + name] = URL(fileURLWithPath: path)
        }
        let large = scratch.url.appendingPathComponent("data/large/200mib.bin")
        try FileManager.default.createDirectory(
            at: large.deletingLastPathComponent(),
            withIntermediateDirectories: true
        )
        #expect(FileManager.default.createFile(atPath: large.path, contents: nil))
        let handle = try FileHandle(forWritingTo: large)
        var block = [UInt8](repeating: 0, count: 1 << 20)
        for megabyte in 0..<200 {
            for index in stride(from: 0, to: block.count, by: 4096) {
                block[index] = UInt8(truncatingIfNeeded: megabyte &+ index)
            }
            handle.write(Data(block))
        }
        try handle.close()
        expected[s3.prefix + "large/200mib.bin"] = large
        let config = try configFile(
            scratch,
            s3,
            upload: #"{ "workers": 4, "multipart_threshold_mb": 64, "part_size_mb": 16 }"#
        )

        let result = try CLI.run(
            "upload",
            ["--config", config, "--json", "--database", database.url],
            environment: s3.environment
        )

        #expect(result.status == 0, "\(result.stderr)")
        let stored = try bucketContents(s3)
        #expect(Set(stored.keys) == Set(expected.keys))
        for (key, url) in expected {
            let size = (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? -2
            #expect(stored[key]?.0 == size, "size of \(key)")
            #expect(stored[key]?.1 == (try sha256(url)), "bytes of \(key)")
        }
        let rows = try database.connect().execute(
            """
            SELECT count(*), count(*) FILTER (WHERE status = 'uploaded' AND etag IS NOT NULL AND checksum_sha256 IS NOT NULL
                                               AND attempts = 1),
                   (SELECT count(DISTINCT s3_key) FROM object_records), (SELECT status FROM sync_sessions),
                   (SELECT concurrency FROM sync_sessions)
            FROM file_uploads
            """
        )
        #expect(rows.int(0, 0) == expected.count)
        #expect(rows.int(0, 1) == expected.count)
        #expect(rows.int(0, 2) == expected.count)
        #expect(rows.string(0, 3) == "completed")
        #expect(rows.int(0, 4) == 4, "a fixed upload.workers is recorded as the session's concurrency")
        let large256 = try database.connect().execute(
            "SELECT checksum_sha256 FROM file_uploads WHERE s3_key = \(s3.prefix + "large/200mib.bin")"
        )
        #expect(large256.string(0, 0) == (try sha256(large)))
    }

    /// A ledger 100 ms away must cost a session a few round trips per batch (claims, recording, results),
    /// never one per file: the run's own count, in the JSON summary, grows with batches.
    @Test func ledgerRoundTripsGrowWithBatchesNotWithFiles() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        var roundTrips: [Int] = []
        for (run, files) in [300, 3000].enumerated() {
            for index in 0..<files { _ = try scratch.write("run\(run)/data/f\(index).txt", "file \(index)") }
            let config = try scratch.write(
                "run\(run).json",
                """
                { "project": { "name": "round-trips-\(run)" },
                  "s3": { "bucket": "\(s3.bucket)", "prefix": "\(s3.prefix)run\(run)", "endpoint": "\(s3.endpoint)",
                          "region": "\(s3.region)" },
                  "source": { "path": "\(scratch.url.path)/run\(run)/data" } }
                """
            )
            let result = try CLI.run(
                "upload",
                ["--config", config, "--json", "--database", database.url],
                environment: s3.environment
            )
            #expect(result.status == 0, "\(result.stderr)")
            let summary = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
            #expect((summary?["totals"] as? [String: Any])?["uploaded_files"] as? Int == files)
            roundTrips.append(summary?["ledger_round_trips"] as? Int ?? -1)
        }
        // Ten times the files: a round trip per file would add 2,700; batches of a hundred or more add far fewer.
        #expect(roundTrips[0] > 0 && roundTrips[1] > 0, "\(roundTrips)")
        #expect(roundTrips[1] - roundTrips[0] <= 2700 / 10, "round trips for 300 and 3,000 files: \(roundTrips)")
    }

    /// `upload.max_bandwidth` holds back small bodies (sent from memory) and streamed ones alike, and every
    /// file still arrives whole: 3 MiB under a 1 MiB/s cap cannot take less than about three seconds.
    @Test func maxBandwidthHoldsUploadsBackAndEveryFileArrivesWhole() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        var expected: [String: URL] = [:]
        for index in 0..<32 {
            let path = try scratch.write("data/small-\(index).bin", String(repeating: "\(index % 10)", count: 32 << 10))
            expected[s3.prefix + "small-\(index).bin"] = URL(fileURLWithPath: path)
        }
        let large = try scratch.write("data/large.bin", String(repeating: "abcdefgh", count: (2 << 20) / 8))
        expected[s3.prefix + "large.bin"] = URL(fileURLWithPath: large)
        let config = try configFile(scratch, s3, upload: #"{ "workers": 8, "max_bandwidth": "1M" }"#)

        let result = try CLI.run(
            "upload",
            ["--config", config, "--json", "--database", database.url],
            environment: s3.environment
        )

        #expect(result.status == 0, "\(result.stderr)")
        let stored = try bucketContents(s3)
        #expect(Set(stored.keys) == Set(expected.keys))
        for (key, url) in expected { #expect(stored[key]?.1 == (try sha256(url)), "bytes of \(key)") }
        let summary = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        let seconds = summary?["duration_seconds"] as? Double ?? 0
        // 3 MiB at 1 MiB/s, less the one piece the cap lets go at once.
        #expect(seconds >= 2.9, "3 MiB under a 1 MiB/s cap took \(seconds) s")
    }

    /// Without `upload.workers` the run adjusts the files in flight itself, and records on the session the
    /// level it settled on (or had got to).
    @Test func autoConcurrencyUploadsEverythingAndRecordsItsLevel() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        for index in 0..<600 { try scratch.write("data/d\(index % 6)/f\(index).log", "line \(index)\n") }
        let config = try configFile(scratch, s3, upload: "{}")

        let result = try CLI.run(
            "upload",
            ["--config", config, "--json", "--database", database.url],
            environment: s3.environment
        )

        #expect(result.status == 0, "\(result.stderr)")
        #expect(try bucketContents(s3).count == 600)
        let rows = try database.connect().execute(
            """
            SELECT (SELECT concurrency FROM sync_sessions), count(*) FILTER (WHERE status = 'uploaded' AND attempts = 1)
            FROM file_uploads
            """
        )
        #expect((1...1024).contains(rows.int(0, 0) ?? 0), "concurrency \(rows.int(0, 0).map(String.init) ?? "NULL")")
        #expect(rows.int(0, 1) == 600)
    }

    @Test func secondRunUploadsNothingAndSaysSo() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        for index in 0..<40 { try scratch.write("data/d\(index % 4)/f\(index).wav", "x\(index)") }
        let config = try configFile(scratch, s3)

        let first = try CLI.run(
            "upload",
            ["--config", config, "--database", database.url],
            environment: s3.environment
        )
        let second = try CLI.run(
            "upload",
            ["--config", config, "--json", "--database", database.url],
            environment: s3.environment
        )

        #expect(first.status == 0, "\(first.stderr)")
        #expect(second.status == 0, "\(second.stderr)")
        let totals = try #require(try summary(second)["totals"] as? [String: Any])
        #expect(totals["uploaded_files"] as? Int == 0)
        #expect(totals["skipped_files"] as? Int == 40)
        let rows = try database.connect().execute(
            "SELECT count(*) FROM file_uploads WHERE session_id = 2 AND status = 'skipped' AND skip_reason = 'ledger'"
        )
        #expect(rows.int(0, 0) == 40)
        let plain = try CLI.run(
            "upload",
            ["--config", config, "--database", database.url],
            environment: s3.environment
        )
        #expect(plain.stderr.contains("Nothing to upload"))
        #expect(plain.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "3")
    }

    /// Retention drops old months of file rows; `fleet_keep_object_records` first moves what they record of the
    /// bucket to `stored_objects`, so the files still on disk are not sent again.
    @Test func filesOfADroppedMonthAreNotSentAgainOnceItsRecordsAreKept() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        for index in 0..<40 { try scratch.write("data/d\(index % 4)/f\(index).wav", "x\(index)") }
        let config = try configFile(scratch, s3)
        let first = try CLI.run(
            "upload",
            ["--config", config, "--database", database.url],
            environment: s3.environment
        )
        #expect(first.status == 0, "\(first.stderr)")

        let connection = try database.connect()
        let months = try connection.execute(
            """
            SELECT DISTINCT tableoid::regclass::text FROM file_uploads
            """
        )
        var kept = 0
        for row in 0..<months.rowCount {
            let month = try #require(months.string(row, 0))
            kept += try connection.execute("SELECT fleet_keep_object_records(\(month)::regclass)").int(0, 0) ?? 0
            try connection.executeScript("ALTER TABLE file_uploads DETACH PARTITION \(month); DROP TABLE \(month)")
        }
        #expect(kept == 40)
        #expect(try connection.execute("SELECT count(*) FROM file_uploads").int(0, 0) == 0)

        let second = try CLI.run(
            "upload",
            ["--config", config, "--json", "--database", database.url],
            environment: s3.environment
        )
        #expect(second.status == 0, "\(second.stderr)")
        let totals = try #require(try summary(second)["totals"] as? [String: Any])
        #expect(totals["uploaded_files"] as? Int == 0)
        #expect(totals["skipped_files"] as? Int == 40)
        #expect(try bucketContents(s3).count == 40)
    }

    @Test func objectsAnotherToolUploadedAreSkippedWhenComparingWithTheBucket() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        for index in 0..<10 { try scratch.write("data/f\(index).bin", String(repeating: "y", count: index + 1)) }
        let client = try s3.client()
        for index in 0..<4 {
            let file = try LocalFile(path: scratch.url.appendingPathComponent("data/f\(index).bin").path)
            _ = try client.uploadFile(file, bucket: s3.bucket, key: s3.prefix + "f\(index).bin")
        }
        let config = try configFile(scratch, s3, upload: #"{ "workers": 2, "compare_with_bucket": true }"#)

        let result = try CLI.run(
            "upload",
            ["--config", config, "--json", "--database", database.url],
            environment: s3.environment
        )

        #expect(result.status == 0, "\(result.stderr)")
        let rows = try database.connect().execute(
            """
            SELECT count(*) FILTER (WHERE status = 'skipped' AND skip_reason = 'bucket'),
                   count(*) FILTER (WHERE status = 'uploaded') FROM file_uploads
            """
        )
        #expect(rows.int(0, 0) == 4)
        #expect(rows.int(0, 1) == 6)
    }

    @Test func deleteAfterUploadRemovesOnlyRecordedFiles() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        for index in 0..<12 { try scratch.write("data/sub\(index % 3)/f\(index).log", "log \(index)") }
        let config = try configFile(
            scratch,
            s3,
            upload: #"{ "workers": 3, "delete_after_upload": true, "remove_empty_directories": true }"#
        )

        let result = try CLI.run(
            "upload",
            ["--config", config, "--database", database.url],
            environment: s3.environment
        )

        #expect(result.status == 0, "\(result.stderr)")
        let left = try FileManager.default.contentsOfDirectory(atPath: scratch.url.appendingPathComponent("data").path)
        #expect(left.isEmpty, "left behind: \(left)")
        #expect(FileManager.default.fileExists(atPath: scratch.url.appendingPathComponent("data").path))
        #expect(try bucketContents(s3).count == 12)
        let rows = try database.connect().execute(
            """
            SELECT count(*) FILTER (WHERE local_deleted_at IS NOT NULL),
                   (SELECT count(*) FROM local_deletions WHERE reason = 'after_upload' AND was_uploaded)
            FROM file_uploads
            """
        )
        #expect(rows.int(0, 0) == 12)
        #expect(rows.int(0, 1) == 12)
    }

    /// A source below `/var` (here `/var/tmp`) with `delete_after_upload`: refused before anything is recorded
    /// unless the source says `allow_deletion: true`, and then its files are uploaded and deleted.
    @Test func deleteAfterUploadBelowVarIsRefusedUnlessTheSourceAllowsDeletion() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let tree = try TemporaryTree(under: URL(fileURLWithPath: "/var/tmp"))
        defer { tree.remove() }
        for index in 0..<3 { try tree.file("f\(index).log", size: 10 + index) }
        let config = try configFile(scratch, s3, upload: #"{ "workers": 2, "delete_after_upload": true }"#)
        let text = try String(contentsOfFile: config, encoding: .utf8)
        let plain = #""source": { "path": "data" }"#
        let refused = try scratch.write(
            "refused.json",
            text.replacingOccurrences(of: plain, with: #""source": { "path": "\#(tree.root.path)" }"#)
        )
        let allowed = try scratch.write(
            "allowed.json",
            text.replacingOccurrences(
                of: plain,
                with: #""source": { "path": "\#(tree.root.path)", "allow_deletion": true }"#
            )
        )

        let refusal = try CLI.run(
            "upload",
            ["--config", refused, "--database", database.url],
            environment: s3.environment
        )

        #expect(refusal.status == 2)
        #expect(
            refusal.stderr
                == "upload: \(refused): upload.delete_after_upload: no source allows deletion ('\(tree.root.path)'"
                + " lies under /var); set source.allow_deletion: true to delete there\n"
        )
        #expect(try FileManager.default.contentsOfDirectory(atPath: tree.root.path).count == 3)
        #expect(try bucketContents(s3).isEmpty)

        let result = try CLI.run(
            "upload",
            ["--config", allowed, "--database", database.url],
            environment: s3.environment
        )

        #expect(result.status == 0, "\(result.stderr)")
        #expect(try bucketContents(s3).count == 3)
        #expect(try FileManager.default.contentsOfDirectory(atPath: tree.root.path).isEmpty)
        let rows = try database.connect().execute("SELECT count(*) FROM local_deletions WHERE reason = 'after_upload'")
        #expect(rows.int(0, 0) == 3)
    }

    @Test func deleteAfterUploadNeverDeletesFilesReachedThroughALinkOutOfTheSource() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.write("data/inside/a.log", "inside")
        let outside = [
            try scratch.write("outside/b.log", "outside b"), try scratch.write("outside/c.log", "outside c"),
        ]
        try FileManager.default.createSymbolicLink(
            atPath: scratch.url.appendingPathComponent("data/linked").path,
            withDestinationPath: scratch.url.appendingPathComponent("outside").path
        )
        let config = try configFile(
            scratch,
            s3,
            upload: #"{ "workers": 2, "delete_after_upload": true }"#,
            sections: #""scan": { "follow_symlinks": true }"#
        )

        let result = try CLI.run(
            "upload",
            ["--config", config, "--database", database.url],
            environment: s3.environment
        )

        #expect(result.status == 0, "\(result.stderr)")
        #expect(
            Set(try bucketContents(s3).keys)
                == [s3.prefix + "inside/a.log", s3.prefix + "linked/b.log", s3.prefix + "linked/c.log"]
        )
        #expect(!FileManager.default.fileExists(atPath: scratch.url.appendingPathComponent("data/inside/a.log").path))
        for path in outside { #expect(FileManager.default.fileExists(atPath: path), "deleted \(path)") }
        let rows = try database.connect().execute(
            """
            SELECT (SELECT count(*) FROM local_deletions),
                   (SELECT count(*) FROM file_uploads WHERE local_deleted_at IS NOT NULL),
                   (SELECT count(*) FROM file_uploads WHERE status = 'uploaded')
            """
        )
        #expect(rows.int(0, 0) == 1)
        #expect(rows.int(0, 1) == 1)
        #expect(rows.int(0, 2) == 3)
    }

    @Test func deleteAfterUploadDeletesNothingWhenTheLedgerCannotRecordIt() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let files = try (0..<6).map { try scratch.write("data/f\($0).log", "log \($0)") }
        let migrate = try CLI.run("master", ["migrate", "--database", database.url])
        #expect(migrate.status == 0, "\(migrate.stderr)")
        // The ledger accepts the uploads but refuses every deletion record.
        try database.refuse("INSERT", on: "local_deletions")
        let config = try configFile(scratch, s3, upload: #"{ "workers": 2, "delete_after_upload": true }"#)

        let result = try CLI.run(
            "upload",
            ["--config", config, "--database", database.url],
            environment: s3.environment
        )

        #expect(try bucketContents(s3).count == 6)
        for path in files { #expect(FileManager.default.fileExists(atPath: path), "deleted \(path)") }
        #expect(result.stderr.contains("the ledger cannot record their deletion"), "\(result.stderr)")
        let rows = try database.connect().execute(
            """
            SELECT count(*) FILTER (WHERE status = 'uploaded'), count(*) FILTER (WHERE local_deleted_at IS NOT NULL)
            FROM file_uploads
            """
        )
        #expect(rows.int(0, 0) == 6)
        #expect(rows.int(0, 1) == 0)
    }

    @Test func missingBucketExitsThreeWithoutOpeningASession() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.write("data/a.wav", "a")
        let config = try configFile(scratch, s3)

        let result = try CLI.run(
            "upload",
            ["--config", config, "--bucket", "fleet-no-such-bucket", "--database", database.url],
            environment: s3.environment
        )

        #expect(result.status == 3)
        #expect(result.reason.contains("no_such_bucket"), "\(result.stderr)")
        #expect(try database.connect().execute("SELECT count(*) FROM sync_sessions").int(0, 0) == 0)
    }

    @Test func serverKilledMidRunLeavesTransientFailuresAndExitOne() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        // A server of this test's own, to kill.
        let serverDirectory = scratch.url.appendingPathComponent("s3").path
        let script = repositoryScript("s3.sh")
        let start = try CLI.runTool(script, ["start", serverDirectory], environment: ["FLEET_S3_BUCKETS": s3.bucket])
        defer { _ = try? CLI.runTool(script, ["stop", serverDirectory]) }
        let endpoint = try #require(
            start.stdout.split(separator: "\n").first { $0.contains("FLEET_TEST_S3_ENDPOINT") }
                .map { String($0.split(separator: "'")[1]) }
        )
        for index in 0..<1500 { try scratch.write("data/d\(index % 10)/f\(index).bin", "z\(index)") }
        let config = try configFile(
            scratch,
            s3,
            upload:
                #"{ "workers": 2, "max_attempts": 3, "backoff_base_seconds": 0.05, "backoff_cap_seconds": 0.2, "give_up_after_seconds": 2 }"#,
            endpoint: endpoint
        )

        let run = try CLI.start(
            "upload",
            ["--config", config, "--json", "--database", database.url],
            environment: s3.environment
        )
        let connection = try database.connect()
        let uploaded = waitForUploads(connection, atLeast: 100)
        _ = try CLI.runTool(script, ["stop", serverDirectory])
        let result = run.wait()

        #expect(uploaded >= 100)
        #expect(result.status == 1, "\(result.stderr)")
        let transientClasses = S3Error.Kind.allCases.filter { S3Error($0, "").isTransient }.map { "'\($0.rawValue)'" }
            .joined(separator: ", ")
        let rows = try connection.execute(
            PGQuery(
                unsafeSQL: """
                    SELECT (SELECT status FROM sync_sessions),
                           count(*) FILTER (WHERE status = 'failed' AND error_class IN (\(transientClasses))),
                           count(*) FILTER (WHERE status = 'failed' AND attempts >= 1),
                           count(*) FILTER (WHERE status IN ('uploading', 'pending')),
                           count(*) FILTER (WHERE status = 'uploaded')
                    FROM file_uploads
                    """
            )
        )
        #expect(rows.string(0, 0) == "completed_with_errors")
        #expect((rows.int(0, 1) ?? 0) > 0)
        #expect((rows.int(0, 2) ?? 0) > 0)
        #expect(rows.int(0, 3) == 0)
        let breakdown = try connection.execute(
            "SELECT status || '/' || coalesce(error_class, '-') || '=' || count(*) FROM file_uploads GROUP BY status, error_class"
        )
        #expect(
            (rows.int(0, 4) ?? 0) + (rows.int(0, 1) ?? 0) == 1500,
            "\((0..<breakdown.rowCount).compactMap { breakdown.string($0, 0) })"
        )
    }

    @Test func interruptFinishesInFlightFilesAndLeavesNothingUploading() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        for index in 0..<3000 { try scratch.write("data/d\(index % 10)/f\(index).bin", "i\(index)") }
        let config = try configFile(scratch, s3, upload: #"{ "workers": 2 }"#)

        let run = try CLI.start(
            "upload",
            ["--config", config, "--json", "--database", database.url],
            environment: s3.environment
        )
        let connection = try database.connect()
        _ = waitForUploads(connection, atLeast: 50)
        kill(run.process.processIdentifier, SIGINT)
        let result = run.wait()

        #expect(result.status == 1, "\(result.stderr)")
        let rows = try connection.execute(
            """
            SELECT (SELECT status FROM sync_sessions), count(*) FILTER (WHERE status = 'uploading'),
                   count(*) FILTER (WHERE status = 'uploaded'), count(*) FILTER (WHERE status = 'pending')
            FROM file_uploads
            """
        )
        #expect(rows.string(0, 0) == "interrupted")
        #expect(rows.int(0, 1) == 0)
        #expect((rows.int(0, 2) ?? 0) < 3000)
        // Every uploaded row is in the bucket; nothing else is.
        #expect(try bucketContents(s3).count == rows.int(0, 2))
    }
}
