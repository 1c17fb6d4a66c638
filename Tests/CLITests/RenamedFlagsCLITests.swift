import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore

/// The old tools' flags, still taken under their old names: each does what its new name does (same output, same
/// ledger and bucket), says its new name once on stderr, and is not listed by `--help`.
struct RenamedFlagsCLITests {
    /// Every old name, by command, with its new one (the table docs/migrating.md gives).
    static let renamed: [(command: [String], old: String, new: String)] = [
        (["upload"], "-d", "--source"), (["upload"], "-b", "--bucket"), (["upload"], "-p", "--prefix"),
        (["upload"], "-w", "--workers"), (["upload"], "--aws-profile", "--profile"),
        (["retry"], "--session-id", "--session"), (["retry"], "--auto-retry", "--auto"),
        (["retry"], "--max-rounds", "--rounds"), (["retry"], "--max-attempts", "--max-file-attempts"),
        (["retry"], "--delay", "--round-backoff-base"),
        (["trigger"], "--session-id", "--session"), (["trigger"], "--endpoint-url", "--url"),
        (["master", "once"], "-e", "--url"), (["master", "once"], "--skip-retry", "--no-retry"),
        (["master", "once"], "--skip-endpoint", "--no-trigger"), (["master", "run"], "--test-config", "--check"),
    ]

    /// The option names a help text lists (`--session`, `-c`), without the punctuation around them.
    static func listedOptions(_ help: String) -> Set<String> {
        Set(
            help.split(whereSeparator: { $0.isWhitespace || "[](),|=<>.:;'`\"".contains($0) }).map(String.init)
                .filter { $0.wholeMatch(of: /--?[a-zA-Z][a-zA-Z0-9-]*/) != nil }
        )
    }

    /// A plan without the lines and fields that time the scan, which differ from run to run.
    static func untimed(_ plan: String) -> String {
        plan.split(separator: "\n").filter { !$0.contains("_seconds\"") && !$0.contains(" files in ") }
            .joined(separator: "\n")
    }

    @Test func helpListsEveryNewNameAndNoOldOne() throws {
        for command in [["upload"], ["retry"], ["trigger"], ["master", "once"], ["master", "run"]] {
            let help = try CLI.run(command[0], Array(command.dropFirst()) + ["--help"])
            #expect(help.status == 0)
            let listed = Self.listedOptions(help.stdout)
            for flag in Self.renamed where flag.command == command {
                #expect(listed.contains(flag.new), "\(command) --help does not list \(flag.new)")
                #expect(!listed.contains(flag.old), "\(command) --help lists \(flag.old)")
            }
        }
    }

    // MARK: - upload

    /// `-d -b -p -w` plan exactly what `--source --bucket --prefix --workers` plan, and the note names each new
    /// flag once; the real upload with the old names puts the files under the old prefix in the bucket.
    @Test func uploadsOldFlagsPlanAndUploadAsTheNewOnes() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        for index in 0..<5 { try scratch.write("elsewhere/d\(index % 2)/f\(index).wav", "old-\(index)") }
        let config = try configFile(scratch, s3, bucket: "not-this-one")
        let prefix = String(s3.prefix.dropLast())
        let values = ["elsewhere", s3.bucket, prefix, "3"]
        let old = zip(["-d", "-b", "-p", "-w"], values).flatMap { [$0, $1] }
        let new = zip(["--source", "--bucket", "--prefix", "--workers"], values).flatMap { [$0, $1] }
        let plan = ["--config", config, "--dry-run", "--json", "--database", database.url]

        // The directory is taken relative to where the command runs, as the old tool took it.
        let planOld = try CLI.run("upload", plan + old, environment: s3.environment, directory: scratch.url)
        let planNew = try CLI.run("upload", plan + new, environment: s3.environment, directory: scratch.url)

        #expect(planOld.status == 0, "\(planOld.stderr)")
        #expect(Self.untimed(planOld.stdout) == Self.untimed(planNew.stdout))
        #expect(
            planOld.stderr
                == "note: -d is now --source\nnote: -b is now --bucket\nnote: -p is now --prefix\n"
                + "note: -w is now --workers\n"
        )
        let decoded = try JSONDecoder.snakeCase.decode(UploadPlan.self, from: Data(planOld.stdout.utf8))
        #expect(decoded.workers == 3 && decoded.bucket == s3.bucket && decoded.toUploadFiles == 5)
        #expect(decoded.samples.allSatisfy { $0.key.hasPrefix(s3.prefix + "d") }, "\(decoded.samples.map(\.key))")

        let upload = try CLI.run(
            "upload",
            ["--config", config, "--database", database.url] + old,
            environment: s3.environment,
            directory: scratch.url
        )

        #expect(upload.status == 0, "\(upload.stderr)")
        #expect(Set(try bucketContents(s3).keys) == Set((0..<5).map { "\(s3.prefix)d\($0 % 2)/f\($0).wav" }))
    }

    /// `--aws-profile` takes the credentials of that profile of the shared files, as `--profile` does, before
    /// the wrong keys in the environment.
    @Test func awsProfileIsTheProfileFlag() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.write("data/a.wav", "a")
        let credentials = try scratch.write(
            "credentials",
            "[legacy]\naws_access_key_id = \(s3.accessKeyID)\naws_secret_access_key = \(s3.secretAccessKey)\n"
        )
        var environment = s3.environment
        environment["AWS_ACCESS_KEY_ID"] = "AKIAWRONGWRONGWRONG0"
        environment["AWS_SECRET_ACCESS_KEY"] = "wrong"
        environment["AWS_SHARED_CREDENTIALS_FILE"] = credentials
        environment["AWS_CONFIG_FILE"] = scratch.url.appendingPathComponent("no-config").path
        let config = try configFile(scratch, s3)
        let check = ["--config", config, "--check", "--json", "--database", database.url]

        let withoutProfile = try CLI.run("upload", check, environment: environment)
        let old = try CLI.run("upload", check + ["--aws-profile", "legacy"], environment: environment)
        let new = try CLI.run("upload", check + ["--profile", "legacy"], environment: environment)

        #expect(withoutProfile.status == 3, "the environment's keys are wrong: \(withoutProfile.stdout)")
        #expect(old.status == 0, "\(old.stdout)\(old.stderr)")
        #expect(new.status == 0, "\(new.stdout)\(new.stderr)")
        #expect(old.stdout == new.stdout)
        #expect(old.stderr == "note: --aws-profile is now --profile\n")
        #expect(new.stderr.isEmpty)
    }

    @Test func sourceFlagIsRefusedForAConfigurationWithSeveralSources() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let config = try scratch.write(
            "agent.yaml",
            """
            project: { name: p }
            s3: { bucket: fleet-data }
            sources: [{ name: a, path: /data/a }, { name: b, path: /data/b }]

            """
        )

        let result = try CLI.run("upload", ["--config", config, "--dry-run", "-d", "/data/c"])

        #expect(result.status == 2)
        #expect(
            result.stderr
                == "note: -d is now --source\nupload: \(config): source.path (from --source): applies to a"
                + " configuration with one source, not to one that lists sources\n"
        )
    }

    // MARK: - retry

    /// An uploaded session whose files the ledger then says failed, each attempted `attempts` times.
    private func failedSession(_ s3: TestS3, _ database: TestDatabase, attempts: Int) throws -> (Scratch, String) {
        let scratch = try Scratch()
        for index in 0..<4 { try scratch.write("data/f\(index).txt", "retry-\(index)") }
        let config = try configFile(scratch, s3)
        let upload = try CLI.run(
            "upload",
            ["--config", config, "--database", database.url],
            environment: s3.environment
        )
        #expect(upload.status == 0, "\(upload.stderr)")
        try database.connect().execute(
            PGQuery(
                unsafeSQL:
                    "UPDATE file_uploads SET status = 'failed', error_class = 'timeout', etag = NULL, attempts = \(attempts)"
            )
        )
        return (scratch, upload.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// What a retry did, by the ledger and its summary: exit status, ending, rounds, files uploaded, attempts.
    private func retryOutcome(_ arguments: [String], attempts: Int) throws -> (String, String) {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let (scratch, session) = try failedSession(s3, database, attempts: attempts)
        defer { scratch.remove() }
        let result = try CLI.run(
            "retry",
            arguments.map { $0 == "SESSION" ? session : $0 } + ["--json", "--database", database.url],
            environment: s3.environment
        )
        let document = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        let rows = try database.connect().execute(
            "SELECT count(*) FILTER (WHERE status = 'uploaded'), sum(attempts) FROM file_uploads"
        )
        let outcome =
            "exit \(result.status), \(document?["ending"] ?? "-"), \((document?["rounds"] as? [Any])?.count ?? -1)"
            + " rounds, \(rows.int(0, 0) ?? -1) uploaded, \(rows.int(0, 1) ?? -1) attempts"
        return (outcome, result.stderr)
    }

    @Test func retrysOldFlagsRetryAsTheNewOnes() throws {
        let old = [
            "--session-id", "SESSION", "--auto-retry", "--max-rounds", "2", "--max-attempts", "50", "--delay", "0",
        ]
        let new = [
            "--session", "SESSION", "--auto", "--rounds", "2", "--max-file-attempts", "50", "--round-backoff-base", "0",
        ]

        let (oldOutcome, oldNotes) = try retryOutcome(old, attempts: 1)
        let (newOutcome, newNotes) = try retryOutcome(new, attempts: 1)

        #expect(oldOutcome == "exit 0, all_uploaded, 1 rounds, 4 uploaded, 8 attempts")
        #expect(newOutcome == oldOutcome)
        #expect(
            oldNotes.hasPrefix(
                "note: --session-id is now --session\nnote: --auto-retry is now --auto\n"
                    + "note: --max-rounds is now --rounds\nnote: --max-attempts is now --max-file-attempts\n"
                    + "note: --delay is now --round-backoff-base\n"
            ),
            "\(oldNotes)"
        )
        #expect(!newNotes.contains("note:"))

        // Files already attempted 5 times are out of attempts with either name.
        let spent = try retryOutcome(["--session-id", "SESSION", "--auto-retry", "--max-attempts", "5"], attempts: 5)
        #expect(spent.0 == "exit 1, nothing_to_retry, 0 rounds, 0 uploaded, 20 attempts")
        #expect(
            try retryOutcome(["--session", "SESSION", "--auto", "--max-file-attempts", "5"], attempts: 5).0 == spent.0
        )
    }

    @Test func retrysOldFlagsAreRefusedAsTheNewOnesAre() throws {
        let cases: [([String], String)] = [
            (["--session-id", "1", "--delay", "5"], "Error: --round-backoff-base applies with --auto"),
            (["--session-id", "1", "--max-attempts", "5"], "Error: --max-file-attempts applies with --auto"),
            (["--session-id", "1", "--auto-retry", "--max-rounds", "0"], "Error: --rounds must be 1…1000, got 0"),
            (["--session-id", "x"], "Error: The value 'x' is invalid for '--session <id>'"),
        ]
        for (arguments, reason) in cases {
            let result = try CLI.run("retry", arguments)
            #expect(result.status == 2, "\(arguments)")
            let lines = result.stderr.split(separator: "\n").map(String.init)
            #expect(lines.contains(reason), "\(arguments): \(result.stderr)")
            #expect(lines.filter { $0.hasPrefix("note: ") }.count == arguments.filter { $0.hasPrefix("--") }.count)
        }
    }

    // MARK: - trigger

    @Test func triggersOldFlagsAnnounceAsTheNewOnes() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        try scratch.write("data/a.txt", "a")
        let config = try configFile(scratch, s3)
        let upload = try CLI.run(
            "upload",
            ["--config", config, "--database", database.url],
            environment: s3.environment
        )
        let session = upload.stdout.trimmingCharacters(in: .whitespacesAndNewlines)

        let old = try CLI.run(
            "trigger",
            ["--session-id", session, "--endpoint-url", receiver.url, "--database", database.url]
        )
        let new = try CLI.run("trigger", ["--session", session, "--url", receiver.url, "--database", database.url])

        #expect(old.status == 0, "\(old.stderr)")
        #expect(new.status == 0, "\(new.stderr)")
        #expect(old.stderr == "note: --session-id is now --session\nnote: --endpoint-url is now --url\n")
        let requests = try receiver.requests()
        #expect(requests.count == 2)
        let documents = try requests.map { try $0.document() }
        #expect(documents.map { $0["session_id"] as? Int } == [Int(session), Int(session)])
        #expect(requests.map { $0.header("Idempotency-Key") } == ["\(session)-1", "\(session)-2"])
        for result in [old, new] {
            #expect(result.stdout.hasPrefix("session \(session): delivered to \(receiver.url) (HTTP 200, attempt 1"))
        }
    }

    // MARK: - master

    @Test func masterOnceOldFlagsRunTheCycleAsTheNewOnes() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        // One file whose key is longer than S3 allows: a permanent failure, so the cycle has failed files.
        let deep = (0..<5).map { _ in String(repeating: "d", count: 250) }.joined(separator: "/")
        try scratch.write("data/\(deep)/too-long.txt", "x")
        try scratch.write("data/ok.txt", "ok")
        let config = try configFile(
            scratch,
            s3,
            sections: #""trigger": { "url": "\#(receiver.url)" }"#
        )
        let base = ["once", "--config", config, "--json", "--database", database.url]
        func run(_ flags: [String]) throws -> (CLIResult, [String: Any]) {
            let result = try CLI.run("master", base + flags, environment: s3.environment)
            let document = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
            return (result, document ?? [:])
        }

        let (skipped, skippedDocument) = try run(["--skip-retry", "--skip-endpoint"])
        let (noneNew, noneDocument) = try run(["--no-retry", "--no-trigger"])
        let (full, fullDocument) = try run([])
        let (other, otherDocument) = try run(["-e", receiver.url])

        for result in [skipped, noneNew, full, other] { #expect(result.status == 1, "\(result.stderr)") }
        #expect(
            skipped.stderr.hasPrefix(
                "note: --skip-retry is now --no-retry\nnote: --skip-endpoint is now --no-trigger\n"
            )
        )
        #expect(other.stderr.hasPrefix("note: -e is now --url\n"))
        for document in [skippedDocument, noneDocument] {
            #expect(document["retry"] == nil || document["retry"] is NSNull, "no retry rounds")
            #expect(document["trigger"] == nil || document["trigger"] is NSNull, "no trigger")
        }
        for document in [fullDocument, otherDocument] {
            #expect(document["retry"] is [String: Any], "without them, the cycle retries")
            #expect(document["trigger"] is [String: Any], "and announces the session")
        }
        let announced = [fullDocument, otherDocument].map { ($0["session"] as? [String: Any])?["session_id"] as? Int }
        #expect(try receiver.requests().map { try $0.document()["session_id"] as? Int } == announced)
    }

    @Test func masterOnceNoTriggerAndUrlAreRefusedTogether() throws {
        for flags in [
            ["--no-trigger", "--url", "http://127.0.0.1:9/"], ["--skip-endpoint", "-e", "http://127.0.0.1:9/"],
        ] {
            let result = try CLI.run("master", ["once", "--config", "x.json"] + flags)
            #expect(result.status == 2)
            #expect(result.stderr.contains("Error: --no-trigger and --url cannot be combined\n"), "\(result.stderr)")
        }
    }

    @Test func masterOnceDryRunPrintsWhatUploadDryRunPrints() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        for index in 0..<7 { try scratch.write("data/f\(index).wav", String(repeating: "x", count: index)) }
        let config = try configFile(scratch, s3)

        let once = try CLI.run("master", ["once", "--config", config, "--dry-run", "--database", database.url])
        let upload = try CLI.run("upload", ["--config", config, "--dry-run", "--database", database.url])

        #expect(once.status == 0, "\(once.stderr)")
        #expect(Self.untimed(once.stdout) == Self.untimed(upload.stdout))
        #expect(once.stdout.contains("to upload         7 files, 21 B"))
        #expect(try database.connect().execute("SELECT count(*) FROM sync_sessions").int(0, 0) == 0)
        #expect(try bucketContents(s3).isEmpty)
    }

    @Test func masterRunTestConfigIsCheck() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.write("data/a.txt", "a")
        let config = try configFile(scratch, s3)
        let missing = "no-such-bucket-\(UUID().uuidString.prefix(8).lowercased())"
        let broken = try scratch.write(
            "broken.json",
            try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(of: s3.bucket, with: missing)
        )

        let old = try CLI.run(
            "master",
            ["run", "--config", config, "--test-config", "--database", database.url],
            environment: s3.environment
        )
        let new = try CLI.run(
            "master",
            ["run", "--config", config, "--check", "--database", database.url],
            environment: s3.environment
        )
        let oldBroken = try CLI.run(
            "master",
            ["run", "--config", broken, "--test-config", "--database", database.url],
            environment: s3.environment
        )

        #expect(old.status == 0, "\(old.stdout)\(old.stderr)")
        #expect(new.status == 0)
        #expect(old.stdout == new.stdout)
        #expect(old.stderr == "note: --test-config is now --check\n")
        #expect(oldBroken.status == 3, "a missing bucket fails the check: \(oldBroken.stdout)")
    }
}
