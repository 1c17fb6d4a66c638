import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore

/// `upload --join SESSION`: further processes on one session, as a user runs them.
@Suite(.serialized) struct JoinCLITests {
    /// An opener (`upload` with one worker) at work on `files` under `data/`, and its session's id once open.
    private struct Opened {
        let s3: TestS3
        let database: TestDatabase
        let scratch: Scratch
        let connection: PGConnection
        let opener: RunningCommand
        let sessionID: Int64

        init(files: [String: String]) throws {
            s3 = try TestS3()
            database = try TestDatabase()
            scratch = try Scratch()
            for (path, text) in files { try scratch.write("data/" + path, text) }
            let config = try configFile(scratch, s3, upload: #"{ "workers": 1 }"#)
            opener = try CLI.start(
                "upload",
                ["--config", config, "--database", database.url],
                environment: s3.environment
            )
            _ = try database.ledger()
            connection = try database.connect()
            var id: Int64?
            for _ in 0..<400 where id == nil {
                let rows = try? connection.execute("SELECT id FROM sync_sessions WHERE status = 'running'")
                if let rows, rows.rowCount == 1 { id = rows.int64(0, 0) } else { Thread.sleep(forTimeInterval: 0.025) }
            }
            guard let id else { throw TestEnvironmentError(description: "no running session appeared") }
            sessionID = id
        }

        /// `upload --join` on the session with two workers.
        func join(_ extra: [String] = []) throws -> RunningCommand {
            try CLI.start(
                "upload",
                ["--join", String(sessionID), "--workers", "2", "--database", database.url] + extra,
                environment: s3.environment
            )
        }

        func cleanUp() {
            kill(opener.process.processIdentifier, SIGKILL)
            database.drop()
            scratch.remove()
        }
    }

    /// Three processes on one session (the opener and two that joined it) upload every file exactly once: each
    /// object in the bucket is byte-exact, every row is `uploaded` after one attempt, and all three processes
    /// took a share. The opener closes the session `completed` once the others' files are recorded.
    @Test func threeProcessesOnOneSessionUploadEveryFileExactlyOnce() throws {
        let count = 3000
        let opened = try Opened(
            files: Dictionary(uniqueKeysWithValues: (0..<count).map { ("d\($0 % 20)/f\($0).bin", "join-\($0)") })
        )
        defer { opened.cleanUp() }
        let (s3, connection, sessionID) = (opened.s3, opened.connection, opened.sessionID)
        let joiners = try (0..<2).map { _ in try opened.join(["--json"]) }
        defer { for joiner in joiners { kill(joiner.process.processIdentifier, SIGKILL) } }

        let joined = joiners.map { $0.wait() }
        let opener = opened.opener.wait()
        #expect(opener.status == 0, "\(opener.stderr)")
        for result in joined {
            #expect(result.status == 0, "\(result.stderr)")
            let summary = try summary(result)
            #expect(summary["session_id"] as? Int == Int(sessionID))
            #expect((summary["uploaded_files"] as? Int ?? 0) > 0)
        }
        #expect(opener.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == String(sessionID))

        let contents = try bucketContents(s3)
        #expect(contents.count == count)
        for index in 0..<count {
            let key = "\(s3.prefix)d\(index % 20)/f\(index).bin"
            #expect(contents[key]?.1 == SHA256.hex(of: Array("join-\(index)".utf8)), "\(key)")
        }
        let rows = try connection.execute(
            """
            SELECT count(*) FILTER (WHERE status = 'uploaded'), count(*) FILTER (WHERE attempts <> 1),
                   count(DISTINCT claimed_by), min(n), (SELECT status FROM sync_sessions WHERE id = \(sessionID))
            FROM file_uploads
            CROSS JOIN LATERAL (SELECT count(*) AS n FROM file_uploads g WHERE g.claimed_by = file_uploads.claimed_by) c
            """
        )
        #expect(rows.int(0, 0) == count)
        #expect(rows.int(0, 1) == 0, "files attempted more than once")
        #expect(rows.int(0, 2) == 3, "every process took a share")
        #expect((rows.int(0, 3) ?? 0) > 0)
        #expect(rows.string(0, 4) == "completed")
        let workers = try connection.execute(
            "SELECT role, count(*), bool_and(left_at IS NOT NULL) FROM session_workers GROUP BY role ORDER BY role"
        )
        #expect(workers.string(0, 0) == "joined" && workers.int(0, 1) == 2 && workers.bool(0, 2) == true)
        #expect(workers.string(1, 0) == "opener" && workers.int(1, 1) == 1 && workers.bool(1, 2) == true)

        // `master status --session` shows the three processes and their shares.
        let status = try CLI.run(
            "master",
            ["status", "--session", String(sessionID), "--json", "--database", opened.database.url]
        )
        #expect(status.status == 0, "\(status.stderr)")
        let processes = try #require(try summary(status)["processes"] as? [[String: Any]])
        #expect(processes.map { $0["role"] as? String } == ["opener", "joined", "joined"])
        #expect(processes.reduce(0) { $0 + ($1["files_uploaded"] as? Int ?? 0) } == count)
        #expect(processes.allSatisfy { ($0["files_uploaded"] as? Int ?? 0) > 0 && $0["left_at"] is String })
    }

    /// A process that joined and was killed holds files it never recorded: the opener settles them against the
    /// bucket (recorded when there, uploaded itself when not) and still completes the session with every file
    /// in the bucket once and nothing left `uploading`.
    @Test func theOpenerSettlesTheFilesOfAJoinedProcessThatWasKilled() throws {
        let count = 2500
        let opened = try Opened(
            files: Dictionary(uniqueKeysWithValues: (0..<count).map { ("f\($0).bin", "killed-\($0)") })
        )
        defer { opened.cleanUp() }
        let (s3, connection, sessionID) = (opened.s3, opened.connection, opened.sessionID)
        let joiner = try opened.join()
        let holder = "\(ProcessInfo.processInfo.hostName):\(joiner.process.processIdentifier)"
        var held = 0
        for _ in 0..<400 where held == 0 {
            Thread.sleep(forTimeInterval: 0.025)
            held = (try? heldFiles(connection, heldBy: holder)) ?? 0
        }
        #expect(held > 0, "the joined process never held files")
        kill(joiner.process.processIdentifier, SIGKILL)
        _ = joiner.wait()

        let opener = opened.opener.wait()
        #expect(opener.status == 0, "\(opener.stderr)")
        #expect(opener.stderr.contains("a process that joined the session is gone"), "\(opener.stderr)")
        let contents = try bucketContents(s3)
        #expect(contents.count == count)
        for index in stride(from: 0, to: count, by: 97) {
            #expect(contents["\(s3.prefix)f\(index).bin"]?.1 == SHA256.hex(of: Array("killed-\(index)".utf8)))
        }
        let rows = try connection.execute(
            """
            SELECT count(*) FILTER (WHERE status = 'uploaded'), count(*) FILTER (WHERE status = 'uploading'),
                   (SELECT status FROM sync_sessions WHERE id = \(sessionID))
            FROM file_uploads
            """
        )
        #expect(rows.int(0, 0) == count)
        #expect(rows.int(0, 1) == 0)
        #expect(rows.string(0, 2) == "completed")
    }

    /// Joining what is not a running session is refused with the reason, and changes nothing.
    @Test func joiningWhatIsNotARunningSessionIsRefused() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.write("data/one.txt", "one")
        let config = try configFile(scratch, s3)
        let upload = try CLI.run(
            "upload",
            ["--config", config, "--database", database.url],
            environment: s3.environment
        )
        #expect(upload.status == 0, "\(upload.stderr)")
        let sessionID = upload.stdout.trimmingCharacters(in: .whitespacesAndNewlines)

        let finished = try CLI.run(
            "upload",
            ["--join", sessionID, "--database", database.url],
            environment: s3.environment
        )
        #expect(finished.status == 2)
        #expect(finished.reason == "upload: session \(sessionID) is completed, not running: nothing to join")

        let unknown = try CLI.run(
            "upload",
            ["--join", "999999", "--database", database.url],
            environment: s3.environment
        )
        #expect(unknown.status == 2)
        #expect(unknown.reason == "upload: no session 999999 in the ledger")

        let both = try CLI.run("upload", ["--join", sessionID, "--config", config, "--database", database.url])
        #expect(both.status == 2)
        #expect(both.reason.contains("--join uploads with the configuration the session runs with"), "\(both.reason)")

        let neither = try CLI.run("upload", ["--database", database.url])
        #expect(neither.status == 2)
        #expect(neither.reason.contains("Missing expected argument '--config <file>'"), "\(neither.reason)")

        let connection = try database.connect()
        #expect(try connection.execute("SELECT count(*) FROM session_workers").int(0, 0) == 1)
    }
}
