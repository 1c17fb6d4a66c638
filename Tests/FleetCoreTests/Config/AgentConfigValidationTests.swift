import FleetAWS
import FleetSystem
import Foundation
import Testing

@testable import FleetCore

/// `agent` and `deletion`: the keys `master run` reads, checked when the configuration is loaded.
struct AgentConfigValidationTests {
    /// A one-source session: `agent` and `deletion` are allowed there too (an agent may watch one directory).
    private static let minimalYAML = """
        project:
          name: p
        s3:
          bucket: fleet-data
        source:
          path: /data

        """

    private static func decode(_ extra: String) throws -> FleetConfig {
        try ConfigLoader.decode(ConfigValue.parseYAML(minimalYAML + extra))
    }

    /// The first problem's one-line description, or nil when the document is valid.
    private static func firstError(_ extra: String) -> String? {
        do {
            _ = try decode(extra)
            return nil
        } catch let error as ConfigError {
            return error.description
        } catch {
            return "not a ConfigError: \(error)"
        }
    }

    private static let invalid: [(String, String)] = [
        // Agent timing
        ("agent:\n  stability_seconds: -1\n", "agent.stability_seconds: must be 0…86400 (a day), got -1"),
        ("agent:\n  stability_seconds: 86401\n", "agent.stability_seconds: must be 0…86400 (a day), got 86401"),
        ("agent:\n  rescan_minutes: 0.05\n", "agent.rescan_minutes: must be 0.1…1440 (6 seconds to a day), got 0.05"),
        ("agent:\n  rescan_minutes: 1441\n", "agent.rescan_minutes: must be 0.1…1440 (6 seconds to a day), got 1441"),
        ("agent:\n  heartbeat_seconds: 0\n", "agent.heartbeat_seconds: must be 1…3600, got 0"),
        ("agent:\n  heartbeat_seconds: 3601\n", "agent.heartbeat_seconds: must be 1…3600, got 3601"),
        (
            "agent:\n  stop_timeout_seconds: 0.5\n",
            "agent.stop_timeout_seconds: must be 1…50 (systemd stops the agent for good after 60 s), got 0.5"
        ),
        (
            "agent:\n  stop_timeout_seconds: 51\n",
            "agent.stop_timeout_seconds: must be 1…50 (systemd stops the agent for good after 60 s), got 51"
        ),
        ("agent:\n  stability_seconds: 1e20\n", "agent.stability_seconds: must be 0…86400 (a day), got 1e+20"),
        (
            "agent:\n  timezone: Mars/Olympus\n",
            "agent.timezone: unknown time zone 'Mars/Olympus' (use local, UTC, or a name like Asia/Shanghai)"
        ),
        // Schedule
        ("agent:\n  schedule: {}\n", "agent.schedule: give one of daily_at, every_minutes and every_hours"),
        (
            "agent:\n  schedule: {daily_at: '15:00', every_hours: 2}\n",
            "agent.schedule: give only one of daily_at, every_minutes and every_hours, got daily_at and every_hours"
        ),
        (
            "agent:\n  schedule: {daily_at: '15:00', every_minutes: 30, every_hours: 2}\n",
            "agent.schedule: give only one of daily_at, every_minutes and every_hours, got daily_at, every_minutes"
                + " and every_hours"
        ),
        (
            "agent:\n  schedule:\n    daily_at: '9:00'\n",
            "agent.schedule.daily_at: must be a time of day as HH:MM (00:00…23:59), got '9:00'"
        ),
        (
            "agent:\n  schedule:\n    daily_at: 24:00\n",
            "agent.schedule.daily_at: must be a time of day as HH:MM (00:00…23:59), got '24:00'"
        ),
        (
            "agent:\n  schedule:\n    every_minutes: 2\n",
            "agent.schedule.every_minutes: must be 5…1440 (5 minutes to 24 hours), got 2"
        ),
        (
            "agent:\n  schedule:\n    every_minutes: 4.9\n",
            "agent.schedule.every_minutes: must be 5…1440 (5 minutes to 24 hours), got 4.9"
        ),
        (
            "agent:\n  schedule:\n    every_minutes: 1441\n",
            "agent.schedule.every_minutes: must be 5…1440 (5 minutes to 24 hours), got 1441"
        ),
        (
            "agent:\n  schedule:\n    every_hours: 0.05\n",
            "agent.schedule.every_hours: must be 1/12…24 (5 minutes to 24 hours), got 0.05"
        ),
        (
            "agent:\n  schedule:\n    every_hours: 0\n",
            "agent.schedule.every_hours: must be 1/12…24 (5 minutes to 24 hours), got 0"
        ),
        (
            "agent:\n  schedule:\n    every_hours: 25\n",
            "agent.schedule.every_hours: must be 1/12…24 (5 minutes to 24 hours), got 25"
        ),
        // Operational hours
        (
            "agent:\n  operational_hours: {start: '9:00', end: '16:00'}\n",
            "agent.operational_hours.start: must be a time of day as HH:MM (00:00…23:59), got '9:00'"
        ),
        (
            "agent:\n  operational_hours: {start: '09:00', end: '16:60'}\n",
            "agent.operational_hours.end: must be a time of day as HH:MM (00:00…23:59), got '16:60'"
        ),
        (
            "agent:\n  operational_hours: {start: '09:00', end: '09:00'}\n",
            "agent.operational_hours.end: must differ from start (09:00); to upload at any hour, set enabled: false"
        ),
        ("agent:\n  operational_hours: {start: '09:00'}\n", "agent.operational_hours.end: is required"),
        // Deletion
        (
            "deletion:\n  after_upload: {keep_days: -1}\n",
            "deletion.after_upload.keep_days: must be 0…3650 (ten years), got -1"
        ),
        (
            "deletion:\n  after_upload: {keep_days: 3651}\n",
            "deletion.after_upload.keep_days: must be 0…3650 (ten years), got 3651"
        ),
        (
            "deletion:\n  age: {max_age_days: 0}\n",
            "deletion.age.max_age_days: must be more than 0 and at most 36500, got 0"
        ),
        (
            "deletion:\n  age: {max_age_days: 36501}\n",
            "deletion.age.max_age_days: must be more than 0 and at most 36500, got 36501"
        ),
        ("deletion:\n  age: {at: '02:00'}\n", "deletion.age.max_age_days: is required"),
        (
            "deletion:\n  age: {max_age_days: 14, at: '2:00'}\n",
            "deletion.age.at: must be a time of day as HH:MM (00:00…23:59), got '2:00'"
        ),
        ("deletion:\n  emergency: {warn_percent: 0}\n", "deletion.emergency.warn_percent: must be 1…100, got 0"),
        ("deletion:\n  emergency: {act_percent: 101}\n", "deletion.emergency.act_percent: must be 1…100, got 101"),
        (
            "deletion:\n  emergency: {warn_percent: 97, act_percent: 95}\n",
            "deletion.emergency.warn_percent: must be at most act_percent (95), got 97"
        ),
        (
            "deletion:\n  emergency: {warn_percent: 97}\n",
            "deletion.emergency.warn_percent: must be at most act_percent (95, the default), got 97"
        ),
        (
            "deletion:\n  emergency: {act_percent: 85}\n",
            "deletion.emergency.act_percent: must be at least warn_percent (90, the default), got 85"
        ),
        (
            "deletion:\n  emergency: {reserved_gb: -1}\n",
            "deletion.emergency.reserved_gb: must be 0…1000000 (GiB), got -1"
        ),
        (
            "deletion:\n  emergency: {reserved_gb: 1000001}\n",
            "deletion.emergency.reserved_gb: must be 0…1000000 (GiB), got 1000001"
        ),
        (
            "deletion:\n  emergency: {reserved_gb: lots}\n",
            "deletion.emergency.reserved_gb: expected a number, got \"lots\""
        ),
        // Decoding
        ("agent:\n  stabilty_seconds: 60\n", "agent.stabilty_seconds: unknown key"),
        ("deletion:\n  age_based: {max_age_days: 14}\n", "deletion.age_based: unknown key"),
    ]

    @Test(arguments: invalid)
    func invalidValueIsNamedByItsKeyPath(extra: String, expected: String) {
        #expect(Self.firstError(extra) == expected)
    }

    private static let valid: [String] = [
        "agent:\n  stability_seconds: 0\n",
        "agent:\n  stability_seconds: 86400\n  rescan_minutes: 0.1\n  heartbeat_seconds: 1\n  stop_timeout_seconds: 50\n",
        "agent:\n  rescan_minutes: 1440\n  heartbeat_seconds: 3600\n  stop_timeout_seconds: 1\n",
        "agent:\n  timezone: local\n",
        "agent:\n  timezone: UTC\n",
        "agent:\n  timezone: Asia/Shanghai\n",
        "agent:\n  schedule:\n    daily_at: 00:00\n",
        "agent:\n  schedule:\n    daily_at: '23:59'\n",
        "agent:\n  schedule:\n    every_minutes: 5\n",
        "agent:\n  schedule:\n    every_minutes: 1440\n",
        "agent:\n  schedule:\n    every_hours: 0.08333333333333333\n",
        "agent:\n  schedule:\n    every_hours: 24\n",
        "agent:\n  operational_hours: {start: '22:00', end: '06:00'}\n",
        "agent:\n  operational_hours: {start: '09:00', end: '16:00', enabled: false}\n",
        "agent:\n  schedule: ~\n  operational_hours: ~\n",
        "deletion:\n  after_upload: {keep_days: 0}\n  age: {max_age_days: 0.5}\n",
        "deletion:\n  after_upload: {keep_days: 3650}\n  age: {max_age_days: 36500, at: '23:59'}\n",
        "deletion:\n  emergency: {warn_percent: 95, act_percent: 95}\n",
        "deletion:\n  emergency: {warn_percent: 1, act_percent: 100, include_unuploaded: true}\n",
        "deletion:\n  emergency: {warn_percent: 50}\n",
        "deletion:\n  emergency: {enabled: false}\n",
        "deletion:\n  emergency: {reserved_gb: 0}\n",
        "deletion:\n  emergency: {reserved_gb: 70, warn_percent: 90}\n",
        "deletion:\n  emergency: {reserved_gb: 0.5}\n",
    ]

    @Test(arguments: valid)
    func boundaryValuesAreAccepted(extra: String) {
        #expect(Self.firstError(extra) == nil)
    }

    @Test func everyAgentAndDeletionProblemIsListed() throws {
        var config = try Self.decode("")
        config.agent = AgentSettings(
            stabilitySeconds: -1,
            schedule: ScheduleSettings(dailyAt: "25:00", everyMinutes: 1),
            operationalHours: OperationalHoursSettings(start: "08:00", end: "08:00"),
            timezone: "Nowhere"
        )
        config.deletion = DeletionSettings(
            afterUpload: AfterUploadDeletion(keepDays: -1),
            age: AgeDeletion(maxAgeDays: -1, at: "2am"),
            emergency: EmergencyDeletion(warnPercent: 0, actPercent: 0)
        )
        #expect(
            config.problems().map(\.keyPath) == [
                "agent.stability_seconds", "agent.timezone", "agent.schedule", "agent.schedule.daily_at",
                "agent.schedule.every_minutes", "agent.operational_hours.end", "deletion.after_upload.keep_days",
                "deletion.age.max_age_days", "deletion.age.at", "deletion.emergency.warn_percent",
                "deletion.emergency.act_percent",
            ]
        )
    }

    @Test func settingsDecodeIntoTheAgentsTypes() throws {
        let config = try Self.decode(
            """
            agent:
              stability_seconds: 0
              timezone: Asia/Shanghai
              schedule:
                every_hours: 2
              operational_hours:
                start: 22:00
                end: 06:00
            deletion:
              age:
                max_age_days: 14

            """
        )
        #expect(config.resolved.agent.stabilitySeconds == 0)
        #expect(config.resolved.agent.timeZone.identifier == "Asia/Shanghai")
        #expect(UploadSchedule(settings: config.agent?.schedule) == .every(seconds: 7200))
        #expect(
            OperationalHours(settings: config.agent?.operationalHours)
                == OperationalHours(start: ClockTime(hour: 22, minute: 0), end: ClockTime(hour: 6, minute: 0))
        )
        #expect(config.deletion?.age?.maxAgeDays == 14)
    }

    /// examples/agent.yaml stays loadable, with the agent and deletion settings the README describes.
    @Test func exampleAgentConfigurationLoads() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../..")
            .standardizedFileURL
        let config = try ConfigLoader.load(path: root.appendingPathComponent("examples/agent.yaml").path)
        #expect(config.problems().isEmpty)
        #expect(config.resolved.agent.stabilitySeconds == 60)
        #expect(UploadSchedule(settings: config.agent?.schedule) == .every(seconds: 7200))
        #expect(
            OperationalHours(settings: config.agent?.operationalHours)
                == OperationalHours(start: ClockTime(hour: 9, minute: 0), end: ClockTime(hour: 16, minute: 0))
        )
        #expect(config.resolved.agent.batchUpload)
        #expect(config.resolved.agent.uploadOnStart)
        #expect(config.resolved.agent.scanExistingFiles)
        #expect(config.deletion?.afterUpload?.keepDays == 7)
        #expect(config.deletion?.age?.maxAgeDays == 14)
        #expect(config.deletion?.age?.at == "02:00")
        #expect(config.deletion?.emergency?.warnPercent == 90)
        #expect(config.deletion?.emergency?.actPercent == 95)
        #expect(config.deletion?.emergency?.reservedGb == 5)
        let kept = config.resolved.sources.filter { $0.allowDeletion == false }.map(\.path)
        #expect(kept == ["/var/log"], "the example's syslog source keeps its files")
    }
}
