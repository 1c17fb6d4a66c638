import FleetSystem
import Foundation

/// The TVM log daemon's `config.yaml` as an agent configuration.
///
/// Kept as the daemon did it: keys `vehicle_id/date/source/path` with the date of each file's own mtime in local
/// time (run folders included), hidden files left out, `recursive: false` taking only a directory's own files,
/// operational hours that include their end minute, an interval of `interval_hours` plus `interval_minutes`,
/// deletion policies with the daemon's defaults and its fractions as percentages.
struct TVMConfigImport {
    var reader: OldConfigReader
    let options: ConfigImport.Options
    var result: ImportedConfig

    init(file: String, options: ConfigImport.Options) {
        reader = OldConfigReader(file: file, environment: options.environment)
        self.options = options
        result = ImportedConfig(format: .yaml, source: "the TVM daemon's \(file)")
    }

    mutating func run(_ document: ConfigValue) throws(ConfigError) -> ImportedConfig {
        guard let top = try reader.object(document, at: "") else {
            throw reader.error("", "the file holds no settings")
        }
        let known: Set = ["vehicle_id", "log_directories", "s3", "upload", "deletion", "disk", "monitoring"]
        guard let vehicle = try reader.text(document["vehicle_id"], at: "vehicle_id"), !vehicle.isEmpty else {
            throw reader.error("vehicle_id", "is required")
        }
        let s3 = try reader.object(document["s3"], at: "s3") ?? []
        guard let bucket = try reader.text(ConfigValue.object(s3)["bucket"], at: "s3.bucket") else {
            throw reader.error("s3.bucket", "is required")
        }

        if let project = options.project {
            result.set("project.name", .text(project), from: "--project")
        } else {
            result.set(
                "project.name",
                .text(bucket),
                from: "s3.bucket: the old daemon had no project, so it is named after its bucket"
            )
        }
        result.set("device", .text(vehicle), from: "vehicle_id")
        try importS3(s3)
        try importSources(document["log_directories"])
        result.set(
            "keys.template",
            .text("{device}/{date}/{source}/{relpath}"),
            from: "the old daemon's keys: vehicle_id/date/source/path below the directory"
        )
        result.set("keys.timezone", .text("local"), from: "the old daemon dated files by their mtime in local time")

        let upload = try reader.object(document["upload"], at: "upload") ?? []
        try importUpload(upload)
        try importDeletion(document)
        try importMonitoring(document["monitoring"])

        for (key, _) in top where !known.contains(key) {
            if key == "s3_lifecycle" {
                result.leave(
                    key,
                    "how long objects stay is an S3 lifecycle rule on the bucket, not an uploader setting"
                )
            } else {
                result.leave(key, "not a setting of the TVM daemon this import knows")
            }
        }
        result.notices = reader.expansionNotices + result.notices
        return result
    }

    // MARK: - s3

    private mutating func importS3(_ s3: [(key: String, value: ConfigValue)]) throws(ConfigError) {
        let section = ConfigValue.object(s3)
        result.set("s3.bucket", .text(try reader.text(section["bucket"], at: "s3.bucket") ?? ""), from: "s3.bucket")
        if let region = try reader.text(section["region"], at: "s3.region") {
            result.set("s3.region", .text(region), from: "s3.region")
        }
        if let profile = try reader.text(section["profile"], at: "s3.profile") {
            result.set("s3.profile", .text(profile), from: "s3.profile")
        }
        if let path = try reader.text(section["credentials_path"], at: "s3.credentials_path") {
            let expanded = try reader.expandedPath(path, at: "s3.credentials_path")
            result.set(
                "s3.credentials_path",
                .text(ConfigImport.absolute(expanded, from: options.currentDirectory)),
                from: "s3.credentials_path"
            )
        }
        for (key, _) in s3 where !["bucket", "region", "profile", "credentials_path"].contains(key) {
            result.leave("s3.\(key)", "not a setting of the TVM daemon this import knows")
        }
    }

    // MARK: - log_directories

    private mutating func importSources(_ value: ConfigValue?) throws(ConfigError) {
        guard let items = try reader.list(value, at: "log_directories"), !items.isEmpty else {
            throw reader.error("log_directories", "is required: list at least one directory")
        }
        var sources: [ImportedConfig.Value] = []
        var names: [String: Int] = [:]
        for (index, item) in items.enumerated() {
            let key = "log_directories[\(index)]"
            var entries: [ImportedConfig.Entry] = []
            let written: String
            let name: String
            var include: String?
            var recursive = true
            var allowDeletion: Bool?
            if case .object(let fields) = item {
                let object = ConfigValue.object(fields)
                guard let path = try reader.text(object["path"], at: "\(key).path"), !path.isEmpty else {
                    throw reader.error("\(key).path", "is required")
                }
                written = path
                guard let source = try reader.text(object["source"], at: "\(key).source"), !source.isEmpty else {
                    throw reader.error("\(key).source", "is required")
                }
                name = source
                include = try reader.text(object["pattern"], at: "\(key).pattern")
                recursive = try reader.bool(object["recursive"], at: "\(key).recursive") ?? true
                allowDeletion = try reader.bool(object["allow_deletion"], at: "\(key).allow_deletion")
                for (field, _) in fields
                where !["path", "source", "pattern", "recursive", "allow_deletion"].contains(field) {
                    result.leave("\(key).\(field)", "not a setting of a TVM log directory this import knows")
                }
                entries.append(.init("name", .text(name), origin: "\(key).source"))
            } else if let path = try reader.text(item, at: key), !path.isEmpty {
                written = path
                name = Self.guessedSource(path)
                entries.append(
                    .init("name", .text(name), origin: "named from the path, as the old daemon named \(key)")
                )
            } else {
                throw reader.error(key, "expected a path or a section with path and source")
            }
            if let earlier = names[name] {
                throw reader.error(
                    key,
                    "source '\(name)' is also log_directories[\(earlier)]'s; give each directory its own source"
                )
            }
            names[name] = index
            let expanded = ConfigImport.absolute(
                try reader.expandedPath(written, at: key),
                from: options.currentDirectory
            )
            let pathOrigin = item.isText ? key : "\(key).path"
            entries.append(.init("path", .text(expanded), origin: pathOrigin))
            if let include {
                entries.append(.init("include", .list([.text(include)]), origin: "\(key).pattern"))
            }
            var exclude: [ImportedConfig.Value] = [.text(".*")]
            var why = "the old daemon skipped hidden files"
            if !recursive {
                exclude.append(.text("*/"))
                why += "; \(key).recursive: false, so files in subdirectories are left out"
            }
            entries.append(.init("exclude", .list(exclude), origin: why))
            if ResolvedConfig.defaultRunFolders(name: name) {
                entries.append(
                    .init(
                        "run_folders",
                        .bool(false),
                        origin: "the old daemon dated every file by its own mtime, in run folders too"
                    )
                )
            }
            if let allowDeletion {
                entries.append(.init("allow_deletion", .bool(allowDeletion), origin: "\(key).allow_deletion"))
            } else if !ResolvedConfig.defaultAllowDeletion(path: expanded) {
                result.notices.append(
                    "\(key) (\(expanded)): the old daemon's policies could delete files here; fleet-upload keeps "
                        + "system directories read-only unless the source sets allow_deletion: true"
                )
            }
            sources.append(.object(entries))
        }
        result.set("sources", .list(sources), from: "log_directories")
    }

    /// The source the old daemon gave a directory listed as a bare path.
    static func guessedSource(_ path: String) -> String {
        let lowered = path.lowercased()
        if lowered.contains("terminal") { return "terminal" }
        if lowered.contains(".ros/log") || lowered.contains("ros_log") { return "ros" }
        if lowered.contains("ros2") { return "ros2" }
        if lowered.hasPrefix("/var/log") { return "syslog" }
        let last = URL(fileURLWithPath: path).standardizedFileURL.lastPathComponent
        return last.isEmpty || last == "/" ? "root" : last
    }

    // MARK: - upload

    private mutating func importUpload(_ upload: [(key: String, value: ConfigValue)]) throws(ConfigError) {
        let section = ConfigValue.object(upload)
        if let seconds = try reader.number(section["file_stable_seconds"], at: "upload.file_stable_seconds") {
            result.set("agent.stability_seconds", .number(seconds), from: "upload.file_stable_seconds")
        }
        if let scan = try reader.object(section["scan_existing_files"], at: "upload.scan_existing_files") {
            let object = ConfigValue.object(scan)
            let key = "upload.scan_existing_files"
            if let enabled = try reader.bool(object["enabled"], at: "\(key).enabled") {
                result.set("agent.scan_existing_files", .bool(enabled), from: "\(key).enabled")
            }
            if let days = try reader.number(object["max_age_days"], at: "\(key).max_age_days") {
                if days > 0 {
                    result.set("scan.max_age_days", .number(days), from: "\(key).max_age_days")
                } else {
                    result.set(
                        "scan.max_age_days",
                        .number(ConfigImport.noAgeLimitDays),
                        from: "\(key).max_age_days: 0, no limit (the longest age accepted)"
                    )
                }
            }
            for (field, _) in scan where !["enabled", "max_age_days"].contains(field) {
                result.leave("\(key).\(field)", "not a setting of the TVM daemon this import knows")
            }
        }
        if let start = try reader.bool(section["upload_on_start"], at: "upload.upload_on_start") {
            result.set("agent.upload_on_start", .bool(start), from: "upload.upload_on_start")
        }
        if let batch = try reader.object(section["batch_upload"], at: "upload.batch_upload") {
            if let enabled = try reader.bool(ConfigValue.object(batch)["enabled"], at: "upload.batch_upload.enabled") {
                result.set("agent.batch_upload", .bool(enabled), from: "upload.batch_upload.enabled")
            }
            for (field, _) in batch where field != "enabled" {
                result.leave("upload.batch_upload.\(field)", "fleet-upload keeps no such setting")
            }
        }
        try importSchedule(section["schedule"])
        try importHours(section["operational_hours"])

        let handled: Set = [
            "file_stable_seconds", "scan_existing_files", "upload_on_start", "batch_upload", "schedule",
            "operational_hours",
        ]
        for (key, value) in upload where !handled.contains(key) {
            switch key {
            case "queue_file":
                result.leave(
                    "upload.queue_file",
                    "the agent keeps its queue in the ledger; bring the old one in with master import-state --queue FILE"
                )
            case "processed_files_registry":
                for (field, _) in (try? reader.object(value, at: "upload.\(key)")) ?? [] {
                    let reason =
                        field == "registry_file"
                        ? "the ledger records every upload; bring the old registry in with master import-state "
                            + "--registry FILE"
                        : field == "retention_days"
                            ? "the ledger keeps every upload; nothing expires" : "fleet-upload keeps no such setting"
                    result.leave("upload.processed_files_registry.\(field)", reason)
                }
            default:
                result.leave("upload.\(key)", "not a setting of the TVM daemon this import knows")
            }
        }
    }

    private mutating func importSchedule(_ value: ConfigValue?) throws(ConfigError) {
        let key = "upload.schedule"
        guard let value, !value.isNull else { return }
        if value.isText {
            let time = try reader.clockTime(value, at: key)!
            result.set("agent.schedule.daily_at", .text(time.description), from: "\(key) (daily)")
            return
        }
        guard let fields = try reader.object(value, at: key) else { return }
        let schedule = ConfigValue.object(fields)
        guard let mode = try reader.text(schedule["mode"], at: "\(key).mode") else {
            throw reader.error("\(key).mode", "is required: daily or interval")
        }
        var used: Set = ["mode"]
        switch mode {
        case "daily":
            guard let time = try reader.clockTime(schedule["daily_time"], at: "\(key).daily_time") else {
                throw reader.error("\(key).daily_time", "is required when mode is daily")
            }
            result.set("agent.schedule.daily_at", .text(time.description), from: "\(key).daily_time")
            used.insert("daily_time")
        case "interval":
            let hours = try reader.number(schedule["interval_hours"], at: "\(key).interval_hours") ?? 0
            let minutes = try reader.number(schedule["interval_minutes"], at: "\(key).interval_minutes") ?? 0
            let total = hours * 60 + minutes
            guard hours >= 0, minutes >= 0, total >= 5, total <= 1440 else {
                throw reader.error(
                    "\(key).interval_hours",
                    "interval_hours and interval_minutes must add up to 5 minutes…24 hours, got \(total) minutes"
                )
            }
            let origin = "\(key).interval_hours \(hours.compact) + interval_minutes \(minutes.compact)"
            if total.truncatingRemainder(dividingBy: 60) == 0 {
                result.set("agent.schedule.every_hours", .number(total / 60), from: origin)
            } else {
                result.set("agent.schedule.every_minutes", .number(total), from: origin)
            }
            used.formUnion(["interval_hours", "interval_minutes"])
        default:
            throw reader.error("\(key).mode", "must be daily or interval, got '\(mode)'")
        }
        result.annotate("agent.schedule", from: "\(key).mode: \(mode)")
        for (field, _) in fields where !used.contains(field) {
            let reason =
                ["daily_time", "interval_hours", "interval_minutes"].contains(field)
                ? "only read in the other mode" : "not a setting of the TVM daemon this import knows"
            result.leave("\(key).\(field)", reason)
        }
    }

    private mutating func importHours(_ value: ConfigValue?) throws(ConfigError) {
        let key = "upload.operational_hours"
        guard let fields = try reader.object(value, at: key) else { return }
        let hours = ConfigValue.object(fields)
        let enabled = try reader.bool(hours["enabled"], at: "\(key).enabled") ?? true
        let start = try reader.clockTime(hours["start"], at: "\(key).start")
        let end = try reader.clockTime(hours["end"], at: "\(key).end")
        for (field, _) in fields where !["enabled", "start", "end"].contains(field) {
            result.leave("\(key).\(field)", "not a setting of the TVM daemon this import knows")
        }
        guard let start, let end else {
            if enabled { throw reader.error("\(key).\(start == nil ? "start" : "end")", "is required when enabled") }
            result.notices.append("\(key) is off: ready files go up at any hour, as without agent.operational_hours")
            return
        }
        // The old daemon's hours held their end minute (09:00–16:00 uploaded at 16:00); ours end before `end`.
        let newEnd = end.nextMinute
        guard newEnd != start else {
            result.notices.append(
                "\(key) \(start)–\(end) covers the whole day: ready files go up at any hour, as without "
                    + "agent.operational_hours"
            )
            return
        }
        if end < start {
            result.notices.append(
                "\(key) \(start)–\(end) crosses midnight: here it holds from \(start) to \(end) the next morning"
            )
        }
        result.set("agent.operational_hours.start", .text(start.description), from: "\(key).start")
        result.set(
            "agent.operational_hours.end",
            .text(newEnd.description),
            from: "\(key).end \(end), whose minute the old daemon included"
        )
        if !enabled { result.set("agent.operational_hours.enabled", .bool(false), from: "\(key).enabled") }
        result.annotate("agent.operational_hours", from: enabled ? "\(key) (enabled)" : key)
    }

    // MARK: - deletion, disk

    private mutating func importDeletion(_ document: ConfigValue) throws(ConfigError) {
        let deletion = try reader.object(document["deletion"], at: "deletion") ?? []
        let section = ConfigValue.object(deletion)
        if let after = try reader.object(section["after_upload"], at: "deletion.after_upload") {
            let key = "deletion.after_upload"
            let object = ConfigValue.object(after)
            let enabled = try reader.bool(object["enabled"], at: "\(key).enabled") ?? true
            if !enabled { result.set("\(key).enabled", .bool(false), from: "\(key).enabled") }
            if let days = try reader.number(object["keep_days"], at: "\(key).keep_days") {
                result.set("\(key).keep_days", .number(days), from: "\(key).keep_days")
            } else {
                result.set("\(key).keep_days", .number(14), from: "not in the old file: the old daemon's default")
            }
            result.annotate(key, from: enabled ? "\(key) (enabled)" : key)
            leaveUnknown(after, in: key, known: ["enabled", "keep_days"])
        }
        if let age = try reader.object(section["age_based"], at: "deletion.age_based") {
            let key = "deletion.age_based"
            let object = ConfigValue.object(age)
            let enabled = try reader.bool(object["enabled"], at: "\(key).enabled") ?? true
            let days = try reader.number(object["max_age_days"], at: "\(key).max_age_days")
            if let days, days <= 0 {
                result.leave(
                    "\(key).max_age_days",
                    "\(days.compact) would delete every file each day; the age policy is not imported"
                )
            } else {
                if !enabled { result.set("deletion.age.enabled", .bool(false), from: "\(key).enabled") }
                result.set(
                    "deletion.age.max_age_days",
                    .number(days ?? 7),
                    from: days == nil ? "not in the old file: the old daemon's default" : "\(key).max_age_days"
                )
                if let time = try reader.clockTime(object["schedule_time"], at: "\(key).schedule_time") {
                    result.set("deletion.age.at", .text(time.description), from: "\(key).schedule_time")
                }
                result.annotate("deletion.age", from: enabled ? "\(key) (enabled)" : key)
                result.set(
                    "deletion.age.include_unuploaded",
                    .bool(true),
                    from: "the old daemon's age-based cleanup deleted old files whether uploaded or not"
                )
            }
            leaveUnknown(age, in: key, known: ["enabled", "max_age_days", "schedule_time"])
        }
        let emergency = try reader.object(section["emergency"], at: "deletion.emergency")
        let disk = try reader.object(document["disk"], at: "disk") ?? []
        if let emergency {
            let key = "deletion.emergency"
            let enabled = try reader.bool(ConfigValue.object(emergency)["enabled"], at: "\(key).enabled") ?? false
            result.set(
                "deletion.emergency.enabled",
                .bool(enabled),
                from: ConfigValue.object(emergency)["enabled"] == nil
                    ? "not in the old file: the old daemon's default" : "\(key).enabled"
            )
            if enabled {
                result.set(
                    "deletion.emergency.include_unuploaded",
                    .bool(true),
                    from: "at the critical threshold the old daemon deleted old files whether uploaded or not"
                )
            }
            leaveUnknown(emergency, in: key, known: ["enabled"])
        }
        let diskSection = ConfigValue.object(disk)
        for (old, new) in [("warning_threshold", "warn_percent"), ("critical_threshold", "act_percent")] {
            guard let fraction = try reader.number(diskSection[old], at: "disk.\(old)") else { continue }
            guard fraction > 0, fraction <= 1 else {
                throw reader.error("disk.\(old)", "must be a fraction of the disk between 0 and 1, got \(fraction)")
            }
            if emergency == nil {
                result.set("deletion.emergency.enabled", .bool(false), from: "no deletion.emergency in the old file")
            }
            let percent = (fraction * 10_000).rounded() / 100
            result.set("deletion.emergency.\(new)", .number(percent), from: "disk.\(old) \(fraction) as a percentage")
        }
        if let reserved = try reader.number(diskSection["reserved_gb"], at: "disk.reserved_gb") {
            if emergency == nil, diskSection["warning_threshold"] == nil, diskSection["critical_threshold"] == nil {
                result.set("deletion.emergency.enabled", .bool(false), from: "no deletion.emergency in the old file")
            }
            result.set("deletion.emergency.reserved_gb", .number(reserved), from: "disk.reserved_gb")
        }
        leaveUnknown(disk, in: "disk", known: ["warning_threshold", "critical_threshold", "reserved_gb"])
        leaveUnknown(deletion, in: "deletion", known: ["after_upload", "age_based", "emergency"])
    }

    // MARK: - monitoring

    private mutating func importMonitoring(_ value: ConfigValue?) throws(ConfigError) {
        let monitoring = try reader.object(value, at: "monitoring") ?? []
        let section = ConfigValue.object(monitoring)
        if let enabled = try reader.bool(section["cloudwatch_enabled"], at: "monitoring.cloudwatch_enabled") {
            result.set("metrics.cloudwatch.enabled", .bool(enabled), from: "monitoring.cloudwatch_enabled")
        } else {
            result.set(
                "metrics.cloudwatch.enabled",
                .bool(true),
                from: "not in the old file: the old daemon published CloudWatch metrics unless told not to"
            )
        }
        if let seconds = try reader.number(
            section["publish_interval_seconds"],
            at: "monitoring.publish_interval_seconds"
        ) {
            if seconds >= 1, seconds <= 3600 {
                result.set(
                    "metrics.cloudwatch.flush_seconds",
                    .number(seconds),
                    from: "monitoring.publish_interval_seconds"
                )
            } else {
                result.leave(
                    "monitoring.publish_interval_seconds",
                    "must be 1…3600 seconds here, got \(seconds.compact)"
                )
            }
        }
        leaveUnknown(monitoring, in: "monitoring", known: ["cloudwatch_enabled", "publish_interval_seconds"])
    }

    private mutating func leaveUnknown(
        _ fields: [(key: String, value: ConfigValue)],
        in section: String,
        known: Set<String>
    ) {
        for (field, _) in fields where !known.contains(field) {
            let reason =
                field.contains("alarm") || field.contains("threshold_mb")
                ? "CloudWatch alarms are set up in CloudWatch, not by the uploader"
                : "not a setting of the TVM daemon this import knows"
            result.leave("\(section).\(field)", reason)
        }
    }
}

extension ConfigValue {
    /// A scalar that reads as text (a quoted or plain YAML scalar, a JSON string).
    var isText: Bool {
        switch self {
        case .string, .plain: !isNull
        default: false
        }
    }
}

extension Double {
    /// `2`, not `2.0`.
    var compact: String { rounded() == self && abs(self) < 1e15 ? String(Int64(self)) : String(self) }
}
