import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore

/// The acceptance checks of `upload`, run as a user would run the binary.
struct UploadCLITests {
    static let validJSON = """
        {
          "project": { "name": "cli-test" },
          "s3": { "bucket": "cli-bucket", "prefix": "p" },
          "source": { "path": "data" },
          "upload": { "workers": 4 }
        }
        """

    static let unknownKeyJSON = validJSON.replacingOccurrences(of: "\"workers\"", with: "\"wokers\"")
    static let outOfRangeJSON = validJSON.replacingOccurrences(of: "\"workers\": 4", with: "\"workers\": 0")
    static let badConfigurations: [(file: String, content: String, expected: String)] = [
        ("bad.json", "{\n  \"project\": { \"name\": \"x\" },\n  \"s3\": \n}", "bad.json: invalid JSON"),
        ("bad.yaml", "project:\n  name: x\n s3: [unclosed\n", "bad.yaml: invalid YAML"),
        ("unknown.json", unknownKeyJSON, "unknown.json: upload.wokers: unknown key"),
        ("range.json", outOfRangeJSON, "range.json: upload.workers: must be auto or 1…1024, got 0"),
        (
            "age.json",
            validJSON.replacingOccurrences(of: "\"workers\": 4", with: "\"abandoned_multipart_hours\": -1"),
            "age.json: upload.abandoned_multipart_hours: must be 0…8760, got -1"
        ),
        (
            "bandwidth.json",
            validJSON.replacingOccurrences(of: "\"workers\": 4", with: "\"max_bandwidth\": \"08:00,2M 07:00,off\""),
            "bandwidth.json: upload.max_bandwidth: '07:00' is not later than the time before it"
        ),
        (
            "codec.json",
            validJSON.replacingOccurrences(
                of: #""path": "data""#,
                with: #""path": "data", "compress": { "codec": "gzip" }"#
            ),
            "codec.json: source.compress.codec: must be zstd, got 'gzip'"
        ),
        (
            "level.json",
            validJSON.replacingOccurrences(
                of: #""path": "data""#,
                with: #""path": "data", "compress": { "codec": "zstd", "level": 99 }"#
            ),
            "level.json: source.compress.level: must be \(Zstd.levels.lowerBound)…\(Zstd.levels.upperBound) (libzstd's levels), got 99"
        ),
        (
            "include.json",
            validJSON.replacingOccurrences(
                of: #""path": "data""#,
                with: #""path": "data", "compress": { "codec": "zstd", "include": ["[*.log"] }"#
            ),
            "include.json: source.compress.include[0]: "
        ),
        (
            "type.yaml",
            "project: {name: x}\ns3: {bucket: cli-bucket}\nsource: {path: data}\nupload: {workers: many}\n",
            "type.yaml: upload.workers: expected auto or a whole number, got \"many\""
        ),
    ]

    @Test(arguments: badConfigurations)
    func badConfigurationExitsTwoWithOneLineNamingTheKey(file: String, content: String, expected: String) throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = try scratch.write(file, content)

        let result = try CLI.run("upload", ["--config", path, "--dry-run"])

        #expect(result.status == 2)
        #expect(result.reason.hasPrefix("upload: \(scratch.url.path)/\(expected)"), "got: \(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "more than one line: \(result.stderr)")
    }

    @Test func environmentOverrideIsNamedInTheError() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = try scratch.write("ok.json", Self.validJSON)

        let result = try CLI.run(
            "upload",
            ["--config", path, "--dry-run"],
            environment: ["FLEET_UPLOAD_WORKERS": "2000"]
        )

        #expect(result.status == 2)
        #expect(result.reason.hasSuffix("upload.workers (from FLEET_UPLOAD_WORKERS): must be auto or 1…1024, got 2000"))
    }

    /// A negative number after `--workers` is the flag's value, refused by the range check that names the key.
    @Test func negativeWorkersFlagIsRefusedByTheRangeCheck() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = try scratch.write("ok.json", Self.validJSON)

        let result = try CLI.run("upload", ["--config", path, "--dry-run", "--workers", "-1"])

        #expect(result.status == 2)
        #expect(
            result.reason.hasSuffix("upload.workers (from --workers): must be auto or 1…1024, got -1"),
            "\(result.stderr)"
        )
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
    }

    /// A directory, a device or an empty file as `--config`: one line saying which, exit 2.
    @Test func configurationThatIsNotARegularFileIsNamedPlainly() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let directory = scratch.url.appendingPathComponent("configs.json").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let empty = try scratch.write("empty.yaml", "")
        let cases = [
            (directory, "is a directory, not a file"), ("/dev/null", "is a device, not a regular file"),
            (empty, "the file is empty"),
        ]
        for (path, reason) in cases {
            let result = try CLI.run("upload", ["--config", path, "--dry-run"])

            #expect(result.status == 2, "\(path)")
            #expect(result.stderr == "upload: \(path): cannot read the configuration: \(reason)\n")
        }
    }

    @Test func dryRunAndCheckTogetherAreRefused() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = try scratch.write("ok.json", Self.validJSON)

        let result = try CLI.run("upload", ["--config", path, "--dry-run", "--check"])

        #expect(result.status == 2)
        #expect(result.reason == "Error: --dry-run and --check cannot be combined: run one, then the other")
        #expect(result.stdout.isEmpty)
    }

    /// A missing source directory (an unmounted disk) is the environment, exit 3, in a dry run as in a real one.
    @Test func missingSourceDirectoryExitsThreeInADryRun() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = try scratch.write("ok.json", Self.validJSON)

        let result = try CLI.run("upload", ["--config", path, "--dry-run", "--database", database.url])

        #expect(result.status == 3, "\(result.stderr)")
        #expect(result.reason == "upload: source.path: no readable directory at '\(scratch.url.path)/data'")
        #expect(result.stdout.isEmpty)
    }

    @Test func emptyEndpointFlagExitsTwoInsteadOfTargetingAWS() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = try scratch.write("ok.json", Self.validJSON)

        let result = try CLI.run("upload", ["--config", path, "--dry-run", "--endpoint", ""])

        #expect(result.status == 2)
        #expect(
            result.reason.hasSuffix(
                "s3.endpoint (from --endpoint): is empty; leave the flag out to keep the file's value"
            )
        )
    }

    @Test func flagBeatsEnvironmentWhichBeatsTheFile() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = try scratch.write("ok.json", Self.validJSON)
        try scratch.write("data/a.wav", "x")

        let result = try CLI.run(
            "upload",
            ["--config", path, "--dry-run", "--json", "--workers", "7", "--database", database.url],
            environment: ["FLEET_UPLOAD_WORKERS": "9", "FLEET_S3_PREFIX": "from-env"]
        )

        #expect(result.status == 0, "\(result.stderr)")
        let plan = try JSONDecoder.snakeCase.decode(UploadPlan.self, from: Data(result.stdout.utf8))
        #expect(plan.workers == 7)
        #expect(plan.samples.map(\.key) == ["from-env/a.wav"])
    }

    @Test func unreachableDatabaseExitsThreeNamingWhereItTried() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = try scratch.write("ok.json", Self.validJSON)
        try scratch.write("data/a.wav", "x")
        let port = try unusedPort()

        let result = try CLI.run(
            "upload",
            ["--config", path, "--dry-run"],
            environment: ["DATABASE_URL": "postgresql://fleet:hunter2@127.0.0.1:\(port)/fleet"]
        )

        #expect(result.status == 3)
        #expect(result.reason.contains("cannot connect to the ledger at 127.0.0.1:\(port)/fleet"), "\(result.stderr)")
        #expect(!result.stderr.contains("hunter2"))
    }

    @Test func dryRunPrintsThePlanAndRecordsNothing() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = try scratch.write("ok.json", Self.validJSON)
        for index in 0..<25 {
            try scratch.write("data/d\(index % 3)/f\(index).wav", String(repeating: "x", count: index))
        }

        let result = try CLI.run("upload", ["--config", path, "--dry-run", "--database", database.url])

        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("to upload         25 files, 300 B"))
        #expect(result.stdout.contains("workers           4 files in flight"))
        #expect(result.stdout.contains("→ s3://cli-bucket/p/d"))
        let rows = try database.connect().execute(
            "SELECT (SELECT count(*) FROM projects) + (SELECT count(*) FROM sync_sessions)"
        )
        #expect(rows.int(0, 0) == 0)
    }

    @Test func dryRunShowsAutoWorkersWithWhereTheyStartAndTheirRange() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = try scratch.write(
            "ok.json",
            Self.validJSON.replacingOccurrences(of: "\"workers\": 4", with: "\"workers\": \"auto\"")
        )
        try scratch.write("data/a.wav", "x")

        let text = try CLI.run("upload", ["--config", path, "--dry-run", "--database", database.url])
        let json = try CLI.run("upload", ["--config", path, "--dry-run", "--json", "--database", database.url])

        #expect(text.status == 0, "\(text.stderr)")
        #expect(
            text.stdout.contains(
                "workers           auto: 64 files in flight at the start, adjusted between 1 and 1,024"
            ),
            "\(text.stdout)"
        )
        #expect(json.status == 0, "\(json.stderr)")
        let plan = try JSONDecoder.snakeCase.decode(UploadPlan.self, from: Data(json.stdout.utf8))
        #expect(plan.workers == .auto)
        #expect(plan.autoWorkers == UploadPlan.AutoWorkers(initial: 64, minimum: 1, maximum: 1024))
        #expect(json.stdout.contains(#""workers" : "auto""#), "\(json.stdout)")
    }

    @Test func unknownFlagExitsTwo() throws {
        let result = try CLI.run("upload", ["--config", "x.json", "--bogus"])
        #expect(result.status == 2)
        #expect(result.reason.contains("--bogus"))
    }

    @Test func unreadableDirectoryIsReportedAndTheRestIsPlanned() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = try scratch.write("ok.json", Self.validJSON)
        try scratch.write("data/open/a.wav", "a")
        try scratch.write("data/closed/b.wav", "b")
        let closed = scratch.url.appendingPathComponent("data/closed").path
        try FileManager.default.setAttributes([.posixPermissions: 0o000], ofItemAtPath: closed)
        defer { try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: closed) }
        // Root reads everything, so the scan runs as an ordinary user.
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: scratch.url.path)
        let user: String? = getuid() == 0 ? "nobody" : nil

        let result = try CLI.run(
            "upload",
            ["--config", path, "--dry-run", "--json", "--database", database.url],
            asUser: user
        )

        #expect(result.status == 0, "\(result.stderr)")
        let plan = try JSONDecoder.snakeCase.decode(UploadPlan.self, from: Data(result.stdout.utf8))
        #expect(plan.toUploadFiles == 1)
        #expect(plan.scan.problems == 1)
        #expect(plan.scanProblems.first?.contains("closed': Permission denied") == true)
        #expect(result.stderr.contains("unreadable directory"))
    }
}

extension JSONDecoder {
    static var snakeCase: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }
}
