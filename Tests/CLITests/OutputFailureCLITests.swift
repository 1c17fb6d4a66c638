import FleetSystem
import FleetTestSupport
import Foundation
import Testing

/// Output that cannot be written: stdout or stderr on a full device, or a reader that went away. The command
/// never crashes and is never killed by SIGPIPE; what it recorded in the ledger stands; the exit code says the
/// output was lost (3, the environment) instead of 0, with the reason on stderr when stderr still takes it.
@Suite(.serialized) struct OutputFailureCLITests {
    @Test func statusToAFullDeviceExitsThreeSayingWhy() throws {
        let database = try TestDatabase()
        defer { database.drop() }

        let result = try runRedirected("master", ["status", "--json", "--database", database.url], ">/dev/full")

        #expect(result.status == 3, "\(result.stderr)")
        #expect(result.stderr == "master: cannot write to standard output: No space left on device\n")
    }

    /// The session id cannot be written: the session is recorded completed and its files are in the bucket,
    /// but the exit code is 3, not 0; `retry` on a full stdout says the same.
    @Test func uploadWithStdoutOnAFullDeviceRecordsTheSessionAndExitsThree() throws {
        let (s3, database, scratch, config) = try fixture()
        defer { database.drop() }
        defer { scratch.remove() }

        let upload = try runRedirected(
            "upload",
            ["--config", config, "--database", database.url],
            ">/dev/full",
            environment: s3.environment
        )

        #expect(upload.status == 3, "\(upload.stderr)")
        #expect(upload.stderr.contains(": completed\n"), "\(upload.stderr)")
        #expect(upload.stderr.hasSuffix("upload: cannot write to standard output: No space left on device\n"))
        let id = try expectCompleted(database, s3)
        let retry = try runRedirected(
            "retry",
            ["--session", String(id), "--database", database.url],
            ">/dev/full",
            environment: s3.environment
        )
        #expect(retry.status == 3, "\(retry.stderr)")
        #expect(retry.stderr.hasSuffix("retry: cannot write to standard output: No space left on device\n"))
    }

    /// stderr on a full device: the summary cannot be written; no crash (it was SIGILL, exit 132), the
    /// session id still reaches stdout, exit 3.
    @Test func uploadWithStderrOnAFullDeviceDoesNotCrash() throws {
        let (s3, database, scratch, config) = try fixture()
        defer { database.drop() }
        defer { scratch.remove() }

        let result = try runRedirected(
            "upload",
            ["--config", config, "--database", database.url],
            "2>/dev/full",
            environment: s3.environment
        )

        #expect(result.status == 3, "\(result.stdout)")
        let id = try expectCompleted(database, s3)
        #expect(result.stdout == "\(id)\n")
    }

    /// `upload … | true`: the reader is gone before the session id is written. SIGPIPE does not kill the run
    /// (it was 141); the write fails, the session is recorded, exit 3.
    @Test func uploadIntoAClosedPipeIsNotKilledBySIGPIPE() throws {
        let (s3, database, scratch, config) = try fixture()
        defer { database.drop() }
        defer { scratch.remove() }

        let result = try runRedirected(
            "upload",
            ["--config", config, "--database", database.url],
            "| true; exit ${PIPESTATUS[0]}",
            environment: s3.environment
        )

        #expect(result.status == 3, "\(result.stderr)")
        #expect(result.stderr.hasSuffix("upload: cannot write to standard output: Broken pipe\n"), "\(result.stderr)")
        _ = try expectCompleted(database, s3)
    }

    // MARK: - Helpers

    private func fixture() throws -> (TestS3, TestDatabase, Scratch, String) {
        let s3 = try TestS3()
        let database = try TestDatabase()
        let scratch = try Scratch()
        try scratch.write("data/a.log", "alpha")
        try scratch.write("data/sub/b.log", "bravo")
        return (s3, database, scratch, try configFile(scratch, s3))
    }

    /// The one session is `completed` with both files uploaded, and both objects are in the bucket; its id.
    private func expectCompleted(_ database: TestDatabase, _ s3: TestS3) throws -> Int64 {
        let session = try database.connect().execute(
            """
            SELECT s.id, s.status, (SELECT count(*) FROM file_uploads f WHERE f.session_id = s.id AND f.status = 'uploaded')
            FROM sync_sessions s
            """
        )
        #expect(session.rowCount == 1)
        #expect(session.string(0, 1) == "completed")
        #expect(session.int(0, 2) == 2)
        #expect(Set(try bucketContents(s3).keys) == [s3.prefix + "a.log", s3.prefix + "sub/b.log"])
        try expectNothingLeftHalfDone(database.connect())
        return Int64(session.int(0, 0) ?? 0)
    }

    /// Runs a built binary under bash with `redirections` after its arguments (`>/dev/full`, `| true`);
    /// streams left alone are captured.
    private func runRedirected(
        _ command: String,
        _ arguments: [String],
        _ redirections: String,
        environment: [String: String] = [:]
    ) throws -> CLIResult {
        let binary = CLI.binaries.appendingPathComponent(command).path
        let quoted = ([binary] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        return try CLI.runTool(
            "/bin/bash",
            ["-c", quoted.joined(separator: " ") + " " + redirections],
            environment: environment
        )
    }
}
