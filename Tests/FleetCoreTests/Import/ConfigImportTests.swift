import FleetAWS
import FleetSystem
import Foundation
import Testing

@testable import FleetCore

/// `master import-config`'s mapping: each old format, built here, becomes a configuration our loader accepts and
/// that keeps the old tool's keys, schedule, hours and deletion policies.
struct ConfigImportTests {
    static let environment = ["HOME": "/home/autoware", "USER": "autoware"]
    static let options = ConfigImport.Options(environment: environment, currentDirectory: "/srv/old")

    static func run(_ tool: ConfigImport.Tool, _ text: String, project: String? = nil) throws -> ImportedConfig {
        var options = Self.options
        options.project = project
        return try ConfigImport.run(tool, file: "old.conf", contents: Data(text.utf8), options: options)
    }

    /// The written configuration, read back the way `master run` and `upload` read it.
    static func loaded(_ imported: ImportedConfig) throws -> FleetConfig {
        let text = imported.rendered()
        let document =
            imported.format == .json ? try ConfigValue.parseJSON(Data(text.utf8)) : try ConfigValue.parseYAML(text)
        return try ConfigLoader.decode(document)
    }

    static func error(_ body: () throws -> Void) -> ConfigError? {
        do {
            try body()
        } catch let error as ConfigError {
            return error
        } catch {
            return nil
        }
        return nil
    }

    static func admits(_ source: SourceSettings, _ path: String) throws -> Bool {
        let filter = GlobFilter(
            include: try (source.include ?? []).map { try GlobPattern($0) },
            exclude: try (source.exclude ?? []).map { try GlobPattern($0) }
        )
        return filter.admits(Array(path.utf8))
    }

    // MARK: - TVM

    /// The daemon's documented example, as its README gives it.
    static let tvmExample = """
        vehicle_id: "vehicle-CN-001"
        log_directories:
          - /home/autoware/.parcel/log/terminal   # Terminal logs
          - /home/autoware/.ros/log                # ROS logs
          - /var/log                               # System logs
          - /home/autoware/ros2_ws/log             # ROS2 logs
        s3:
          bucket: t01logs
          region: cn-north-1
          credentials_path: /home/autoware/.aws
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

        """

    @Test func theTVMExampleBecomesAnAgentConfigurationWithTheSameKeysAndPolicies() throws {
        let imported = try Self.run(.tvm, Self.tvmExample)
        #expect(imported.format == .yaml)
        let config = try Self.loaded(imported)
        let resolved = config.resolved

        #expect(config.project.name == "t01logs")
        #expect(config.device == "vehicle-CN-001")
        #expect(config.s3.bucket == "t01logs" && config.s3.region == "cn-north-1" && config.s3.profile == "china")
        #expect(config.s3.credentialsPath == "/home/autoware/.aws")
        #expect(resolved.sources.map(\.name) == ["terminal", "ros", "syslog", "ros2"])
        #expect(
            resolved.sources.map(\.path) == [
                "/home/autoware/.parcel/log/terminal", "/home/autoware/.ros/log", "/var/log",
                "/home/autoware/ros2_ws/log",
            ]
        )
        #expect(resolved.sources.allSatisfy { $0.runFolders == false })
        #expect(resolved.keys.template == "{device}/{date}/{source}/{relpath}")
        #expect(resolved.keys.timezone == "local")

        #expect(resolved.agent.schedule == .every(seconds: 7200))
        #expect(resolved.agent.operationalHours?.start == ClockTime(hour: 9, minute: 0))
        #expect(resolved.agent.operationalHours?.end == ClockTime(hour: 16, minute: 1))
        #expect(resolved.agent.batchUpload && resolved.agent.uploadOnStart && resolved.agent.scanExistingFiles)
        #expect(resolved.agent.scanMaxAgeDays == 3)

        #expect(resolved.deletion.afterUpload?.keepDays == 7)
        #expect(resolved.deletion.age?.maxAgeDays == 14)
        #expect(resolved.deletion.age?.at == ClockTime(hour: 2, minute: 0))
        #expect(resolved.deletion.age?.includeUnuploaded == true)
        #expect(resolved.deletion.emergency.active && resolved.deletion.emergency.includeUnuploaded)
        #expect(resolved.metrics.cloudwatch.enabled)
        // /var/log keeps its files: the rail holds unless the old file said allow_deletion.
        #expect(resolved.sources[2].allowDeletion == false)
        #expect(imported.notices.contains { $0.hasPrefix("log_directories[2] (/var/log)") })
    }

    @Test func everyWrittenKeyNamesWhereItCameFrom() throws {
        let text = try Self.run(.tvm, Self.tvmExample).rendered()
        let keyLines = text.split(separator: "\n").filter { !$0.hasPrefix("#") && $0.contains(":") }
        for line in keyLines where !line.hasSuffix(":") {
            #expect(line.contains("  # "), "no origin on: \(line)")
        }
    }

    @Test func directoriesWithSourcePatternRecursionAndDeletionAreKept() throws {
        let imported = try Self.run(
            .tvm,
            """
            vehicle_id: v-7
            log_directories:
              - path: ${HOME}/.ros/log
                source: ros
              - path: ~/logs/app
                source: app
                pattern: "*.log"
                recursive: false
                allow_deletion: false
              - path: /var/log
                source: syslog
                pattern: "syslog.[1-9]*"
                recursive: false
                allow_deletion: true
              - path: relative/dir
                source: other
            s3: { bucket: fleet-logs, region: cn-north-1, credentials_path: "${HOME}/.aws" }
            upload:
              schedule: { mode: interval, interval_hours: 1, interval_minutes: 30, daily_time: "15:00" }
              file_stable_seconds: 45
              operational_hours: { start: "8:00", end: "22:30" }
              scan_existing_files: { max_age_days: 0 }
              queue_file: /var/lib/tvm-upload/queue.json
              processed_files_registry: { registry_file: /var/lib/tvm-upload/processed_files.json, retention_days: 30 }
            deletion:
              after_upload: { enabled: true }
            disk: { reserved_gb: 70, warning_threshold: 0.85, critical_threshold: 0.97 }
            monitoring: { cloudwatch_enabled: false, publish_interval_seconds: 600 }
            s3_lifecycle: { retention_days: 14 }

            """,
            project: "fleet-a"
        )
        let config = try Self.loaded(imported)
        let resolved = config.resolved
        #expect(config.project.name == "fleet-a")
        #expect(config.s3.credentialsPath == "/home/autoware/.aws")
        #expect(
            resolved.sources.map(\.path) == [
                "/home/autoware/.ros/log", "/home/autoware/logs/app", "/var/log", "/srv/old/relative/dir",
            ]
        )
        let (ros, app, syslog, other) = (
            resolved.sources[0], resolved.sources[1], resolved.sources[2], resolved.sources[3]
        )
        #expect(ros.runFolders == false && other.runFolders == false)
        #expect(app.allowDeletion == false && syslog.allowDeletion == true)

        // Hidden files are skipped everywhere; recursive: false leaves subdirectories out.
        #expect(try Self.admits(ros, "run-1/launch.log"))
        #expect(try !Self.admits(ros, ".hidden.log") && !Self.admits(ros, "run-1/.lock"))
        #expect(try Self.admits(app, "a.log") && !Self.admits(app, "sub/b.log") && !Self.admits(app, "a.txt"))
        #expect(try Self.admits(syslog, "syslog.1") && !Self.admits(syslog, "syslog"))
        #expect(try !Self.admits(syslog, "apt/syslog.2"))
        #expect(try Self.admits(other, "deep/down/x"))

        #expect(resolved.agent.schedule == .every(seconds: 5400))
        #expect(resolved.agent.stabilitySeconds == 45)
        #expect(resolved.agent.operationalHours?.start == ClockTime(hour: 8, minute: 0))
        #expect(resolved.agent.operationalHours?.end == ClockTime(hour: 22, minute: 31))
        #expect(resolved.agent.scanMaxAgeDays == ConfigImport.noAgeLimitDays)
        #expect(resolved.deletion.afterUpload?.keepDays == 14, "the old default when keep_days is not given")
        #expect(resolved.deletion.age == nil)
        #expect(resolved.deletion.emergency.active == false)
        #expect(resolved.deletion.emergency.warnPercent == 85 && resolved.deletion.emergency.actPercent == 97)
        #expect(resolved.deletion.emergency.reservedGb == 70)
        #expect(!resolved.metrics.cloudwatch.enabled && resolved.metrics.cloudwatch.flushSeconds == 600)

        let left = Set(imported.left.map(\.key))
        #expect(
            left.isSuperset(of: [
                "upload.queue_file", "upload.processed_files_registry.registry_file",
                "upload.processed_files_registry.retention_days", "upload.schedule.daily_time", "s3_lifecycle",
            ])
        )
        #expect(imported.left.first { $0.key == "upload.queue_file" }?.reason.contains("import-state --queue") == true)
        #expect(imported.notices.contains("${HOME} in paths is '/home/autoware', from this shell's environment"))
    }

    @Test(arguments: [
        ("upload: { schedule: \"15:00\" }", UploadSchedule.daily(ClockTime(hour: 15, minute: 0))),
        ("upload: { schedule: { mode: daily, daily_time: \"7:05\" } }", .daily(ClockTime(hour: 7, minute: 5))),
        ("upload: { schedule: { mode: interval, interval_minutes: 45 } }", .every(seconds: 2700)),
        ("upload: { schedule: { mode: interval, interval_hours: 24 } }", .every(seconds: 86_400)),
    ])
    func schedulesKeepTheirTimes(upload: String, expected: UploadSchedule) throws {
        let text = "vehicle_id: v\nlog_directories: [/data/logs]\ns3: { bucket: fleet-logs }\n" + upload + "\n"
        #expect(try Self.loaded(Self.run(.tvm, text)).resolved.agent.schedule == expected)
    }

    @Test func hoursEndingAtTheLastMinuteCoverTheDayAndHoursMayCrossMidnight() throws {
        let base = "vehicle_id: v\nlog_directories: [/data/logs]\ns3: { bucket: fleet-logs }\n"
        let whole = try Self.run(.tvm, base + "upload: { operational_hours: { start: \"00:00\", end: \"23:59\" } }\n")
        #expect(try Self.loaded(whole).resolved.agent.operationalHours == nil)
        #expect(whole.notices.contains { $0.contains("covers the whole day") })

        let night = try Self.run(.tvm, base + "upload: { operational_hours: { start: \"22:00\", end: \"05:59\" } }\n")
        let hours = try Self.loaded(night).resolved.agent.operationalHours
        #expect(hours?.start == ClockTime(hour: 22, minute: 0) && hours?.end == ClockTime(hour: 6, minute: 0))

        let off = try Self.run(
            .tvm,
            base + "upload: { operational_hours: { enabled: false, start: \"09:00\", end: \"16:00\" } }\n"
        )
        #expect(try Self.loaded(off).resolved.agent.operationalHours == nil)
        #expect(ClockTime(hour: 23, minute: 59).nextMinute == ClockTime(hour: 0, minute: 0))
    }

    @Test func guessedSourcesFollowTheOldDaemon() {
        #expect(TVMConfigImport.guessedSource("/home/a/.parcel/log/terminal") == "terminal")
        #expect(TVMConfigImport.guessedSource("/home/a/.ros/log") == "ros")
        #expect(TVMConfigImport.guessedSource("/home/a/ros2_ws/log") == "ros2")
        #expect(TVMConfigImport.guessedSource("/var/log") == "syslog")
        #expect(TVMConfigImport.guessedSource("/opt/app/logs") == "logs")
    }

    @Test(arguments: [
        ("log_directories: [/d]\ns3: { bucket: b1b }\n", "vehicle_id", "is required"),
        ("vehicle_id: v\ns3: { bucket: b1b }\n", "log_directories", "is required"),
        ("vehicle_id: v\nlog_directories: [/d]\n", "s3.bucket", "is required"),
        (
            "vehicle_id: v\nlog_directories: [/d]\ns3: { bucket: b1b }\nupload: { schedule: { mode: interval, "
                + "interval_minutes: 3 } }\n", "upload.schedule.interval_hours", "5 minutes…24 hours"
        ),
        (
            "vehicle_id: v\nlog_directories: [/d]\ns3: { bucket: b1b }\nupload: { schedule: { mode: weekly } }\n",
            "upload.schedule.mode", "daily or interval"
        ),
        (
            "vehicle_id: v\nlog_directories: [/d]\ns3: { bucket: b1b }\nupload: { operational_hours: { start: "
                + "\"25:00\", end: \"16:00\" } }\n", "upload.operational_hours.start", "HH:MM"
        ),
        ("vehicle_id: v\nlog_directories: [\"${NOPE}/logs\"]\ns3: { bucket: b1b }\n", "log_directories[0]", "${NOPE}"),
        (
            "vehicle_id: v\nlog_directories: [/a/logs, /b/logs]\ns3: { bucket: b1b }\n", "log_directories[1]",
            "also log_directories[0]"
        ),
        (
            "vehicle_id: v\nlog_directories: [/d]\ns3: { bucket: b1b }\ndisk: { warning_threshold: 90 }\n",
            "disk.warning_threshold", "fraction"
        ),
        (
            "vehicle_id: v\nlog_directories: [/d]\ns3: { bucket: b1b }\nupload: { batch_upload: { enabled: maybe } }\n",
            "upload.batch_upload.enabled", "true or false"
        ),
    ])
    func badOldFilesAreRefusedNamingTheFileAndTheKey(text: String, key: String, reason: String) {
        let error = Self.error { _ = try Self.run(.tvm, text) }
        #expect(error?.file == "old.conf")
        #expect(error?.keyPath == key, "\(String(describing: error))")
        #expect(error?.message.contains(reason) == true, "\(String(describing: error))")
    }

    @Test func malformedYAMLIsRefusedNamingTheFile() {
        let error = Self.error { _ = try Self.run(.tvm, "vehicle_id: [unclosed\n") }
        #expect(error?.description.hasPrefix("old.conf: ") == true, "\(String(describing: error))")
    }

    // MARK: - Data Uploader

    static let dataUploaderExample = """
        {
          "local_directory": "/data/survey",
          "bucket_name": "fleet-datasets",
          "s3_prefix": "acoustic/2026",
          "max_workers": 32,
          "aws_region": "us-east-1",
          "times_to_retry": 5,
          "aws_profile": "lab",
          "use_find": "yes",
          "db_password": "hunter2",
          "endpoint_url": "https://pipeline.example/hooks/upload"
        }
        """

    @Test func theDataUploaderConfigurationBecomesASessionWithTheSameKeys() throws {
        let imported = try Self.run(.dataUploader, Self.dataUploaderExample)
        #expect(imported.format == .json)
        let config = try Self.loaded(imported)
        let resolved = config.resolved
        #expect(config.project.name == "fleet-datasets")
        #expect(config.s3.bucket == "fleet-datasets" && config.s3.prefix == "acoustic/2026")
        #expect(config.s3.region == "us-east-1" && config.s3.profile == "lab")
        #expect(config.source?.path == "/data/survey")
        #expect(resolved.keys.template == "{prefix}/{relpath}")
        #expect(resolved.upload.workers == 32 && resolved.upload.maxAttempts == 6)
        #expect(resolved.upload.compareWithBucket)
        #expect(resolved.trigger.url == "https://pipeline.example/hooks/upload")
        let source = try #require(config.source)
        for name in ["a.wav", "raw/B.WAV", "x/y/c.Jpeg", "d.jpg", "e.MP4", "f.mov", "g.AVI"] {
            #expect(try Self.admits(source, name), "\(name)")
        }
        for name in ["notes.txt", "a.wav.tmp", "bag.bag"] { #expect(try !Self.admits(source, name), "\(name)") }
        #expect(Set(imported.left.map(\.key)) == ["use_find", "db_password"])
        #expect(!imported.rendered().contains("hunter2") && !imported.left.contains { $0.reason.contains("hunter2") })
        #expect(imported.mappingLines().contains("s3.bucket ← bucket_name"))
    }

    @Test func theProjectIsTheOldProjectNameElseTheFlagElseTheBucket() throws {
        let base = #""local_directory": "/d", "bucket_name": "fleet-data""#
        #expect(try Self.loaded(Self.run(.dataUploader, "{\(base)}")).project.name == "fleet-data")
        #expect(try Self.loaded(Self.run(.dataUploader, "{\(base)}", project: "p1")).project.name == "p1")
        let named = "{\(base), \"project_name\": \"survey\"}"
        #expect(try Self.loaded(Self.run(.dataUploader, named, project: "p1")).project.name == "survey")
    }

    @Test func theDataUploadersDefaultsAreWrittenWhereOursDiffer() throws {
        let imported = try Self.run(.dataUploader, #"{"local_directory": "set1", "bucket_name": "fleet-data"}"#)
        let config = try Self.loaded(imported)
        #expect(config.s3.region == "eu-west-1" && config.s3.profile == "default")
        #expect(config.resolved.upload.maxAttempts == 4)
        #expect(config.source?.path == "/srv/old/set1")
    }

    @Test(arguments: [
        (#"{"bucket_name": "b1b"}"#, "local_directory"),
        (#"{"local_directory": "/d"}"#, "bucket_name"),
        (#"{"local_directory": "/d", "bucket_name": "b1b", "max_workers": 0}"#, "max_workers"),
        (#"{"local_directory": "/d", "bucket_name": "b1b", "times_to_retry": "x"}"#, "times_to_retry"),
    ])
    func badDataUploaderFilesNameTheKey(text: String, key: String) {
        let error = Self.error { _ = try Self.run(.dataUploader, text) }
        #expect(error?.file == "old.conf" && error?.keyPath == key, "\(String(describing: error))")
    }

    @Test func malformedJSONIsRefusedNamingTheFile() {
        let error = Self.error { _ = try Self.run(.dataUploader, #"{"local_directory": "/d",}"#) }
        #expect(error?.description.hasPrefix("old.conf: ") == true, "\(String(describing: error))")
    }

    // MARK: - bash daemon

    @Test func theBashDaemonsVariablesAndFlagsBecomeAnAgentConfiguration() throws {
        let imported = try Self.run(
            .bash,
            """
            # started by the instance's user data
            export S3_UPLOAD_INTERVAL=30
            S3_ROOT_DIR="${HOME}/output/s3"
            AWS_REGION=eu-central-1
            FILE_STABILITY_SECONDS=10
            AWS_SECRET_ACCESS_KEY=not-for-the-file
            nohup ./scripts/s3_upload_daemon.sh --interval 120 -s 5 -p colony >> /var/log/s3.log 2>&1 &

            """
        )
        let config = try Self.loaded(imported)
        let resolved = config.resolved
        #expect(config.project.name == "s3-upload-daemon")
        #expect(config.s3.bucket == nil && resolved.keys.firstDirIsBucket)
        #expect(config.s3.region == "eu-central-1" && config.s3.profile == "colony")
        #expect(config.source?.path == "/home/autoware/output/s3")
        #expect(resolved.agent.stabilitySeconds == 5 && resolved.agent.rescanMinutes == 2)
        #expect(resolved.agent.scanMaxAgeDays == ConfigImport.noAgeLimitDays)
        #expect(resolved.deletion.afterUpload?.keepDays == 0)
        #expect(resolved.agent.schedule == nil && resolved.agent.operationalHours == nil)
        #expect(imported.left.map(\.key) == ["line 6: AWS_SECRET_ACCESS_KEY"])
        #expect(!imported.rendered().contains("not-for-the-file"))
    }

    @Test func aSystemdUnitAndTheDaemonsDefaultsAreRead() throws {
        let imported = try Self.run(
            .bash,
            """
            [Service]
            Environment="S3_ROOT_DIR=/srv/colony/output/s3"
            ExecStart=/opt/colony/scripts/s3_upload_daemon.sh -i 5

            """,
            project: "colony"
        )
        let config = try Self.loaded(imported)
        #expect(config.project.name == "colony")
        #expect(config.source?.path == "/srv/colony/output/s3")
        #expect(config.s3.region == "eu-west-1")
        #expect(config.resolved.agent.stabilitySeconds == 2)
        #expect(config.resolved.agent.rescanMinutes == 0.1, "5 s is below the shortest rescan, 6 s")
    }

    @Test(arguments: [
        ("s3_upload_daemon.sh -x 3\n", "line 1: -x"),
        ("./s3_upload_daemon.sh -d\n", "line 1: -d"),
        ("S3_UPLOAD_INTERVAL=soon\n", "S3_UPLOAD_INTERVAL on line 1"),
        ("echo hello\n", ""),
        ("S3_ROOT_DIR='unclosed\n", "line 1"),
    ])
    func badBashFilesNameTheLineAndTheSetting(text: String, key: String) {
        let error = Self.error { _ = try Self.run(.bash, text) }
        #expect(error?.file == "old.conf" && (error?.keyPath ?? "") == key, "\(String(describing: error))")
    }

    // MARK: - s3.credentials_path

    @Test func credentialsPathNamesTheDirectoryOfTheSharedFiles() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("aws-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try "[profile china]\nregion = cn-northwest-1\n".write(
            to: directory.appendingPathComponent("config"),
            atomically: true,
            encoding: .utf8
        )
        let config = try ConfigLoader.decode(
            ConfigValue.parseYAML(
                """
                project: { name: p }
                s3: { bucket: fleet-logs, profile: china, credentials_path: "\(directory.path)" }
                source: { path: /data }

                """
            )
        )
        let context = try S3Context(
            config: config,
            environment: ["AWS_CONFIG_FILE": "/nonexistent/config"],
            homeDirectory: "/nonexistent"
        )
        #expect(context.endpoint.region == "cn-northwest-1")
        #expect(context.endpoint.authority.hasSuffix(".amazonaws.com.cn"))
    }
}
