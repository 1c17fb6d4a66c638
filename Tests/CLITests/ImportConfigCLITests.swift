import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore

/// `master import-config` through the binaries: each old tool's example configuration imports, loads, and the
/// imported configuration's dry run (`upload --dry-run`, which plans without uploading, for agent and session
/// configurations alike) maps a sample tree to exactly the keys the old tool used.
@Suite(.serialized)
struct ImportConfigCLITests {
    /// The plan's keys by local path, from `upload --dry-run --json` (every file, as the trees have at most ten).
    static func plannedKeys(
        _ config: String,
        database: TestDatabase,
        environment: [String: String] = [:]
    ) throws
        -> [String: String]
    {
        let plan = try CLI.run(
            "upload",
            ["--config", config, "--dry-run", "--json", "--database", database.url],
            environment: environment
        )
        #expect(plan.status == 0, "\(plan.stderr)")
        struct Plan: Decodable {
            struct Sample: Decodable {
                var localPath: String
                var bucket: String
                var key: String
            }
            var samples: [Sample]
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let decoded = try decoder.decode(Plan.self, from: Data(plan.stdout.utf8))
        return Dictionary(uniqueKeysWithValues: decoded.samples.map { ($0.localPath, "\($0.bucket):\($0.key)") })
    }

    static func write(_ scratch: Scratch, _ path: String, modified: Date? = nil) throws {
        let file = try scratch.write(path, "contents of \(path)\n")
        if let modified {
            try FileManager.default.setAttributes([.modificationDate: modified], ofItemAtPath: file)
        }
    }

    // MARK: - TVM

    /// The TVM daemon's example: its four directories (as bare paths, named from the path as the daemon named
    /// them, and one with source, pattern and recursive: false), its s3, schedule, hours and deletion sections.
    /// Files are dated 01:30 in Shanghai, the evening before in UTC: keys carry the local date, as the daemon's did.
    @Test func theTVMExampleImportsAndItsDryRunUsesTheDaemonsKeys() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let zone = TimeZone(identifier: "Asia/Shanghai")!
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        var moment = calendar.date(bySettingHour: 1, minute: 30, second: 0, of: Date())!
        if moment > Date().addingTimeInterval(-3600) { moment = calendar.date(byAdding: .day, value: -1, to: moment)! }
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd"
        formatter.timeZone = zone
        let local = formatter.string(from: moment)
        formatter.timeZone = TimeZone(identifier: "UTC")!
        #expect(formatter.string(from: moment) != local, "the UTC date differs, so the test tells the two apart")

        let home = scratch.url.path
        let files = [
            ".parcel/log/terminal/terminal_2026-11-23_10-30-15.log",
            ".ros/log/2020-01-01-10-00-00-123456-mini01/launch.log",
            ".ros/log/some-loose-file.log", ".ros/log/.hidden.log", "varlog/syslog", "varlog/syslog.1",
            "varlog/kern.log", "varlog/apt/syslog.2", "ros2_ws/log/ros2_node.log",
        ]
        for file in files { try Self.write(scratch, file, modified: moment) }
        let old = try scratch.write(
            "config.yaml",
            """
            vehicle_id: "vehicle-CN-001"
            log_directories:
              - ${HOME}/.parcel/log/terminal
              - ~/.ros/log
              - path: ${HOME}/varlog
                source: syslog
                pattern: "syslog*"
                recursive: false
              - ${HOME}/ros2_ws/log
            s3:
              bucket: t01logs
              region: cn-north-1
              credentials_path: ${HOME}/.aws
              profile: china
            upload:
              schedule:
                mode: "interval"
                interval_hours: 2
                interval_minutes: 0
              operational_hours:
                enabled: true
                start: "09:00"
                end: "16:00"
              batch_upload:
                enabled: true
              upload_on_start: true
              queue_file: /var/lib/tvm-upload/queue.json
              scan_existing_files:
                enabled: true
                max_age_days: 3
            deletion:
              after_upload:
                enabled: true
                keep_days: 7
              age_based:
                enabled: true
                max_age_days: 14
                schedule_time: "02:00"
              emergency:
                enabled: true
            disk:
              reserved_gb: 70
              warning_threshold: 0.90
              critical_threshold: 0.95

            """
        )
        let agent = scratch.url.appendingPathComponent("agent.yaml").path
        let environment = ["HOME": home, "TZ": "Asia/Shanghai"]
        let imported = try CLI.run(
            "master",
            ["import-config", "--from", "tvm", old, "--output", agent],
            environment: environment
        )
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(imported.stderr.contains("import-config: not carried over: upload.queue_file: "), "\(imported.stderr)")
        #expect(imported.stderr.contains("import-config: wrote \(agent)"))
        let written = try String(contentsOfFile: agent, encoding: .utf8)
        #expect(written.contains("end: \"16:01\"  # upload.operational_hours.end 16:00"), "\(written)")
        let config = try ConfigLoader.load(path: agent)
        #expect(config.resolved.deletion.emergency.reservedGb == 70)
        #expect(config.resolved.agent.schedule == .every(seconds: 7200))

        let prefix = "t01logs:vehicle-CN-001/\(local)/"
        let expected = [
            ".parcel/log/terminal/terminal_2026-11-23_10-30-15.log": "terminal/terminal_2026-11-23_10-30-15.log",
            ".ros/log/2020-01-01-10-00-00-123456-mini01/launch.log": "ros/2020-01-01-10-00-00-123456-mini01/launch.log",
            ".ros/log/some-loose-file.log": "ros/some-loose-file.log",
            "varlog/syslog": "syslog/syslog",
            "varlog/syslog.1": "syslog/syslog.1",
            "ros2_ws/log/ros2_node.log": "ros2/ros2_node.log",
        ]
        let keys = try Self.plannedKeys(agent, database: database, environment: ["TZ": "Asia/Shanghai"])
        #expect(keys == Dictionary(uniqueKeysWithValues: expected.map { (home + "/" + $0.key, prefix + $0.value) }))
    }

    // MARK: - Data Uploader

    /// The Data Uploader's keys (every one it documents): keys are s3_prefix plus the path below local_directory,
    /// only the file types its scanner took; the project is the old project_name.
    @Test func theDataUploaderConfigurationImportsAndItsDryRunUsesPrefixAndRelativePath() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let files = ["sensor1/a.wav", "sensor1/b.JPG", "c.mp4", "deep/x/y.mov", "notes.txt", "sensor1/a.wav.tmp"]
        for file in files { try Self.write(scratch, "data/" + file) }
        try scratch.write(
            "uploader.json",
            """
            {
              "project_name": "acoustic-survey",
              "local_directory": "data",
              "bucket_name": "fleet-datasets",
              "s3_prefix": "acoustic/2026",
              "max_workers": 15,
              "aws_region": "us-east-1",
              "times_to_retry": 3,
              "aws_profile": "default",
              "use_find": true
            }
            """
        )
        let imported = try CLI.runTool(
            "/bin/sh",
            [
                "-c", "cd \"$1\" && \"$2\" import-config --from data-uploader uploader.json", "-", scratch.url.path,
                CLI.binaries.appendingPathComponent("master").path,
            ]
        )
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(imported.stderr.contains("import-config: s3.prefix ← s3_prefix"), "\(imported.stderr)")
        #expect(imported.stderr.contains("import-config: not carried over: use_find: "), "\(imported.stderr)")
        let session = try scratch.write("session.json", imported.stdout)
        let config = try ConfigLoader.load(path: session)
        #expect(config.project.name == "acoustic-survey")

        let root = scratch.url.appendingPathComponent("data").path
        let expected = [
            "sensor1/a.wav": "acoustic/2026/sensor1/a.wav", "sensor1/b.JPG": "acoustic/2026/sensor1/b.JPG",
            "c.mp4": "acoustic/2026/c.mp4", "deep/x/y.mov": "acoustic/2026/deep/x/y.mov",
        ]
        let keys = try Self.plannedKeys(session, database: database)
        #expect(
            keys
                == Dictionary(
                    uniqueKeysWithValues: expected.map { (root + "/" + $0.key, "fleet-datasets:" + $0.value) }
                )
        )
    }

    // MARK: - bash daemon

    /// The bash daemon's variables and flags: the first directory under the root is the bucket, the rest the key.
    @Test func theBashDaemonsSettingsImportAndTheFirstDirectoryNamesTheBucket() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        for file in ["distributed-colony/images_shots/file.png", "fleet-test/runs/2026/log.json"] {
            try Self.write(scratch, "output/s3/" + file, modified: Date().addingTimeInterval(-40 * 86_400))
        }
        let old = try scratch.write(
            "daemon.env",
            """
            export S3_UPLOAD_INTERVAL=60
            S3_ROOT_DIR=${HOME}/output/s3
            FILE_STABILITY_SECONDS=2
            ./scripts/s3_upload_daemon.sh --interval 30 -r eu-west-1 -s 3 &

            """
        )
        let imported = try CLI.run(
            "master",
            ["import-config", "--from", "bash", old, "--project", "colony"],
            environment: ["HOME": scratch.url.path]
        )
        #expect(imported.status == 0, "\(imported.stderr)")
        let agent = try scratch.write("agent.yaml", imported.stdout)
        let config = try ConfigLoader.load(path: agent)
        #expect(config.resolved.agent.rescanMinutes == 0.5 && config.resolved.agent.stabilitySeconds == 3)

        let root = scratch.url.appendingPathComponent("output/s3").path
        let keys = try Self.plannedKeys(agent, database: database)
        #expect(
            keys == [
                root + "/distributed-colony/images_shots/file.png": "distributed-colony:images_shots/file.png",
                root + "/fleet-test/runs/2026/log.json": "fleet-test:runs/2026/log.json",
            ]
        )
    }

    // MARK: - Refusals

    @Test func theOldFileIsNeverOverwritten() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let old = try scratch.write("config.yaml", "vehicle_id: v\nlog_directories: [/d]\ns3: { bucket: b1b }\n")
        let result = try CLI.run("master", ["import-config", "--from", "tvm", old, "--output", old])
        #expect(result.status == 2)
        #expect(result.reason.contains("--output names the old configuration itself"), "\(result.stderr)")
        #expect(try String(contentsOfFile: old, encoding: .utf8).hasPrefix("vehicle_id: v"))
    }

    @Test(
        arguments: [
            ("tvm", "missing.yaml", nil, "master: missing.yaml: cannot read the old configuration: no such file"),
            (
                "tvm", "cut.yaml", "vehicle_id: v\nlog_directories: [/d\n",
                "master: cut.yaml: invalid YAML"
            ),
            (
                "tvm", "hours.yaml",
                "vehicle_id: v\nlog_directories: [/d]\ns3: { bucket: b1b }\nupload: { operational_hours: { start: 9 } }\n",
                "master: hours.yaml: upload.operational_hours.start: expected a time of day as HH:MM, got '9'"
            ),
            ("data-uploader", "cut.json", "{\"local_directory\": ", "master: cut.json: invalid JSON"),
            ("bash", "daemon.env", "s3_upload_daemon.sh -q\n", "master: daemon.env: line 1: -q: not an option"),
        ] as [(String, String, String?, String)]
    )
    func unreadableOrMalformedOldFilesExitTwoNamingFileAndKey(
        tool: String,
        name: String,
        content: String?,
        expected: String
    ) throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        if let content { try scratch.write(name, content) }
        let result = try CLI.runTool(
            "/bin/sh",
            [
                "-c", "cd \"$1\" && \"$2\" import-config --from \"$3\" \"$4\"", "-", scratch.url.path,
                CLI.binaries.appendingPathComponent("master").path, tool, name,
            ]
        )
        #expect(result.status == 2)
        #expect(result.reason.hasPrefix(expected), "\(result.stderr)")
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.split(separator: "\n").count == 1)
    }
}
