import FleetLedger
import FleetSystem
import Foundation

/// The one configuration schema, for a data-set session (`source`) and a vehicle (`sources`) alike.
///
/// Files write keys in snake_case. An optional key is `nil` when the file leaves it out: the canonical JSON
/// records what was written, and `resolved` (`ResolvedConfig`, where every default is) applies the defaults.
/// `ConfigLoader` reads a file, applies environment and flag overrides, decodes and validates.
package struct FleetConfig: Codable, Sendable, Equatable {
    package var project: ProjectSettings
    /// The machine this runs on.
    package var device: String?
    package var s3: S3Settings
    /// One source directory (a data-set session). Exactly one of `source` and `sources` is given.
    package var source: SourceSettings?
    /// Several named source directories (a vehicle: terminal, ros, syslog, ros2).
    package var sources: [SourceSettings]?
    package var keys: KeySettings?
    package var scan: ScanSettings?
    package var upload: UploadSettings?
    /// Automatic retry rounds after a session (`retry --auto`, `master once`).
    package var retry: RetrySettings?
    /// Where to announce a finished session (`trigger`, `master once`).
    package var trigger: TriggerSettings?
    /// The vehicle agent (`master run`): detection, schedule, operational hours.
    package var agent: AgentSettings?
    /// What the agent deletes locally, and when.
    package var deletion: DeletionSettings?
    /// Metrics the agent publishes (CloudWatch).
    package var metrics: MetricsSettings?

    package init(
        project: ProjectSettings,
        device: String? = nil,
        s3: S3Settings,
        source: SourceSettings? = nil,
        sources: [SourceSettings]? = nil,
        keys: KeySettings? = nil,
        scan: ScanSettings? = nil,
        upload: UploadSettings? = nil,
        retry: RetrySettings? = nil,
        trigger: TriggerSettings? = nil,
        agent: AgentSettings? = nil,
        deletion: DeletionSettings? = nil,
        metrics: MetricsSettings? = nil
    ) {
        self.project = project
        self.device = device
        self.s3 = s3
        self.source = source
        self.sources = sources
        self.keys = keys
        self.scan = scan
        self.upload = upload
        self.retry = retry
        self.trigger = trigger
        self.agent = agent
        self.deletion = deletion
        self.metrics = metrics
    }
}

package struct ProjectSettings: Codable, Sendable, Equatable {
    /// The project's name in the ledger; sessions of the same name share their history.
    package var name: String
}

package struct S3Settings: Codable, Sendable, Equatable {
    /// The bucket; must be absent when `keys.first_dir_is_bucket` is on.
    package var bucket: String?
    /// Prepended to every key through `{prefix}`.
    package var prefix: String?
    /// `cn-north-1` and `cn-northwest-1` are AWS China; unset, `S3Context.region(configured:…)` resolves it.
    package var region: String?
    /// An S3-compatible endpoint such as `http://127.0.0.1:8333`; unset, `S3Endpoint` takes it from the
    /// environment or uses AWS's.
    package var endpoint: String?
    /// Address buckets as `endpoint/bucket/key`; unset, `S3Endpoint` chooses by endpoint.
    package var pathStyle: Bool?
    /// The profile of the shared AWS files to take credentials from; it then comes before the environment.
    package var profile: String?
    /// Let other projects that set it too write the same keys (the last upload of a key wins); unset or false, a
    /// key another project stores is refused (`key_owned_by_other_project`), so no project overwrites another's
    /// only copy.
    package var sharedPrefix: Bool?
    /// A PEM file of certificate authorities to trust for the endpoint (a private CA); unset, `S3Context`
    /// takes `AWS_CA_BUNDLE`, else the system's. A relative path is relative to the configuration file.
    package var caBundle: String?
    /// A directory holding the shared AWS files `credentials` and `config` (as `~/.aws` does); unset,
    /// `AWS_SHARED_CREDENTIALS_FILE` and `AWS_CONFIG_FILE`, else `~/.aws`. A relative path is relative to the
    /// configuration file.
    package var credentialsPath: String?
}

package struct SourceSettings: Codable, Sendable, Equatable {
    /// The source's name, used by `{source}` in key templates.
    package var name: String?
    /// The directory to scan.
    package var path: String
    /// Globs a file's relative path must match (any of them).
    package var include: [String]?
    /// Globs that exclude a file even if it is included.
    package var exclude: [String]?
    /// Each first-level directory is a run folder (ROS) kept whole under one `{date}`: the date its name
    /// starts with (`2026-11-23-15-30-00-…`); files in folders without one use their own mtime.
    package var runFolders: Bool?
    /// Whether any deletion (the agent's policies, `upload.delete_after_upload`) may delete files of this source;
    /// unset, true except below the system's own directories (`ResolvedConfig.protectedPrefixes`).
    package var allowDeletion: Bool?
    /// Which of the source's files go up compressed; unset, none.
    package var compress: CompressSettings?

    package init(
        name: String? = nil,
        path: String,
        include: [String]? = nil,
        exclude: [String]? = nil,
        runFolders: Bool? = nil,
        allowDeletion: Bool? = nil,
        compress: CompressSettings? = nil
    ) {
        self.name = name
        self.path = path
        self.include = include
        self.exclude = exclude
        self.runFolders = runFolders
        self.allowDeletion = allowDeletion
        self.compress = compress
    }
}

/// `compress` of a source: its files that match `include` go up compressed, their key ending in `.zst`.
package struct CompressSettings: Codable, Sendable, Equatable {
    /// `zstd`, the one codec there is.
    package var codec: String
    /// libzstd's level, `Zstd.levels`; unset, `Zstd.defaultLevel`.
    package var level: Int?
    /// Globs, with the rules of the source's `include`, of the files to compress; unset, every file of the source.
    package var include: [String]?

    package init(codec: String, level: Int? = nil, include: [String]? = nil) {
        self.codec = codec
        self.level = level
        self.include = include
    }
}

package struct KeySettings: Codable, Sendable, Equatable {
    /// Where a file goes, such as `{prefix}/{relpath}` or `{device}/{date}/{source}/{relpath}`.
    package var template: String?
    /// The zone `{date}` is computed in: `UTC`, `local`, or an IANA name such as `Asia/Shanghai`.
    package var timezone: String?
    /// The first directory under the source names the bucket; the rest of the path is `{relpath}`.
    package var firstDirIsBucket: Bool?
}

package struct ScanSettings: Codable, Sendable, Equatable {
    /// Globs applied to every source in addition to its own.
    package var include: [String]?
    package var exclude: [String]?
    /// A file modified less than this many seconds ago is still being written and is left for later.
    package var minAgeSeconds: Int?
    /// Files last modified more than this many days ago are left out; a file exactly this old is still in.
    package var maxAgeDays: Double?
    /// Follow symbolic links to files and directories.
    package var followSymlinks: Bool?
}

package struct UploadSettings: Codable, Sendable, Equatable {
    /// Files in flight: `auto` (adjusted as the run goes) or a fixed number.
    package var workers: WorkerCount?
    /// Files at least this large (MiB) go up in parts.
    package var multipartThresholdMb: Int?
    /// The size of each part, in MiB.
    package var partSizeMb: Int?
    /// Parts of one large file sent at once.
    package var partConcurrency: Int?
    /// Attempts per file within a run for transient errors.
    package var maxAttempts: Int?
    /// Exponential backoff with full jitter between attempts: the first wait is up to this long.
    package var backoffBaseSeconds: Double?
    /// …and no wait is longer than this.
    package var backoffCapSeconds: Double?
    /// When nothing has uploaded for this long and errors keep coming, the run stops trying: remaining files
    /// are recorded `failed` for `retry`.
    package var giveUpAfterSeconds: Double?
    /// Before uploading, list the bucket under the destination prefix and skip files already there with the
    /// same size (uploaded by another tool).
    package var compareWithBucket: Bool?
    /// Delete each local file once the ledger records it uploaded with a verified checksum.
    package var deleteAfterUpload: Bool?
    /// With `delete_after_upload`, also remove directories left empty.
    package var removeEmptyDirectories: Bool?
    /// A multipart upload open in the bucket under the project's prefix, owned by no ledger row, and older
    /// than this many hours is aborted by the next run (its creator died before recording it).
    package var abandonedMultipartHours: Double?
    /// After SIGINT/SIGTERM, how long files in flight may take to finish before their transfers are ended (a
    /// multipart upload keeps the parts it sent, for the next run to continue).
    package var stopTimeoutSeconds: Double?
    /// A cap on the bytes per second all uploads of the process send together: `8M`, or a timetable such as
    /// `08:00,2M 19:00,off`.
    package var maxBandwidth: BandwidthText?
}

/// `upload.max_bandwidth` as written: text (`8M`, a timetable) or a whole number of bytes per second.
package struct BandwidthText: Codable, Sendable, Equatable {
    package var text: String

    package init(_ text: String) { self.text = text }

    package init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Int64.self) {
            text = String(number)
        } else {
            text = try container.decode(String.self)
        }
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }
}

package struct RetrySettings: Codable, Sendable, Equatable {
    /// Rounds `retry --auto` runs at most.
    package var rounds: Int?
    /// Exponential backoff with full jitter between rounds: the first wait is up to this long.
    package var roundBackoffBaseSeconds: Double?
    /// …and no wait is longer than this.
    package var roundBackoffCapSeconds: Double?
    /// A file that has been attempted this many times in all (every run and round together) is out of
    /// attempts: automatic rounds leave it failed.
    package var maxFileAttempts: Int?

    package init(
        rounds: Int? = nil,
        roundBackoffBaseSeconds: Double? = nil,
        roundBackoffCapSeconds: Double? = nil,
        maxFileAttempts: Int? = nil
    ) {
        self.rounds = rounds
        self.roundBackoffBaseSeconds = roundBackoffBaseSeconds
        self.roundBackoffCapSeconds = roundBackoffCapSeconds
        self.maxFileAttempts = maxFileAttempts
    }
}

package struct TriggerSettings: Codable, Sendable, Equatable {
    /// The endpoint that receives the session summary by POST (http or https).
    package var url: String?
    /// Extra request headers, `Name: value`; `${VARIABLE}` in a value is replaced from the environment when
    /// the request is sent, so a token never reaches the ledger's copy of the configuration.
    package var headers: [String]?
    /// Seconds one request may take.
    package var timeoutSeconds: Double?
    /// Requests at most, for network errors and 5xx answers (a 4xx is final).
    package var maxAttempts: Int?
    /// Exponential backoff with full jitter between requests: up to this long at first.
    package var backoffBaseSeconds: Double?
    /// …and no wait is longer than this.
    package var backoffCapSeconds: Double?
    /// `always` or `complete`: fire only for a session without failed files.
    package var onlyIf: String?
    /// Also send every uploaded key (streamed).
    package var withKeys: Bool?

    package init(
        url: String? = nil,
        headers: [String]? = nil,
        timeoutSeconds: Double? = nil,
        maxAttempts: Int? = nil,
        backoffBaseSeconds: Double? = nil,
        backoffCapSeconds: Double? = nil,
        onlyIf: String? = nil,
        withKeys: Bool? = nil
    ) {
        self.url = url
        self.headers = headers
        self.timeoutSeconds = timeoutSeconds
        self.maxAttempts = maxAttempts
        self.backoffBaseSeconds = backoffBaseSeconds
        self.backoffCapSeconds = backoffCapSeconds
        self.onlyIf = onlyIf
        self.withKeys = withKeys
    }
}

/// `master run`: how the agent notices files and when it uploads them.
package struct AgentSettings: Codable, Sendable, Equatable {
    /// A file is ready when its size and mtime have not changed for this long.
    package var stabilitySeconds: Double?
    /// A full scan of every source as a safety net for missed inotify events.
    package var rescanMinutes: Double?
    /// On start, queue the files already on disk that are at most `scan.max_age_days` old.
    package var scanExistingFiles: Bool?
    /// Upload the queue right after the start-up scan.
    package var uploadOnStart: Bool?
    /// When a file becomes ready inside operational hours, upload the whole queue (true) or only that file.
    package var batchUpload: Bool?
    /// Uploads of the whole queue at fixed times; they run whatever the operational hours.
    package var schedule: ScheduleSettings?
    /// When ready files go up at once; outside these hours they wait for the schedule.
    package var operationalHours: OperationalHoursSettings?
    /// The zone schedule and operational hours are read in: `local`, `UTC` or an IANA name.
    package var timezone: String?
    /// Seconds between heartbeats (device row: disk usage, queue, last upload).
    package var heartbeatSeconds: Double?
    /// Seconds a stop (SIGTERM) waits for in-flight uploads before abandoning them.
    package var stopTimeoutSeconds: Double?

    package init(
        stabilitySeconds: Double? = nil,
        rescanMinutes: Double? = nil,
        scanExistingFiles: Bool? = nil,
        uploadOnStart: Bool? = nil,
        batchUpload: Bool? = nil,
        schedule: ScheduleSettings? = nil,
        operationalHours: OperationalHoursSettings? = nil,
        timezone: String? = nil,
        heartbeatSeconds: Double? = nil,
        stopTimeoutSeconds: Double? = nil
    ) {
        self.stabilitySeconds = stabilitySeconds
        self.rescanMinutes = rescanMinutes
        self.scanExistingFiles = scanExistingFiles
        self.uploadOnStart = uploadOnStart
        self.batchUpload = batchUpload
        self.schedule = schedule
        self.operationalHours = operationalHours
        self.timezone = timezone
        self.heartbeatSeconds = heartbeatSeconds
        self.stopTimeoutSeconds = stopTimeoutSeconds
    }
}

/// Exactly one of `daily_at` and `every_minutes`/`every_hours`.
package struct ScheduleSettings: Codable, Sendable, Equatable {
    /// `HH:MM`, once a day.
    package var dailyAt: String?
    /// Every N minutes from midnight (5…1440).
    package var everyMinutes: Double?
    /// Every N hours from midnight (1/12…24); `every_hours: 2` runs at 00:00, 02:00, 04:00…
    package var everyHours: Double?

    package init(dailyAt: String? = nil, everyMinutes: Double? = nil, everyHours: Double? = nil) {
        self.dailyAt = dailyAt
        self.everyMinutes = everyMinutes
        self.everyHours = everyHours
    }
}

/// `start`–`end` as `HH:MM`; an end before the start crosses midnight (22:00–06:00).
package struct OperationalHoursSettings: Codable, Sendable, Equatable {
    package var start: String
    package var end: String
    /// False means ready files go up at any hour.
    package var enabled: Bool?

    package init(start: String, end: String, enabled: Bool? = nil) {
        self.start = start
        self.end = end
        self.enabled = enabled
    }
}

/// The agent's three deletion policies. Each runs only when its section is present (and not `enabled: false`),
/// and every deletion is recorded in the ledger's `local_deletions`.
package struct DeletionSettings: Codable, Sendable, Equatable {
    package var afterUpload: AfterUploadDeletion?
    package var age: AgeDeletion?
    package var emergency: EmergencyDeletion?

    package init(afterUpload: AfterUploadDeletion? = nil, age: AgeDeletion? = nil, emergency: EmergencyDeletion? = nil)
    {
        self.afterUpload = afterUpload
        self.age = age
        self.emergency = emergency
    }
}

/// Delete a file this many days after the ledger recorded it uploaded with a verified checksum.
package struct AfterUploadDeletion: Codable, Sendable, Equatable {
    package var enabled: Bool?
    /// Days to keep a file after its upload; 0 deletes at once.
    package var keepDays: Double?

    package init(enabled: Bool? = nil, keepDays: Double? = nil) {
        self.enabled = enabled
        self.keepDays = keepDays
    }
}

/// Once a day, delete files last modified more than `max_age_days` ago.
package struct AgeDeletion: Codable, Sendable, Equatable {
    package var enabled: Bool?
    package var maxAgeDays: Double
    /// `HH:MM` in the agent's zone.
    package var at: String?
    /// Also delete files that were never uploaded (otherwise they are kept and reported).
    package var includeUnuploaded: Bool?

    package init(enabled: Bool? = nil, maxAgeDays: Double, at: String? = nil, includeUnuploaded: Bool? = nil) {
        self.enabled = enabled
        self.maxAgeDays = maxAgeDays
        self.at = at
        self.includeUnuploaded = includeUnuploaded
    }
}

/// When a source's file system is fuller than `act_percent`, or has less than `reserved_gb` free, delete the
/// oldest uploaded files until it is below `warn_percent` with `reserved_gb` free; then, only with
/// `include_unuploaded`, the oldest files never uploaded.
package struct EmergencyDeletion: Codable, Sendable, Equatable {
    package var enabled: Bool?
    /// A warning is logged above it, and deleting stops below it.
    package var warnPercent: Double?
    /// Deleting starts at it.
    package var actPercent: Double?
    /// GiB of free space to keep: less starts deleting, and deleting goes on until this much is free.
    package var reservedGb: Double?
    package var includeUnuploaded: Bool?

    package init(
        enabled: Bool? = nil,
        warnPercent: Double? = nil,
        actPercent: Double? = nil,
        reservedGb: Double? = nil,
        includeUnuploaded: Bool? = nil
    ) {
        self.enabled = enabled
        self.warnPercent = warnPercent
        self.actPercent = actPercent
        self.reservedGb = reservedGb
        self.includeUnuploaded = includeUnuploaded
    }
}

/// Where the agent publishes metrics.
package struct MetricsSettings: Codable, Sendable, Equatable {
    package var cloudwatch: CloudWatchSettings?

    package init(cloudwatch: CloudWatchSettings? = nil) {
        self.cloudwatch = cloudwatch
    }
}

/// CloudWatch PutMetricData: `BytesUploaded`, `FileCount`, `FailureCount` and `DiskUsagePercent`
/// with the dimension `VehicleId`, signed with the same credentials as S3.
package struct CloudWatchSettings: Codable, Sendable, Equatable {
    /// Nothing is sent unless this is true.
    package var enabled: Bool?
    /// The metrics' namespace.
    package var namespace: String?
    /// The region requests are signed for and sent to.
    package var region: String?
    /// An http(s) URL to send to instead of `monitoring.<region>.amazonaws.com(.cn)` (tests, VPC endpoints).
    package var endpoint: String?
    /// The `VehicleId` dimension.
    package var vehicleId: String?
    /// Seconds between sends.
    package var flushSeconds: Double?

    package init(
        enabled: Bool? = nil,
        namespace: String? = nil,
        region: String? = nil,
        endpoint: String? = nil,
        vehicleId: String? = nil,
        flushSeconds: Double? = nil
    ) {
        self.enabled = enabled
        self.namespace = namespace
        self.region = region
        self.endpoint = endpoint
        self.vehicleId = vehicleId
        self.flushSeconds = flushSeconds
    }
}

// MARK: - Canonical form

extension FleetConfig {
    /// The configuration as canonical JSON (sorted keys, snake_case): what the ledger stores and hashes.
    package func canonicalJSON() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return (try? encoder.encode(self)) ?? Data()
    }

    /// SHA-256 of `canonicalJSON()`, hex.
    package var hash: String { SHA256.hex(of: Array(canonicalJSON())) }
}

/// `upload.workers`: `auto`, or a fixed number of files in flight.
package enum WorkerCount: Codable, Sendable, Equatable, ExpressibleByIntegerLiteral, CustomStringConvertible {
    /// Grown while throughput grows, backed off on throttling, timeouts and resets (`AdaptiveConcurrency`).
    case auto
    case fixed(Int)

    package init(integerLiteral value: Int) { self = .fixed(value) }

    package init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self), text == "auto" {
            self = .auto
            return
        }
        do {
            self = .fixed(try container.decode(Int.self))
        } catch var error as ConfigError {
            error.message = error.message.replacingOccurrences(
                of: "expected a whole number",
                with: "expected auto or a whole number"
            )
            throw error
        }
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .auto: try container.encode("auto")
        case .fixed(let count): try container.encode(count)
        }
    }

    package var description: String {
        switch self {
        case .auto: "auto"
        case .fixed(let count): "\(count)"
        }
    }
}
