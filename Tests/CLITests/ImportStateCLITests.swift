import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetLedger

/// `master import-state` as a user switching from the old tools runs it: the Data Uploader's database, and the
/// refusals of input it cannot use.
struct ImportStateCLITests {
    /// A Data Uploader database with three usable sessions (one finished, one with errors, one the old tool never
    /// finished) and one whose status it never wrote; the first covers `data/`, whose files are all uploaded.
    private func oldDatabase(_ scratch: Scratch, _ s3: TestS3) throws -> (TestDatabase, [String: Int]) {
        let old = try TestDatabase()
        let data = scratch.url.appendingPathComponent("data").path
        let other = scratch.url.appendingPathComponent("other").path
        var sizes: [String: Int] = [:]
        var uploaded: [DataUploaderFixture.File] = []
        for index in 0..<12 {
            let name = "sensor-\(index % 3)/clip-\(index).wav"
            let size = 100 + index * 7
            _ = try scratch.write("data/" + name, String(repeating: "a", count: size))
            sizes[name] = size
            uploaded.append(
                DataUploaderFixture.File(
                    path: "\(data)/\(name)",
                    key: "\(s3.prefix)audio/\(name)",
                    size: size,
                    status: "uploaded"
                )
            )
        }
        func file(_ name: String, _ status: String, error: String? = nil) -> DataUploaderFixture.File {
            DataUploaderFixture.File(
                path: "\(other)/\(name)",
                key: "\(s3.prefix)other/\(name)",
                size: 50,
                status: status,
                retryCount: status == "failed" ? 3 : 0,
                error: error
            )
        }
        try DataUploaderFixture.create(
            in: old,
            project: "lab-audio",
            bucket: s3.bucket,
            region: s3.region,
            sessions: [
                .init(
                    directory: data,
                    prefix: "\(s3.prefix)audio",
                    status: "completed",
                    files: uploaded,
                    startedHoursAgo: 30
                ),
                .init(
                    directory: other,
                    prefix: "\(s3.prefix)other",
                    status: "completed_with_errors",
                    files: [
                        file("a.jpg", "uploaded"), file("b.jpg", "uploaded"),
                        file("c.jpg", "failed", error: "Connection reset"),
                    ],
                    startedHoursAgo: 20
                ),
                .init(
                    directory: other,
                    prefix: "\(s3.prefix)other",
                    status: "in_progress",
                    files: [file("d.jpg", "uploaded"), file("e.jpg", "pending"), file("f.jpg", "pending")],
                    startedHoursAgo: 10
                ),
                .init(
                    directory: other,
                    prefix: "",
                    status: "paused",
                    files: [file("g.jpg", "uploaded")],
                    startedHoursAgo: 5
                ),
            ]
        )
        return (old, sizes)
    }

    @Test func dataUploaderHistoryIsImportedOnceAndUploadOfTheSameDirectorySendsNothing() throws {
        let ledger = try TestDatabase()
        let s3 = try TestS3()
        let scratch = try Scratch()
        let (old, sizes) = try oldDatabase(scratch, s3)
        defer {
            ledger.drop()
            old.drop()
            scratch.remove()
        }

        let first = try CLI.run("master", ["import-state", "--from-database", old.url, "--database", ledger.url])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("3 sessions imported, 0 imported before, 1 skipped"), "\(first.stdout)")
        #expect(first.stdout.contains("1 failed, 2 pending, 15 uploaded imported; 15 keys recorded as stored"))

        let connection = try ledger.connect()
        let sessions = try connection.execute(
            """
            SELECT s.status, s.total_files, s.files_uploaded, s.files_failed, s.total_bytes, s.hostname, p.name,
                   s.finished_at >= s.started_at
            FROM sync_sessions s JOIN projects p ON p.id = s.project_id WHERE s.kind = 'imported' ORDER BY s.id
            """
        )
        #expect(sessions.rowCount == 3)
        #expect((0..<3).map { sessions.string($0, 0) } == ["completed", "completed_with_errors", "interrupted"])
        #expect(sessions.int(0, 1) == 12 && sessions.int(0, 2) == 12 && sessions.int(1, 3) == 1)
        #expect(sessions.int(0, 4) == sizes.values.reduce(0, +))
        #expect(sessions.string(0, 5) == "data-uploader" && sessions.string(0, 6) == "lab-audio")
        #expect((0..<3).allSatisfy { sessions.string($0, 7) == "t" })
        let files = try connection.execute(
            "SELECT status, count(*), count(mtime), count(error_class) FROM file_uploads GROUP BY 1 ORDER BY 1"
        )
        #expect((0..<files.rowCount).map { files.string($0, 0) ?? "" } == ["failed", "pending", "uploaded"])
        #expect((0..<files.rowCount).map { files.int($0, 1) ?? 0 } == [1, 2, 15])
        #expect((0..<files.rowCount).allSatisfy { files.int($0, 2) == 0 })
        #expect(files.int(0, 3) == 1)
        let stored = try connection.execute(
            "SELECT count(*), count(*) FILTER (WHERE imported_from = 'data_uploader' AND mtime IS NULL) FROM stored_objects"
        )
        #expect(stored.int(0, 0) == 15 && stored.int(0, 1) == 15)
        #expect(try connection.execute("SELECT count(*) FROM config_history").int(0, 0) == 1)

        // Again: nothing new.
        let second = try CLI.run("master", ["import-state", "--from-database", old.url, "--database", ledger.url])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stdout.contains("0 sessions imported, 3 imported before"), "\(second.stdout)")
        #expect(second.stdout.contains("0 keys recorded as stored"))
        #expect(try connection.execute("SELECT count(*) FROM file_uploads").int(0, 0) == 18)
        #expect(try connection.execute("SELECT count(*) FROM sync_sessions").int(0, 0) == 3)
        #expect(try connection.execute("SELECT count(*) FROM config_history").int(0, 0) == 1)

        // The project's own session of the same directory: every file is already stored.
        let config = try scratch.write(
            "session.json",
            """
            {
              "project": { "name": "lab-audio" },
              "s3": { "bucket": "\(s3.bucket)", "prefix": "\(s3.prefix)audio", "endpoint": "\(s3.endpoint)",
                      "region": "\(s3.region)" },
              "source": { "path": "data" }
            }
            """
        )
        let upload = try CLI.run(
            "upload",
            ["--config", config, "--database", ledger.url],
            environment: s3.environment
        )
        #expect(upload.status == 0, "\(upload.stderr)")
        let session = try connection.execute(
            "SELECT files_uploaded, files_skipped, total_files FROM sync_sessions WHERE kind = 'upload'"
        )
        #expect(session.int(0, 0) == 0 && session.int(0, 1) == 12 && session.int(0, 2) == 12)
        #expect(try bucketContents(s3).isEmpty)

        let status = try CLI.run("master", ["status", "--json", "--database", ledger.url])
        #expect(status.status == 0, "\(status.stderr)")
        let listed = try #require(
            (try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])?["sessions"]
                as? [[String: Any]]
        )
        #expect(listed.filter { $0["kind"] as? String == "imported" }.count == 3)
        let text = try CLI.run("master", ["status", "--database", ledger.url])
        #expect(
            text.stdout.split(separator: "\n").filter { $0.contains("lab-audio") && $0.contains(" imported ") }.count
                == 3,
            "\(text.stdout)"
        )

        let importedID = try #require(
            try connection.execute("SELECT min(id) FROM sync_sessions WHERE kind = 'imported'").int(0, 0)
        )
        let detail = try CLI.run("master", ["status", "--session", String(importedID), "--database", ledger.url])
        #expect(detail.status == 0, "\(detail.stderr)")
        #expect(detail.stdout.contains("imported on data-uploader"), "\(detail.stdout)")
        let retry = try CLI.run(
            "retry",
            ["--session", String(importedID), "--database", ledger.url],
            environment: s3.environment
        )
        #expect(retry.status == 2)
        #expect(retry.reason.contains("was imported from the Data Uploader"), "\(retry.reason)")
    }

    @Test func badInputIsRefusedInOneLineAndNothingIsImported() throws {
        let ledger = try TestDatabase()
        let s3 = try TestS3()
        let scratch = try Scratch()
        defer {
            ledger.drop()
            scratch.remove()
        }
        let logs = scratch.url.appendingPathComponent("logs").path
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        let config = try scratch.write(
            "agent.yaml",
            """
            project: { name: fleet-import }
            device: vehicle-9
            s3: { bucket: \(s3.bucket), prefix: "\(s3.prefix.dropLast())", endpoint: "\(s3.endpoint)", region: \(s3.region) }
            sources:
              - { name: terminal, path: "\(logs)" }
            """
        )
        let malformed = try scratch.write(
            "processed_files.json",
            #"{"_metadata": {}, "files": {"/x::1::2": {"size": 1,}}"#
        )
        let elsewhere = try scratch.write(
            "elsewhere.json",
            #"{"_metadata": {}, "files": {"/var/log/a.log::5::1700000000.5": {"filepath": "/var/log/a.log", "size": 5, "mtime": 1700000000.5}}}"#
        )
        let notAList = try scratch.write("queue.json", #"{"files": 3}"#)
        let run = { (arguments: [String]) in
            try CLI.run("master", ["import-state", "--database", ledger.url] + arguments, environment: s3.environment)
        }
        let cases: [([String], Int32, String)] = [
            (
                ["--config", config, "--registry", scratch.url.appendingPathComponent("missing.json").path], 2,
                "cannot read the registry: no such file"
            ),
            (["--config", config, "--registry", malformed], 2, "invalid JSON"),
            (["--config", config, "--registry", elsewhere], 2, "none of its 1 files is under a source"),
            (["--config", config, "--queue", notAList], 2, "files: expected a list of queued files"),
            (["--registry", elsewhere], 2, "--registry needs --config"),
            ([], 2, "nothing to import"),
            (["--from-database", "postgresql://fleet@127.0.0.1:1/old"], 3, "cannot reach the old database"),
            (["--from-database", ledger.url], 2, "is it the Data Uploader's database?"),
        ]
        for (arguments, status, reason) in cases {
            let result = try run(arguments)
            #expect(result.status == status, "\(arguments): \(result.stderr)")
            #expect(result.reason.contains(reason), "\(arguments): \(result.reason)")
            #expect(!result.reason.isEmpty && result.stderr.split(separator: "\n").count <= 2, "\(result.stderr)")
        }
        let leftovers = try ledger.ledger().connection.execute(
            "SELECT (SELECT count(*) FROM stored_objects) + (SELECT count(*) FROM queued_files)"
        )
        #expect(leftovers.int(0, 0) == 0)
    }
}
