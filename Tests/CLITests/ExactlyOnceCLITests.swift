import FleetSystem
import FleetTestSupport
import Foundation
import Testing

/// One file goes up once, to a key no other project holds, and with `delete_after_upload` its local copy goes
/// once its object is stored, even when the run that uploaded it was killed: through the real binaries,
/// PostgreSQL and the S3 server.
@Suite(.serialized)
struct ExactlyOnceCLITests {
    // MARK: - Hard links and overlapping sources

    /// A file with two names, in one source and across two sources, goes up under its first name only; the
    /// others are left out with a warning naming both paths.
    @Test func aHardLinkedFileIsUploadedOnce() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let original = try scratch.write("data/one/original.log", "recorded once")
        try scratch.write("data/one/other.log", "a file of its own")
        let sameSource = scratch.url.appendingPathComponent("data/one/alias.log").path
        let otherSource = scratch.url.appendingPathComponent("data/two/copy.log").path
        try FileManager.default.createDirectory(
            atPath: scratch.url.appendingPathComponent("data/two").path,
            withIntermediateDirectories: true
        )
        try FileManager.default.linkItem(atPath: original, toPath: sameSource)
        try FileManager.default.linkItem(atPath: original, toPath: otherSource)
        let config = try scratch.write(
            "session.json",
            """
            {
              "project": { "name": "links-\(UUID().uuidString.prefix(8))" },
              "device": "test-rig",
              "s3": { "bucket": "\(s3.bucket)", "prefix": "\(s3.prefix)", "endpoint": "\(s3.endpoint)",
                      "region": "\(s3.region)" },
              "sources": [ { "name": "one", "path": "data/one" }, { "name": "two", "path": "data/two" } ],
              "keys": { "template": "{prefix}/{source}/{relpath}" },
              "upload": { "workers": 2 }
            }
            """
        )

        let plan = try CLI.run("upload", ["--config", config, "--dry-run", "--database", database.url])
        #expect(plan.status == 0, "\(plan.stderr)")
        #expect(plan.stdout.contains("2 hard links to files already taken"), "\(plan.stdout)")

        let result = try runUpload(config, database, s3)

        #expect(result.status == 0, "\(result.stderr)")
        let contents = try bucketContents(s3)
        let linked = contents.keys.filter { !$0.hasSuffix("other.log") }
        #expect(contents.count == 2, "\(contents.keys.sorted())")
        #expect(contents[s3.prefix + "one/other.log"]?.1 == SHA256.hex(of: Array("a file of its own".utf8)))
        #expect(linked.count == 1)
        #expect(linked.allSatisfy { contents[$0]?.1 == SHA256.hex(of: Array("recorded once".utf8)) })
        let warnings = result.stderr.split(separator: "\n").filter { $0.contains("hard link to a file already taken") }
        #expect(warnings.count == 2, "\(result.stderr)")
        let names = [original, sameSource, otherSource]
        for warning in warnings { #expect(names.filter { warning.contains($0) }.count == 2, "\(warning)") }
        let rows = try database.connect().execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'uploaded') FROM file_uploads"
        )
        #expect(rows.int(0, 0) == 2)
        #expect(rows.int(0, 1) == 2)
    }

    /// A source inside another is refused before anything is recorded, naming both.
    @Test func nestedSourcesExitTwoNamingBoth() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.write("data/ros/a.bag", "bag")
        let config = try scratch.write(
            "session.json",
            """
            {
              "project": { "name": "nested" }, "s3": { "bucket": "fleet-test" },
              "sources": [ { "name": "all", "path": "data" }, { "name": "ros", "path": "data/ros" } ]
            }
            """
        )

        let result = try CLI.run("upload", ["--config", config, "--dry-run"])

        #expect(result.status == 2, "\(result.stderr)")
        let data = scratch.url.appendingPathComponent("data").path
        #expect(
            result.reason.contains("sources[1].path: '\(data)/ros' lies inside sources[0] (all, '\(data)')"),
            "\(result.stderr)"
        )
    }

    // MARK: - Two projects, one bucket

    /// Project B may not overwrite the key project A stores (A may have deleted its local copy), until both
    /// set `s3.shared_prefix`.
    @Test func aKeyAnotherProjectStoresIsRefusedUnlessBothShare() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let (first, second) = (try Scratch(), try Scratch())
        defer {
            first.remove()
            second.remove()
        }
        try first.write("data/shared.log", "project A's bytes")
        try first.write("data/a-only.log", "only A")
        try second.write("data/shared.log", "project B's other bytes")
        try second.write("data/b-only.log", "only B")
        let configA = try configFile(first, s3)
        let configB = try configFile(second, s3, extraS3: #", "shared_prefix": true"#)
        let projectA = try projectName(configA)
        let sharedKey = s3.prefix + "shared.log"
        let bytesA = SHA256.hex(of: Array("project A's bytes".utf8))
        let bytesB = SHA256.hex(of: Array("project B's other bytes".utf8))

        #expect(try runUpload(configA, database, s3).status == 0)
        // Only B shares: A's key stays A's.
        let plan = try CLI.run("upload", ["--config", configB, "--dry-run", "--database", database.url])
        #expect(plan.stdout.contains("1 files refused: another project stores the key"), "\(plan.stdout)")
        #expect(plan.stdout.contains("s3://\(s3.bucket)/\(sharedKey): project \(projectA)"), "\(plan.stdout)")
        let refused = try runUpload(configB, database, s3)

        #expect(refused.status == 1, "\(refused.stderr)")
        var contents = try bucketContents(s3)
        #expect(contents[sharedKey]?.1 == bytesA)
        #expect(contents[s3.prefix + "b-only.log"] != nil)
        let rows = try database.connect().execute(
            """
            SELECT error_class, error_message FROM file_uploads f JOIN projects p ON p.id = f.project_id
            WHERE p.name <> \(projectA) AND f.status = 'permanent_failure'
            """
        )
        #expect(rows.rowCount == 1)
        #expect(rows.string(0, 0) == "key_owned_by_other_project")
        #expect(rows.string(0, 1)?.contains("project '\(projectA)'") == true, "\(rows.string(0, 1) ?? "")")
        // `retry` does not send it either.
        let sessionB = try #require(try database.connect().execute("SELECT max(id) FROM sync_sessions").int(0, 0))
        _ = try CLI.run(
            "retry",
            ["--session", String(sessionB), "--include-permanent", "--database", database.url],
            environment: s3.environment
        )
        contents = try bucketContents(s3)
        #expect(contents[sharedKey]?.1 == bytesA)
        let afterRetry = try database.connect().execute(
            "SELECT status, attempts FROM file_uploads WHERE session_id = \(sessionB) AND s3_key = \(sharedKey)"
        )
        #expect(afterRetry.string(0, 0) == "permanent_failure")
        #expect(afterRetry.int(0, 1) == 0)

        // A shares too: the last upload of the key wins.
        try setSharedPrefix(configA)
        #expect(try runUpload(configA, database, s3).status == 0)
        let shared = try runUpload(configB, database, s3)

        #expect(shared.status == 0, "\(shared.stderr)")
        #expect(try bucketContents(s3)[sharedKey]?.1 == bytesB)
    }

    // MARK: - delete_after_upload after a killed run

    /// A run killed after uploading files it had not deleted yet (here: its deletions could not be recorded), then
    /// a run to the end: every file whose bytes are in the bucket is gone locally, the one whose bytes are not
    /// stays, and `local_deletions` lists each deletion once.
    @Test func filesAKilledRunUploadedAreDeletedByTheNextRun() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        var expected: [String: (path: String, sha256: String)] = [:]
        for index in 0..<600 {
            let name = "sub\(index % 4)/f\(index).log"
            let text = "log line \(index) " + String(repeating: "x", count: 1_000 + index % 37)
            expected[s3.prefix + name] = (try scratch.write("data/" + name, text), SHA256.hex(of: Array(text.utf8)))
        }
        // About 600 KiB under a 100 KiB/s cap: the first run is still uploading when it is killed, however fast the
        // machine. The second run goes uncapped.
        let project = "e2e-\(UUID().uuidString.prefix(8))"
        let cappedConfig = try configFile(
            scratch,
            s3,
            upload: #"{ "workers": 2, "delete_after_upload": true, "max_bandwidth": "100K" }"#,
            project: project,
            file: "capped.json"
        )
        let config = try configFile(
            scratch,
            s3,
            upload: #"{ "workers": 2, "delete_after_upload": true }"#,
            project: project
        )
        let migrate = try CLI.run("master", ["migrate", "--database", database.url])
        #expect(migrate.status == 0, "\(migrate.stderr)")
        let connection = try database.connect()

        // The first run uploads but cannot record a deletion, and is killed on the way.
        try database.refuse("INSERT", on: "local_deletions")
        let run = try CLI.start(
            "upload",
            ["--config", cappedConfig, "--database", database.url],
            environment: s3.environment
        )
        defer { kill(run.process.processIdentifier, SIGKILL) }  // a failed expectation must not leave it running
        #expect(waitForUploads(connection, atLeast: 100) >= 100)
        kill(run.process.processIdentifier, SIGKILL)
        _ = run.wait()
        try database.allow(on: "local_deletions")
        let uploadedBefore = try #require(
            try connection.execute("SELECT count(*) FROM file_uploads WHERE status = 'uploaded'").int(0, 0)
        )
        #expect(uploadedBefore < 600, "the run ended before it was killed")
        #expect(expected.values.allSatisfy { FileManager.default.fileExists(atPath: $0.path) })

        // One uploaded file is rewritten in place with its size and mtime kept: its bytes are not the stored ones.
        let tamperedPath = try #require(
            connection.execute("SELECT local_path FROM file_uploads WHERE status = 'uploaded' ORDER BY id LIMIT 1")
                .string(0, 0)
        )
        try rewriteKeepingSizeAndMtime(tamperedPath)

        let result = try runUpload(config, database, s3)

        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("its SHA-256 is not the stored object's"), "\(result.stderr)")
        let contents = try bucketContents(s3)
        #expect(contents.count == 600)
        for (key, file) in expected {
            #expect(contents[key]?.1 == file.sha256, "\(key) in the bucket")
            let present = FileManager.default.fileExists(atPath: file.path)
            #expect(present == (file.path == tamperedPath), "\(file.path) present: \(present)")
        }
        let rows = try connection.execute(
            """
            SELECT (SELECT count(*) FROM local_deletions WHERE state = 'deleted' AND was_uploaded),
                   (SELECT count(DISTINCT local_path) FROM local_deletions),
                   (SELECT count(*) FROM local_deletions WHERE state <> 'deleted'),
                   (SELECT count(*) FROM file_uploads f JOIN sync_sessions s ON s.id = f.session_id
                    WHERE s.id = (SELECT max(id) FROM sync_sessions) AND f.status = 'skipped'),
                   (SELECT count(*) FROM file_uploads f
                    WHERE f.session_id = (SELECT max(id) FROM sync_sessions) AND f.status = 'skipped'
                      AND f.local_deleted_at IS NOT NULL),
                   (SELECT count(*) FROM local_deletions d WHERE d.local_path = \(tamperedPath))
            """
        )
        #expect(rows.int(0, 0) == 599)
        #expect(rows.int(0, 1) == 599)
        #expect(rows.int(0, 2) == 0)
        let skipped = try #require(rows.int(0, 3))
        #expect(skipped >= uploadedBefore, "the second run skipped what the first had uploaded")
        #expect(rows.int(0, 4) == skipped - 1)
        #expect(rows.int(0, 5) == 0)
        try expectNothingLeftHalfDone(connection)
    }

    // MARK: - Helpers

    private func projectName(_ config: String) throws -> String {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: config)))
        return try #require(((json as? [String: Any])?["project"] as? [String: Any])?["name"] as? String)
    }

    /// Rewrites the configuration with `s3.shared_prefix: true`.
    private func setSharedPrefix(_ config: String) throws {
        let url = URL(fileURLWithPath: config)
        var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        var s3 = try #require(json["s3"] as? [String: Any])
        s3["shared_prefix"] = true
        json["s3"] = s3
        try JSONSerialization.data(withJSONObject: json).write(to: url)
    }

    /// Other bytes of the same length, with the file's mtime put back to the nanosecond.
    private func rewriteKeepingSizeAndMtime(_ path: String) throws {
        var info = stat()
        #expect(stat(path, &info) == 0)
        let size = Int(info.st_size)
        try Data(repeating: UInt8(ascii: "#"), count: size).write(to: URL(fileURLWithPath: path))
        let times = [info.st_atim, info.st_mtim]
        #expect(utimensat(AT_FDCWD, path, times, 0) == 0)
    }
}
