import FleetSystem
import Foundation

/// The configuration with every default applied: what the code reads.
///
/// `FleetConfig` is the file as written (an absent key is `nil`, which the ledger's canonical JSON and the
/// overrides need); `FleetConfig.resolved` turns it into this value, and every default lives here, once, as a
/// `default…` constant beside the property it fills. Properties are named after the keys (`upload.workers` is
/// `upload.workers`), and the table in `docs/configuration.md` states the same defaults (a test compares them).
///
/// Not resolved here: `project.name` and `s3.bucket` (no default), and `s3.region`, `s3.endpoint`,
/// `s3.path_style`, `s3.profile` and `s3.credentials_path`, which depend on the environment and the shared AWS files: `S3Context`
/// resolves those.
package struct ResolvedConfig: Sendable, Equatable {
    /// `device`: the machine this runs on.
    package var device: String
    /// The sources, each with its `name`, `run_folders` and `allow_deletion` filled in.
    package var sources: [SourceSettings]
    package var s3: S3
    package var keys: Keys
    package var scan: Scan
    package var upload: Upload
    package var retry: Retry
    package var trigger: Trigger
    package var agent: Agent
    package var deletion: Deletion
    package var metrics: Metrics

    /// Applies the defaults to `config`.
    package init(_ config: FleetConfig) {
        device = config.device ?? Self.hostName()
        sources = Self.sources(config)
        s3 = S3(config.s3)
        keys = Keys(config.keys, severalSources: config.sources != nil)
        scan = Scan(config.scan)
        upload = Upload(config.upload)
        retry = Retry(config.retry)
        trigger = Trigger(config.trigger)
        agent = Agent(config.agent, scan: config.scan)
        deletion = Deletion(config.deletion)
        metrics = Metrics(config.metrics, device: device)
    }

    /// The default of `device`: the host name up to its first dot.
    package static func hostName() -> String { shortHostName }

    /// Looked up once per process: the lookup may ask the resolver, and `resolved` is taken often.
    private static let shortHostName =
        ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "unknown"

    /// The name a source without `name` gets: its directory's last component (`root` for `/`).
    package static func defaultSourceName(path: String) -> String {
        let last = URL(fileURLWithPath: path).standardizedFileURL.lastPathComponent
        return last.isEmpty || last == "/" ? "root" : last
    }

    /// The default of `run_folders`: on for a source named `ros`.
    package static func defaultRunFolders(name: String) -> Bool { name == "ros" }

    /// The system's own directories: a source at or below one of them keeps its files unless it says
    /// `allow_deletion: true`.
    package static let protectedPrefixes = ["/var", "/etc", "/usr", "/boot", "/proc", "/sys"]

    /// The protected directory `path` is or lies below (`/` holds them all), as written (standardized) or with its
    /// symbolic links resolved; nil when there is none.
    package static func protectedPrefix(of path: String) -> String? {
        let written = URL(fileURLWithPath: path).standardizedFileURL.path
        for candidate in [written, FleetConfig.realDirectory(path)] {
            if candidate == "/" { return "/" }
            if let prefix = protectedPrefixes.first(where: { candidate == $0 || candidate.hasPrefix($0 + "/") }) {
                return prefix
            }
        }
        return nil
    }

    /// The default of `allow_deletion`: true, except for a source at or below a protected directory.
    package static func defaultAllowDeletion(path: String) -> Bool { protectedPrefix(of: path) == nil }

    /// `source` or `sources`, named, with `run_folders` and `allow_deletion` decided.
    private static func sources(_ config: FleetConfig) -> [SourceSettings] {
        let list = config.sources ?? config.source.map { [$0] } ?? []
        return list.map { source in
            var resolved = source
            let name = source.name ?? defaultSourceName(path: source.path)
            resolved.name = name
            resolved.runFolders = source.runFolders ?? defaultRunFolders(name: name)
            resolved.allowDeletion = source.allowDeletion ?? defaultAllowDeletion(path: source.path)
            return resolved
        }
    }

    /// The directories of the sources whose files may be deleted (`allow_deletion`), as bytes without a trailing
    /// slash: what `LocalDeleter` accepts.
    package var deletableSourceRoots: Set<[UInt8]> {
        Set(sources.filter { $0.allowDeletion == true }.map { Array($0.path.utf8).trailingSlashRemoved })
    }

    /// The `s3` keys with a default of their own.
    package struct S3: Sendable, Equatable {
        /// `s3.prefix`: what `{prefix}` stands for.
        package var prefix: String
        /// The default of `prefix`.
        package static let defaultPrefix = ""
        /// `s3.shared_prefix`: other projects that set it too may store the same keys.
        package var sharedPrefix: Bool
        /// The default of `sharedPrefix`: a key belongs to the project that stored it first.
        package static let defaultSharedPrefix = false

        init(_ settings: S3Settings) {
            prefix = settings.prefix ?? Self.defaultPrefix
            sharedPrefix = settings.sharedPrefix ?? Self.defaultSharedPrefix
        }
    }

    /// `keys`: where a file goes in the bucket.
    package struct Keys: Sendable, Equatable {
        /// `keys.template`.
        package var template: String
        /// The default of `template` with one source.
        package static let defaultTemplate = "{prefix}/{relpath}"
        /// The default of `template` with several sources.
        package static let defaultTemplateForSeveralSources = "{device}/{date}/{source}/{relpath}"
        /// `keys.timezone`: `UTC`, `local` or an IANA name.
        package var timezone: String
        /// The default of `timezone`.
        package static let defaultTimezone = "UTC"
        /// `keys.first_dir_is_bucket`.
        package var firstDirIsBucket: Bool
        /// The default of `firstDirIsBucket`.
        package static let defaultFirstDirIsBucket = false

        init(_ settings: KeySettings?, severalSources: Bool) {
            template =
                settings?.template ?? (severalSources ? Self.defaultTemplateForSeveralSources : Self.defaultTemplate)
            timezone = settings?.timezone ?? Self.defaultTimezone
            firstDirIsBucket = settings?.firstDirIsBucket ?? Self.defaultFirstDirIsBucket
        }

        /// The zone of `{date}`; a name that is not a zone (validation refuses it) reads as UTC.
        package var timeZone: TimeZone {
            switch timezone {
            case "UTC", "utc": TimeZone(identifier: "UTC")!
            case "local": TimeZone.current
            default: TimeZone(identifier: timezone) ?? TimeZone(identifier: "UTC")!
            }
        }
    }

    /// `scan`: which files a scan takes.
    package struct Scan: Sendable, Equatable {
        /// `scan.include`: globs for every source, besides each source's own; none means every file.
        package var include: [String]
        /// `scan.exclude`: globs for every source, besides each source's own.
        package var exclude: [String]
        /// `scan.min_age_seconds`.
        package var minAgeSeconds: Int
        /// The default of `minAgeSeconds`.
        package static let defaultMinAgeSeconds = 0
        /// `scan.max_age_days`; nil: no limit (the agent's start-up scan uses `Agent.scanMaxAgeDays`).
        package var maxAgeDays: Double?
        /// `scan.follow_symlinks`.
        package var followSymlinks: Bool
        /// The default of `followSymlinks`.
        package static let defaultFollowSymlinks = false

        init(_ settings: ScanSettings?) {
            include = settings?.include ?? []
            exclude = settings?.exclude ?? []
            minAgeSeconds = settings?.minAgeSeconds ?? Self.defaultMinAgeSeconds
            maxAgeDays = settings?.maxAgeDays
            followSymlinks = settings?.followSymlinks ?? Self.defaultFollowSymlinks
        }
    }

    /// `upload`: how files are sent.
    package struct Upload: Sendable, Equatable {
        /// `upload.workers`: files in flight, `auto` or a fixed number.
        package var workers: WorkerCount
        /// The default of `workers`.
        package static let defaultWorkers = WorkerCount.auto
        /// Threads for work still done one request per thread (settling with the bucket), and what a session
        /// records as a process's workers: the fixed number, or `autoThreadWorkers` with `auto`.
        package var threadWorkers: Int {
            switch workers {
            case .auto: Self.autoThreadWorkers
            case .fixed(let count): count
            }
        }
        /// `threadWorkers` with `auto`.
        package static let autoThreadWorkers = 15
        /// `upload.multipart_threshold_mb`: files at least this large go up in parts.
        package var multipartThresholdMb: Int
        /// The default of `multipartThresholdMb`.
        package static let defaultMultipartThresholdMb = 64
        /// `upload.part_size_mb`.
        package var partSizeMb: Int
        /// The default of `partSizeMb`.
        package static let defaultPartSizeMb = 16
        /// `upload.part_concurrency`: parts of one file sent at once.
        package var partConcurrency: Int
        /// The default of `partConcurrency`.
        package static let defaultPartConcurrency = 4
        /// `upload.max_attempts`: attempts per file within a run for transient errors.
        package var maxAttempts: Int
        /// The default of `maxAttempts`.
        package static let defaultMaxAttempts = 10
        /// `upload.backoff_base_seconds`.
        package var backoffBaseSeconds: Double
        /// The default of `backoffBaseSeconds`.
        package static let defaultBackoffBaseSeconds: Double = 1
        /// `upload.backoff_cap_seconds`.
        package var backoffCapSeconds: Double
        /// The default of `backoffCapSeconds`.
        package static let defaultBackoffCapSeconds: Double = 60
        /// `upload.give_up_after_seconds`.
        package var giveUpAfterSeconds: Double
        /// The default of `giveUpAfterSeconds`.
        package static let defaultGiveUpAfterSeconds: Double = 600
        /// `upload.compare_with_bucket`.
        package var compareWithBucket: Bool
        /// The default of `compareWithBucket`.
        package static let defaultCompareWithBucket = false
        /// `upload.delete_after_upload`.
        package var deleteAfterUpload: Bool
        /// The default of `deleteAfterUpload`.
        package static let defaultDeleteAfterUpload = false
        /// `upload.remove_empty_directories`.
        package var removeEmptyDirectories: Bool
        /// The default of `removeEmptyDirectories`.
        package static let defaultRemoveEmptyDirectories = false
        /// `upload.abandoned_multipart_hours`: open multipart uploads no row owns are aborted once this old.
        package var abandonedMultipartHours: Double
        /// The default of `abandonedMultipartHours`: a day, far longer than any upload takes between S3 creating
        /// it and the ledger recording it.
        package static let defaultAbandonedMultipartHours: Double = 24
        /// `upload.stop_timeout_seconds`.
        package var stopTimeoutSeconds: Double
        /// The default of `stopTimeoutSeconds`: a part of the default size goes out in that time on a few Mbit/s.
        package static let defaultStopTimeoutSeconds: Double = 15
        /// `upload.max_bandwidth`: the cap by time of day; nil when nothing limits (unset, or `off`).
        package var maxBandwidth: BandwidthSchedule?

        init(_ settings: UploadSettings?) {
            workers = settings?.workers ?? Self.defaultWorkers
            multipartThresholdMb = settings?.multipartThresholdMb ?? Self.defaultMultipartThresholdMb
            partSizeMb = settings?.partSizeMb ?? Self.defaultPartSizeMb
            partConcurrency = settings?.partConcurrency ?? Self.defaultPartConcurrency
            maxAttempts = settings?.maxAttempts ?? Self.defaultMaxAttempts
            backoffBaseSeconds = settings?.backoffBaseSeconds ?? Self.defaultBackoffBaseSeconds
            backoffCapSeconds = settings?.backoffCapSeconds ?? Self.defaultBackoffCapSeconds
            giveUpAfterSeconds = settings?.giveUpAfterSeconds ?? Self.defaultGiveUpAfterSeconds
            compareWithBucket = settings?.compareWithBucket ?? Self.defaultCompareWithBucket
            deleteAfterUpload = settings?.deleteAfterUpload ?? Self.defaultDeleteAfterUpload
            removeEmptyDirectories = settings?.removeEmptyDirectories ?? Self.defaultRemoveEmptyDirectories
            abandonedMultipartHours = settings?.abandonedMultipartHours ?? Self.defaultAbandonedMultipartHours
            stopTimeoutSeconds = settings?.stopTimeoutSeconds ?? Self.defaultStopTimeoutSeconds
            maxBandwidth = settings?.maxBandwidth.flatMap { try? BandwidthSchedule(parsing: $0.text) }
                .flatMap { $0.limits ? $0 : nil }
        }

        /// `multipartThresholdMb` in bytes.
        package var multipartThresholdBytes: Int64 { Int64(multipartThresholdMb) * 1024 * 1024 }
        /// `partSizeMb` in bytes.
        package var partSizeBytes: Int64 { Int64(partSizeMb) * 1024 * 1024 }
        /// The wait between attempts at one file.
        package var backoff: Backoff { Backoff(baseSeconds: backoffBaseSeconds, capSeconds: backoffCapSeconds) }
    }

    /// `retry`: automatic rounds after a session.
    package struct Retry: Sendable, Equatable {
        /// `retry.rounds`.
        package var rounds: Int
        /// The default of `rounds`.
        package static let defaultRounds = 5
        /// `retry.round_backoff_base_seconds`.
        package var roundBackoffBaseSeconds: Double
        /// The default of `roundBackoffBaseSeconds`.
        package static let defaultRoundBackoffBaseSeconds: Double = 30
        /// `retry.round_backoff_cap_seconds`.
        package var roundBackoffCapSeconds: Double
        /// The default of `roundBackoffCapSeconds`.
        package static let defaultRoundBackoffCapSeconds: Double = 900
        /// `retry.max_file_attempts`: attempts in all after which automatic rounds leave a file alone.
        package var maxFileAttempts: Int
        /// The default of `maxFileAttempts`.
        package static let defaultMaxFileAttempts = 100

        init(_ settings: RetrySettings?) {
            rounds = settings?.rounds ?? Self.defaultRounds
            roundBackoffBaseSeconds = settings?.roundBackoffBaseSeconds ?? Self.defaultRoundBackoffBaseSeconds
            roundBackoffCapSeconds = settings?.roundBackoffCapSeconds ?? Self.defaultRoundBackoffCapSeconds
            maxFileAttempts = settings?.maxFileAttempts ?? Self.defaultMaxFileAttempts
        }

        /// The wait between rounds.
        package var roundBackoff: Backoff {
            Backoff(baseSeconds: roundBackoffBaseSeconds, capSeconds: roundBackoffCapSeconds)
        }
    }

    /// `trigger`: how a finished session is announced.
    package struct Trigger: Sendable, Equatable {
        /// `trigger.url`; nil: no trigger unless a command names one.
        package var url: String?
        /// `trigger.headers`, `${VARIABLE}` still unexpanded.
        package var headers: [String]
        /// `trigger.timeout_seconds`: per request.
        package var timeoutSeconds: Double
        /// The default of `timeoutSeconds`.
        package static let defaultTimeoutSeconds: Double = 30
        /// `trigger.max_attempts`: requests at most.
        package var maxAttempts: Int
        /// The default of `maxAttempts`.
        package static let defaultMaxAttempts = 5
        /// `trigger.backoff_base_seconds`.
        package var backoffBaseSeconds: Double
        /// The default of `backoffBaseSeconds`.
        package static let defaultBackoffBaseSeconds: Double = 1
        /// `trigger.backoff_cap_seconds`.
        package var backoffCapSeconds: Double
        /// The default of `backoffCapSeconds`.
        package static let defaultBackoffCapSeconds: Double = 30
        /// `trigger.only_if`: `always` or `complete`.
        package var onlyIf: String
        /// The default of `onlyIf`.
        package static let defaultOnlyIf = "always"
        /// `trigger.with_keys`.
        package var withKeys: Bool
        /// The default of `withKeys`.
        package static let defaultWithKeys = false

        /// Applies the defaults to `settings` (the file's section, with any command-line values already merged).
        package init(_ settings: TriggerSettings?) {
            url = settings?.url
            headers = settings?.headers ?? []
            timeoutSeconds = settings?.timeoutSeconds ?? Self.defaultTimeoutSeconds
            maxAttempts = settings?.maxAttempts ?? Self.defaultMaxAttempts
            backoffBaseSeconds = settings?.backoffBaseSeconds ?? Self.defaultBackoffBaseSeconds
            backoffCapSeconds = settings?.backoffCapSeconds ?? Self.defaultBackoffCapSeconds
            onlyIf = settings?.onlyIf ?? Self.defaultOnlyIf
            withKeys = settings?.withKeys ?? Self.defaultWithKeys
        }

        /// The wait between requests.
        package var backoff: Backoff { Backoff(baseSeconds: backoffBaseSeconds, capSeconds: backoffCapSeconds) }
    }

    /// `agent`: how `master run` notices files and when it uploads them.
    package struct Agent: Sendable, Equatable {
        /// `agent.stability_seconds`.
        package var stabilitySeconds: Double
        /// The default of `stabilitySeconds`.
        package static let defaultStabilitySeconds: Double = 60
        /// `agent.scan_existing_files`.
        package var scanExistingFiles: Bool
        /// The default of `scanExistingFiles`.
        package static let defaultScanExistingFiles = true
        /// How far back the start-up scan looks, in days: `scan.max_age_days`, with a default of its own.
        package var scanMaxAgeDays: Double
        /// The default of `scanMaxAgeDays`.
        package static let defaultScanMaxAgeDays: Double = 3
        /// `agent.upload_on_start`.
        package var uploadOnStart: Bool
        /// The default of `uploadOnStart`.
        package static let defaultUploadOnStart = true
        /// `agent.schedule`; nil: no scheduled runs.
        package var schedule: UploadSchedule?
        /// `agent.operational_hours`; nil (absent or `enabled: false`): every moment is inside.
        package var operationalHours: OperationalHours?
        /// `agent.batch_upload`.
        package var batchUpload: Bool
        /// The default of `batchUpload`.
        package static let defaultBatchUpload = true
        /// `agent.timezone`: `local`, `UTC` or an IANA name.
        package var timezone: String
        /// The default of `timezone`.
        package static let defaultTimezone = "local"
        /// `agent.rescan_minutes`.
        package var rescanMinutes: Double
        /// The default of `rescanMinutes`.
        package static let defaultRescanMinutes: Double = 10
        /// `agent.heartbeat_seconds`.
        package var heartbeatSeconds: Double
        /// The default of `heartbeatSeconds`.
        package static let defaultHeartbeatSeconds: Double = 60
        /// `agent.stop_timeout_seconds`.
        package var stopTimeoutSeconds: Double
        /// The default of `stopTimeoutSeconds`.
        package static let defaultStopTimeoutSeconds: Double = 20

        init(_ settings: AgentSettings?, scan: ScanSettings?) {
            stabilitySeconds = settings?.stabilitySeconds ?? Self.defaultStabilitySeconds
            scanExistingFiles = settings?.scanExistingFiles ?? Self.defaultScanExistingFiles
            scanMaxAgeDays = scan?.maxAgeDays ?? Self.defaultScanMaxAgeDays
            uploadOnStart = settings?.uploadOnStart ?? Self.defaultUploadOnStart
            schedule = UploadSchedule(settings: settings?.schedule)
            operationalHours = OperationalHours(settings: settings?.operationalHours)
            batchUpload = settings?.batchUpload ?? Self.defaultBatchUpload
            timezone = settings?.timezone ?? Self.defaultTimezone
            rescanMinutes = settings?.rescanMinutes ?? Self.defaultRescanMinutes
            heartbeatSeconds = settings?.heartbeatSeconds ?? Self.defaultHeartbeatSeconds
            stopTimeoutSeconds = settings?.stopTimeoutSeconds ?? Self.defaultStopTimeoutSeconds
        }

        /// `rescanMinutes` in seconds.
        package var rescanSeconds: Double { rescanMinutes * 60 }

        /// The zone of the schedule, the operational hours and `deletion.age.at`; a name that is not a zone
        /// (validation refuses it) reads as the local zone.
        package var timeZone: TimeZone {
            switch timezone {
            case "local": TimeZone.current
            case "UTC", "utc": TimeZone(identifier: "UTC")!
            default: TimeZone(identifier: timezone) ?? TimeZone.current
            }
        }
    }

    /// `deletion`: the agent's three policies; each applies only when its section is present and not
    /// `enabled: false`.
    package struct Deletion: Sendable, Equatable {
        /// `deletion.after_upload`; nil when off.
        package var afterUpload: AfterUpload?
        /// `deletion.age`; nil when off.
        package var age: Age?
        /// `deletion.emergency`; its thresholds apply to the warnings even when it is off.
        package var emergency: Emergency

        init(_ settings: DeletionSettings?) {
            afterUpload = settings?.afterUpload.flatMap { $0.enabled == false ? nil : AfterUpload($0) }
            age = settings?.age.flatMap { $0.enabled == false ? nil : Age($0) }
            emergency = Emergency(settings?.emergency)
        }

        /// `deletion.after_upload`, on.
        package struct AfterUpload: Sendable, Equatable {
            /// `deletion.after_upload.keep_days`: days between the verified upload and the deletion.
            package var keepDays: Double
            /// The default of `keepDays`: at once.
            package static let defaultKeepDays: Double = 0

            init(_ settings: AfterUploadDeletion) {
                keepDays = settings.keepDays ?? Self.defaultKeepDays
            }
        }

        /// `deletion.age`, on.
        package struct Age: Sendable, Equatable {
            /// `deletion.age.max_age_days` (required in the section).
            package var maxAgeDays: Double
            /// `deletion.age.at`: the time of day it runs, in the agent's zone.
            package var at: ClockTime
            /// The default of `at`.
            package static let defaultAt = ClockTime(hour: 2, minute: 0)
            /// `deletion.age.include_unuploaded`.
            package var includeUnuploaded: Bool
            /// The default of `includeUnuploaded`.
            package static let defaultIncludeUnuploaded = false

            /// Applies the defaults to `settings`; an `at` that is not `HH:MM` (validation refuses it) reads as
            /// the default.
            package init(_ settings: AgeDeletion) {
                maxAgeDays = settings.maxAgeDays
                at = settings.at.flatMap(ClockTime.init(parsing:)) ?? Self.defaultAt
                includeUnuploaded = settings.includeUnuploaded ?? Self.defaultIncludeUnuploaded
            }
        }

        /// `deletion.emergency`, on or off.
        package struct Emergency: Sendable, Equatable {
            /// Whether the section is present and not `enabled: false`: only then is anything deleted.
            package var active: Bool
            /// `deletion.emergency.warn_percent`: a warning is logged above it, and deleting stops below it.
            package var warnPercent: Double
            /// The default of `warnPercent`.
            package static let defaultWarnPercent: Double = 90
            /// `deletion.emergency.act_percent`: deleting starts at it.
            package var actPercent: Double
            /// The default of `actPercent`.
            package static let defaultActPercent: Double = 95
            /// `deletion.emergency.reserved_gb`: GiB of free space to keep; less starts deleting, and deleting goes
            /// on until this much is free (0: no floor).
            package var reservedGb: Double
            /// The default of `reservedGb`.
            package static let defaultReservedGb: Double = 0
            /// `deletion.emergency.include_unuploaded`.
            package var includeUnuploaded: Bool
            /// The default of `includeUnuploaded`.
            package static let defaultIncludeUnuploaded = false

            /// Applies the defaults to `settings` (nil: the section is absent).
            package init(_ settings: EmergencyDeletion?) {
                active = settings != nil && settings?.enabled != false
                warnPercent = settings?.warnPercent ?? Self.defaultWarnPercent
                actPercent = settings?.actPercent ?? Self.defaultActPercent
                reservedGb = settings?.reservedGb ?? Self.defaultReservedGb
                includeUnuploaded = settings?.includeUnuploaded ?? Self.defaultIncludeUnuploaded
            }

            /// `reservedGb` in bytes (GiB).
            package var reservedBytes: Int64 { Int64((reservedGb * 1_073_741_824).rounded()) }

            /// Whether `usage` calls for deleting: at or above `act_percent`, or less than `reserved_gb` free.
            package func mustFreeSpace(_ usage: DiskUsage) -> Bool {
                usage.usedPercent >= actPercent || usage.availableBytes < reservedBytes
            }

            /// Whether `usage` is worth a warning: at or above `warn_percent`, or less than `reserved_gb` free.
            package func isTight(_ usage: DiskUsage) -> Bool {
                usage.usedPercent >= warnPercent || usage.availableBytes < reservedBytes
            }
        }
    }

    /// `metrics`: what the agent publishes.
    package struct Metrics: Sendable, Equatable {
        /// `metrics.cloudwatch`.
        package var cloudwatch: CloudWatch

        init(_ settings: MetricsSettings?, device: String) {
            cloudwatch = CloudWatch(settings?.cloudwatch, device: device)
        }

        /// `metrics.cloudwatch`: CloudWatch PutMetricData.
        package struct CloudWatch: Sendable, Equatable {
            /// `metrics.cloudwatch.enabled`: nothing is sent unless it is on.
            package var enabled: Bool
            /// The default of `enabled`.
            package static let defaultEnabled = false
            /// `metrics.cloudwatch.namespace`.
            package var namespace: String
            /// The default of `namespace`.
            package static let defaultNamespace = "TVM/Upload"
            /// `metrics.cloudwatch.region`; nil: the S3 region (`S3Context` resolves it).
            package var region: String?
            /// `metrics.cloudwatch.endpoint`; nil: AWS's `monitoring` endpoint for the region.
            package var endpoint: String?
            /// `metrics.cloudwatch.vehicle_id`: the `VehicleId` dimension; default: the resolved `device`.
            package var vehicleId: String
            /// `metrics.cloudwatch.flush_seconds`: seconds between sends.
            package var flushSeconds: Double
            /// The default of `flushSeconds`.
            package static let defaultFlushSeconds: Double = 60

            init(_ settings: CloudWatchSettings?, device: String) {
                enabled = settings?.enabled ?? Self.defaultEnabled
                namespace = settings?.namespace ?? Self.defaultNamespace
                region = settings?.region
                endpoint = settings?.endpoint
                vehicleId = settings?.vehicleId ?? device
                flushSeconds = settings?.flushSeconds ?? Self.defaultFlushSeconds
            }
        }
    }
}

extension FleetConfig {
    /// The configuration with every default applied; where several values are read, take it once.
    package var resolved: ResolvedConfig { ResolvedConfig(self) }
}
