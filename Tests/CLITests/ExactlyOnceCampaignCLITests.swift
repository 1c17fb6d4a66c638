import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore

/// Everything at once, as a vehicle on a bad link lives it: answers to PutObject and CompleteMultipartUpload lost
/// after the store acted (15 % each), a dozen SIGKILLs at random moments, some with every connection cut first,
/// local deletion after upload on, a versioned bucket. Runs until one ends cleanly; then every file is in the
/// bucket byte for byte as exactly one version, no multipart upload is open, every local file is deleted, each
/// key has one `uploaded` row, and every session's totals are its rows. `scripts/soak.sh` is the long version
/// for the agent.
@Suite(.serialized) struct ExactlyOnceCampaignCLITests {
    static let kills = 12

    @Test func lostAnswersKillsAndCutsEndWithEveryFileOnceAndEveryTotalRight() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        _ = try database.ledger()  // migrated before the test queries it
        let s3 = try TestS3()
        let scratch = try Scratch()
        defer { scratch.remove() }
        let proxy = try OutageProxy(target: s3.endpoint)
        let bucket = try versionedBucket(s3)
        let config = try configFile(
            scratch,
            s3,
            upload: """
                { "workers": 4, "max_attempts": 30, "backoff_base_seconds": 0.05, "backoff_cap_seconds": 0.3,
                  "give_up_after_seconds": 60, "multipart_threshold_mb": 8, "part_size_mb": 5, "part_concurrency": 2,
                  "delete_after_upload": true, "abandoned_multipart_hours": 0 }
                """,
            endpoint: proxy.endpoint,
            bucket: bucket
        )
        // Relative path → SHA-256: 300 small files of 40 B to 300 KiB and four of 12 MiB (three parts each).
        var files: [String: String] = [:]
        for index in 0..<304 {
            let count = index >= 300 ? 12 << 20 : (index % 30 == 0 ? 300 * 1024 + index : 40 + index * 7)
            var bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: count)
            for offset in stride(from: 0, to: count, by: 4096) {
                bytes[offset] = UInt8(truncatingIfNeeded: offset >> 12)
            }
            let path = "vehicle/\(index % 5)/\(index >= 300 ? "bag" : "log")-\(index).bin"
            let url = scratch.url.appendingPathComponent("data/" + path)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(),
                withIntermediateDirectories: true
            )
            try Data(bytes).write(to: url)
            files[path] = SHA256.hex(of: bytes)
        }
        try proxy.loseAnswers(fraction: 0.15, of: .put)
        try proxy.loseAnswers(fraction: 0.15, of: .complete)
        try proxy.latency(milliseconds: 25)  // a link far enough away that the kills land while files are in the air
        let arguments = ["--config", config, "--database", database.url, "--json"]

        var generator = SystemRandomNumberGenerator()
        for kill in 0..<Self.kills {
            let run = try CLI.start("upload", arguments, environment: s3.environment)
            Thread.sleep(forTimeInterval: .random(in: 0.5...3, using: &generator))
            if kill % 3 == 1 {
                try proxy.down()  // every connection cut, then the process dies with its requests in the air
                Thread.sleep(forTimeInterval: 0.2)
            }
            Foundation.kill(run.process.processIdentifier, SIGKILL)
            _ = run.wait()
            try proxy.up()
        }
        var last = try CLI.run("upload", arguments, environment: s3.environment)
        for _ in 0..<3 where last.status != 0 {
            last = try CLI.run("upload", arguments, environment: s3.environment)
        }
        #expect(last.status == 0, "\(last.stderr)")
        #expect(try proxy.faults().lostAnswers >= 5, "too few answers were lost to show anything")

        let contents = try bucketContents(s3, bucket: bucket)
        let expected = Dictionary(uniqueKeysWithValues: files.map { (s3.prefix + $0.key, $0.value) })
        let wrong = expected.filter { contents[$0.key]?.1 != $0.value }.map(\.key).sorted()
        #expect(contents.count == expected.count && wrong.isEmpty, "missing or wrong: \(wrong.prefix(5))")
        let versions = try objectVersions(s3, bucket: bucket)
        let twice = versions.filter { $0.value != 1 }.map { "\($0.key) ×\($0.value)" }.sorted()
        #expect(twice.isEmpty, "keys written more than once: \(twice.prefix(5))")
        #expect(try s3.client().listMultipartUploads(bucket: bucket, prefix: s3.prefix).isEmpty)
        let left =
            FileManager.default.enumerator(atPath: scratch.url.appendingPathComponent("data").path)?
            .compactMap { $0 as? String }
            .filter { path in
                var isDirectory: ObjCBool = false
                let full = scratch.url.appendingPathComponent("data/" + path).path
                return FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory) && !isDirectory.boolValue
            } ?? []
        #expect(left.isEmpty, "local files not deleted: \(left.prefix(5))")

        let connection = try database.connect()
        try expectNothingLeftHalfDone(connection)
        let keys = try connection.execute(
            """
            SELECT s3_key, count(*) FILTER (WHERE status = 'uploaded') FROM file_uploads GROUP BY s3_key
            HAVING count(*) FILTER (WHERE status = 'uploaded') <> 1
            """
        )
        #expect(
            keys.rowCount == 0,
            "keys without exactly one uploaded row: \(keys.rowCount), e.g. \(keys.string(0, 0) ?? "")"
        )
        let sessions = try connection.execute(
            """
            SELECT s.id, s.status, s.total_files, s.files_uploaded, s.files_skipped,
                   count(f.id), count(f.id) FILTER (WHERE f.status = 'uploaded'),
                   count(f.id) FILTER (WHERE f.status = 'skipped')
            FROM sync_sessions AS s LEFT JOIN file_uploads AS f ON f.session_id = s.id
            GROUP BY s.id ORDER BY s.id
            """
        )
        #expect(sessions.rowCount >= 2)
        let faults = try proxy.faults()
        let settled = try connection.execute(
            """
            SELECT count(*) FILTER (WHERE status = 'interrupted'),
                   (SELECT count(*) FROM file_uploads WHERE error_class = 'interrupted'),
                   (SELECT count(*) FROM file_uploads WHERE status = 'uploaded' AND session_id < \(sessions.int(sessions.rowCount - 1, 0) ?? 0))
            FROM sync_sessions
            """
        )
        print(
            "campaign: \(sessions.rowCount) sessions, \(settled.int(0, 0) ?? -1) interrupted, "
                + "\(settled.int(0, 2) ?? -1) files uploaded before the last run, \(faults.lostAnswers) answers lost, "
                + "\(faults.downs) cuts"
        )
        for row in 0..<sessions.rowCount {
            let totals = [2, 3, 4].map { sessions.int(row, $0) ?? -1 }
            let counted = [5, 6, 7].map { sessions.int(row, $0) ?? -1 }
            let session = "\(sessions.int(row, 0) ?? -1) (\(sessions.string(row, 1) ?? ""))"
            #expect(totals == counted, "session \(session): totals (files, uploaded, skipped) are not its rows")
        }
        let deleted = try connection.execute(
            "SELECT count(DISTINCT local_path) FROM local_deletions WHERE state = 'deleted'"
        )
        #expect(deleted.int(0, 0) == files.count, "deletions the ledger confirms")
    }
}
