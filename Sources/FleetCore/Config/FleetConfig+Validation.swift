import FleetAWS
import FleetSystem
import Foundation

extension FleetConfig {
    /// Checks every value against its rules and returns the problems, each with its key path; empty when the
    /// configuration is usable.
    package func problems() -> [ConfigError] {
        var found: [ConfigError] = []
        let resolved = self.resolved
        func problem(_ path: String, _ message: String) { found.append(ConfigError(keyPath: path, message)) }
        /// `<prefix>_base_seconds` and `<prefix>_cap_seconds`: each 0…maximum, the cap at least the base.
        func checkBackoff(_ prefix: String, base: Double?, cap: Double?, maximum: Double) {
            for (suffix, value) in [("base", base), ("cap", cap)] {
                if let value, !(value >= 0 && value <= maximum) {
                    problem("\(prefix)_\(suffix)_seconds", "must be 0…\(Int(maximum)), got \(value)")
                }
            }
            if let base, let cap, cap < base {
                problem("\(prefix)_cap_seconds", "must be at least the base (\(base)), got \(cap)")
            }
        }

        /// A time of day as `HH:MM`, parsed; nil (and a problem when given) if it is not one.
        func clockTime(_ path: String, _ text: String?) -> ClockTime? {
            guard let text else { return nil }
            guard let time = ClockTime(parsing: text) else {
                problem(path, "must be a time of day as HH:MM (00:00…23:59), got '\(text)'")
                return nil
            }
            return time
        }

        if let reason = FleetConfig.nameProblem(project.name) { problem("project.name", reason) }
        if let device, let reason = FleetConfig.nameProblem(device) { problem("device", reason) }

        // S3
        if resolved.keys.firstDirIsBucket {
            if s3.bucket != nil { problem("s3.bucket", "must be absent when keys.first_dir_is_bucket is true") }
        } else if let bucket = s3.bucket {
            if let reason = BucketName.problem(with: bucket) { problem("s3.bucket", "'\(bucket)' \(reason)") }
        } else {
            problem("s3.bucket", "is required (or set keys.first_dir_is_bucket: true)")
        }
        if let prefix = s3.prefix, prefix.split(separator: "/").contains("..") {
            problem("s3.prefix", "must not contain '..' segments")
        }
        if let region = s3.region,
            region.isEmpty || !region.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") })
        {
            problem("s3.region", "must look like us-east-1 or cn-north-1, got '\(region)'")
        }
        if let endpoint = s3.endpoint {
            // The rules S3Endpoint applies when a run starts, so a bad endpoint is refused when the file loads.
            do {
                _ = try S3Endpoint.resolve(region: "us-east-1", endpoint: endpoint, pathStyle: nil, environment: [:])
            } catch {
                problem("s3.endpoint", error.message)
            }
        }

        if let profile = s3.profile,
            profile.isEmpty || profile.contains(where: { $0 == "[" || $0 == "]" || $0.isNewline })
        {
            problem("s3.profile", "must be a profile name as in ~/.aws/credentials, got '\(profile)'")
        }

        if let directory = s3.credentialsPath, directory.isEmpty || directory.contains(where: \.isNewline) {
            problem("s3.credentials_path", "must be a directory holding credentials and config, got '\(directory)'")
        }

        // Sources
        switch (source, sources) {
        case (nil, nil): problem("source", "is required (or list several under sources)")
        case (.some, .some): problem("sources", "give either source or sources, not both")
        case (nil, .some(let list)) where list.isEmpty: problem("sources", "must list at least one source")
        default: break
        }
        let listed = sources != nil
        var names: Set<String> = []
        for (index, item) in resolved.sources.enumerated() {
            let path = listed ? "sources[\(index)]" : "source"
            if item.path.isEmpty { problem("\(path).path", "must not be empty") }
            if let name = item.name {
                if let reason = FleetConfig.nameProblem(name) { problem("\(path).name", reason) }
                if !names.insert(name).inserted { problem("\(path).name", "'\(name)' is used by another source") }
            }
            if listed, sources?[index].name == nil {
                problem("\(path).name", "is required when several sources are listed")
            }
            found += FleetConfig.globProblems(item.include, at: "\(path).include")
            found += FleetConfig.globProblems(item.exclude, at: "\(path).exclude")
            if let compress = item.compress {
                if compress.codec != Compression.zstd {
                    problem("\(path).compress.codec", "must be zstd, got '\(compress.codec)'")
                }
                if let level = compress.level, !Zstd.levels.contains(level) {
                    problem(
                        "\(path).compress.level",
                        "must be \(Zstd.levels.lowerBound)…\(Zstd.levels.upperBound) (libzstd's levels), got \(level)"
                    )
                }
                found += FleetConfig.globProblems(compress.include, at: "\(path).compress.include")
            }
        }
        // Relative paths are compared once `ConfigLoader.load` has taken them relative to the file.
        if listed, resolved.sources.allSatisfy({ $0.path.hasPrefix("/") }) {
            found += FleetConfig.overlappingSourceProblems(resolved.sources)
        }

        // Keys
        do throws(KeyTemplateError) {
            let template = try KeyTemplate(resolved.keys.template)
            if resolved.sources.count > 1, !template.uses(.source) {
                problem("keys.template", "must contain {source} when several sources are listed")
            }
        } catch {
            problem("keys.template", error.description)
        }
        if let zone = keys?.timezone, !["UTC", "utc", "local"].contains(zone), TimeZone(identifier: zone) == nil {
            problem("keys.timezone", "unknown time zone '\(zone)' (use UTC, local, or a name like Asia/Shanghai)")
        }

        // Scan
        found += FleetConfig.globProblems(scan?.include, at: "scan.include")
        found += FleetConfig.globProblems(scan?.exclude, at: "scan.exclude")
        if let seconds = scan?.minAgeSeconds, !(0...604_800).contains(seconds) {
            problem("scan.min_age_seconds", "must be 0…604800 (a week), got \(seconds)")
        }
        if let days = scan?.maxAgeDays, !(days > 0 && days <= 36_500) {
            problem("scan.max_age_days", "must be more than 0 and at most 36500, got \(days.formatted())")
        }

        // Upload
        if case .fixed(let workers) = upload?.workers, !(1...AdaptiveConcurrency.maximumLevel).contains(workers) {
            problem("upload.workers", "must be auto or 1…\(AdaptiveConcurrency.maximumLevel), got \(workers)")
        }
        if let text = upload?.maxBandwidth?.text {
            do throws(BandwidthScheduleError) {
                _ = try BandwidthSchedule(parsing: text)
            } catch {
                problem("upload.max_bandwidth", error.description)
            }
        }
        if let threshold = upload?.multipartThresholdMb, !(5...5120).contains(threshold) {
            problem("upload.multipart_threshold_mb", "must be 5…5120 (S3 parts are 5 MiB to 5 GiB), got \(threshold)")
        }
        if let part = upload?.partSizeMb, !(5...5120).contains(part) {
            problem("upload.part_size_mb", "must be 5…5120 (S3 parts are 5 MiB to 5 GiB), got \(part)")
        }
        if let value = upload?.partConcurrency, !(1...64).contains(value) {
            problem("upload.part_concurrency", "must be 1…64, got \(value)")
        }
        if let value = upload?.maxAttempts, !(1...100).contains(value) {
            problem("upload.max_attempts", "must be 1…100, got \(value)")
        }
        if let value = upload?.backoffBaseSeconds, !(value >= 0 && value <= 3600) {
            problem("upload.backoff_base_seconds", "must be 0…3600, got \(value)")
        }
        if let value = upload?.backoffCapSeconds, !(value >= 0 && value <= 86_400) {
            problem("upload.backoff_cap_seconds", "must be 0…86400, got \(value)")
        }
        if let base = upload?.backoffBaseSeconds, let cap = upload?.backoffCapSeconds, cap < base {
            problem("upload.backoff_cap_seconds", "must be at least backoff_base_seconds (\(base)), got \(cap)")
        }
        if let value = upload?.giveUpAfterSeconds, !(value > 0 && value <= 604_800) {
            problem("upload.give_up_after_seconds", "must be more than 0 and at most 604800, got \(value)")
        }
        if let value = upload?.abandonedMultipartHours, !(value >= 0 && value <= 8760) {
            problem("upload.abandoned_multipart_hours", "must be 0…8760, got \(value)")
        }
        if let value = upload?.stopTimeoutSeconds, !(value >= 0 && value <= 600) {
            problem("upload.stop_timeout_seconds", "must be 0…600, got \(value)")
        }
        if upload?.removeEmptyDirectories == true, upload?.deleteAfterUpload != true {
            problem("upload.remove_empty_directories", "only applies with delete_after_upload: true")
        }
        if upload?.deleteAfterUpload == true, let kept = resolved.sources.first,
            !resolved.sources.contains(where: { $0.allowDeletion == true })
        {
            let key = sources == nil ? "source" : "sources[0]"
            let why: String
            if (sources?.first ?? source)?.allowDeletion == false {
                why = "'\(kept.path)' has allow_deletion: false"
            } else if let prefix = ResolvedConfig.protectedPrefix(of: kept.path), prefix != "/" {
                why = "'\(kept.path)' lies under \(prefix)"
            } else {
                why = "'\(kept.path)' holds the system's directories"
            }
            problem(
                "upload.delete_after_upload",
                "no source allows deletion (\(why)); set \(key).allow_deletion: true to delete there"
            )
        }

        // Retry rounds
        if let value = retry?.rounds, !(1...1000).contains(value) {
            problem("retry.rounds", "must be 1…1000, got \(value)")
        }
        checkBackoff(
            "retry.round_backoff",
            base: retry?.roundBackoffBaseSeconds,
            cap: retry?.roundBackoffCapSeconds,
            maximum: 86_400
        )
        if let value = retry?.maxFileAttempts, !(1...100_000).contains(value) {
            problem("retry.max_file_attempts", "must be 1…100000, got \(value)")
        }

        // Trigger
        for (key, message) in trigger?.problems() ?? [] { problem("trigger.\(key)", message) }

        // Agent
        // 0 is allowed: a file is then ready the first time it is seen.
        if let value = agent?.stabilitySeconds, !(value >= 0 && value <= 86_400) {
            problem("agent.stability_seconds", "must be 0…86400 (a day), got \(value.formatted())")
        }
        if let value = agent?.rescanMinutes, !(value >= 0.1 && value <= 1440) {
            problem("agent.rescan_minutes", "must be 0.1…1440 (6 seconds to a day), got \(value.formatted())")
        }
        if let value = agent?.heartbeatSeconds, !(value >= 1 && value <= 3600) {
            problem("agent.heartbeat_seconds", "must be 1…3600, got \(value.formatted())")
        }
        if let value = agent?.stopTimeoutSeconds, !(value >= 1 && value <= 50) {
            problem(
                "agent.stop_timeout_seconds",
                "must be 1…50 (systemd stops the agent for good after 60 s), got \(value.formatted())"
            )
        }
        if let zone = agent?.timezone, !["UTC", "utc", "local"].contains(zone), TimeZone(identifier: zone) == nil {
            problem("agent.timezone", "unknown time zone '\(zone)' (use local, UTC, or a name like Asia/Shanghai)")
        }
        if let schedule = agent?.schedule {
            let given = [
                ("daily_at", schedule.dailyAt != nil), ("every_minutes", schedule.everyMinutes != nil),
                ("every_hours", schedule.everyHours != nil),
            ].filter(\.1).map(\.0)
            let keys = "daily_at, every_minutes and every_hours"
            if given.isEmpty {
                problem("agent.schedule", "give one of \(keys)")
            } else if given.count > 1 {
                let named = given.dropLast().joined(separator: ", ") + " and " + given[given.count - 1]
                problem("agent.schedule", "give only one of \(keys), got \(named)")
            }
            _ = clockTime("agent.schedule.daily_at", schedule.dailyAt)
            // The predecessor's range: at least 5 minutes, at most a day. Rounding slack lets every_hours 1/12
            // written out as 0.08333333333333333 through.
            if let minutes = schedule.everyMinutes, !(minutes >= 5 && minutes <= 1440) {
                problem(
                    "agent.schedule.every_minutes",
                    "must be 5…1440 (5 minutes to 24 hours), got \(minutes.formatted())"
                )
            }
            if let hours = schedule.everyHours, !(hours * 60 >= 5 - 1e-9 && hours <= 24) {
                problem(
                    "agent.schedule.every_hours",
                    "must be 1/12…24 (5 minutes to 24 hours), got \(hours.formatted())"
                )
            }
        }
        if let hours = agent?.operationalHours {
            let start = clockTime("agent.operational_hours.start", hours.start)
            let end = clockTime("agent.operational_hours.end", hours.end)
            if let start, start == end {
                problem(
                    "agent.operational_hours.end",
                    "must differ from start (\(start)); to upload at any hour, set enabled: false"
                )
            }
        }

        // Deletion
        if let days = deletion?.afterUpload?.keepDays, !(days >= 0 && days <= 3650) {
            problem("deletion.after_upload.keep_days", "must be 0…3650 (ten years), got \(days.formatted())")
        }
        if let age = deletion?.age {
            if !(age.maxAgeDays > 0 && age.maxAgeDays <= 36_500) {
                problem(
                    "deletion.age.max_age_days",
                    "must be more than 0 and at most 36500, got \(age.maxAgeDays.formatted())"
                )
            }
            _ = clockTime("deletion.age.at", age.at)
        }
        if let emergency = deletion?.emergency {
            let percents = [
                ("warn_percent", emergency.warnPercent), ("act_percent", emergency.actPercent),
            ]
            for case (let key, let value?) in percents where !(value >= 1 && value <= 100) {
                problem("deletion.emergency.\(key)", "must be 1…100, got \(value.formatted())")
            }
            if let reserved = emergency.reservedGb, !(reserved >= 0 && reserved <= 1_000_000) {
                problem("deletion.emergency.reserved_gb", "must be 0…1000000 (GiB), got \(reserved.formatted())")
            }
            // Compared with the default for the one not given.
            let warn = resolved.deletion.emergency.warnPercent
            let act = resolved.deletion.emergency.actPercent
            if (1...100).contains(warn), (1...100).contains(act), warn > act {
                if emergency.warnPercent != nil {
                    let origin = emergency.actPercent == nil ? ", the default" : ""
                    problem(
                        "deletion.emergency.warn_percent",
                        "must be at most act_percent (\(act.formatted())\(origin)), got \(warn.formatted())"
                    )
                } else {
                    problem(
                        "deletion.emergency.act_percent",
                        "must be at least warn_percent (\(warn.formatted()), the default), got \(act.formatted())"
                    )
                }
            }
        }
        // Metrics
        if let cloudwatch = metrics?.cloudwatch {
            for (key, message) in cloudwatch.problems() { problem("metrics.cloudwatch.\(key)", message) }
        }
        return found
    }

    /// Names (project, device, source) go into keys and the ledger: printable, no `/`, at most 128 characters.
    package static func nameProblem(_ name: String) -> String? {
        if name.isEmpty { return "must not be empty" }
        if name.count > 128 { return "must be at most 128 characters" }
        if name.contains("/") { return "must not contain '/'" }
        if name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            return "must not contain control characters"
        }
        return nil
    }

    /// Sources that list one directory twice or one inside another: every file below would be scanned, recorded
    /// and uploaded once per source. Paths are compared after resolving symbolic links (`realpath`), so
    /// `/data` and a link to it are the same directory; a path that does not exist (yet) is compared as written.
    static func overlappingSourceProblems(_ sources: [SourceSettings]) -> [ConfigError] {
        let real = sources.map { realDirectory($0.path) }
        var found: [ConfigError] = []
        for later in sources.indices {
            for earlier in sources.indices.prefix(later) {
                let (a, b) = (real[earlier], real[later])
                let other = "sources[\(earlier)] (\(sources[earlier].name ?? ""), '\(sources[earlier].path)')"
                let resolvedNote = sources[later].path == b ? "" : ", resolved to '\(b)',"
                let message: String
                if a == b {
                    message = "'\(sources[later].path)'\(resolvedNote) is the same directory as \(other)"
                } else if b.hasPrefix(a == "/" ? a : a + "/") {
                    message = "'\(sources[later].path)'\(resolvedNote) lies inside \(other)"
                } else if a.hasPrefix(b == "/" ? b : b + "/") {
                    message = "'\(sources[later].path)'\(resolvedNote) contains \(other)"
                } else {
                    continue
                }
                found.append(
                    ConfigError(
                        keyPath: "sources[\(later)].path",
                        message + ": its files would be uploaded twice; list each directory once"
                    )
                )
            }
        }
        return found
    }

    /// The directory `path` names with every symbolic link resolved; the path as written, standardized, when it
    /// cannot be resolved (it does not exist yet).
    package static func realDirectory(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return URL(fileURLWithPath: path).standardizedFileURL.path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func globProblems(_ patterns: [String]?, at path: String) -> [ConfigError] {
        (patterns ?? []).enumerated().compactMap { index, pattern -> ConfigError? in
            do throws(GlobError) {
                _ = try GlobPattern(pattern)
                return nil
            } catch {
                return ConfigError(keyPath: "\(path)[\(index)]", error.reason + " in '\(pattern)'")
            }
        }
    }
}

extension Double {
    /// `2`, not `2.0`; `1e+20` stays as Swift prints it (it does not fit an `Int64`).
    fileprivate func formatted() -> String {
        rounded() == self && abs(self) < 1e15 ? String(Int64(self)) : String(self)
    }
}

extension TriggerSettings {
    /// What is wrong with the values given here, as (key below `trigger.`, reason): the configuration's
    /// validation and the command line's `trigger` flags apply the same rules.
    package func problems() -> [(key: String, message: String)] {
        var found: [(key: String, message: String)] = []
        if let url, let reason = TriggerSettings.urlProblem(url) { found.append(("url", reason)) }
        for (index, header) in (headers ?? []).enumerated() where TriggerSettings.parseHeader(header) == nil {
            found.append(
                (
                    "headers[\(index)]",
                    "must be 'Name: value' with a header name of letters, digits and -, got '\(header)'"
                )
            )
        }
        if let timeoutSeconds, !(timeoutSeconds > 0 && timeoutSeconds <= 3600) {
            found.append(("timeout_seconds", "must be more than 0 and at most 3600, got \(timeoutSeconds)"))
        }
        if let maxAttempts, !(1...100).contains(maxAttempts) {
            found.append(("max_attempts", "must be 1…100, got \(maxAttempts)"))
        }
        for (name, value) in [("base", backoffBaseSeconds), ("cap", backoffCapSeconds)] {
            if let value, !(value >= 0 && value <= 3600) {
                found.append(("backoff_\(name)_seconds", "must be 0…3600, got \(value)"))
            }
        }
        if let base = backoffBaseSeconds, let cap = backoffCapSeconds, cap < base {
            found.append(("backoff_cap_seconds", "must be at least the base (\(base)), got \(cap)"))
        }
        if let onlyIf, TriggerOptions.Condition(rawValue: onlyIf) == nil {
            found.append(("only_if", "must be always or complete, got '\(onlyIf)'"))
        }
        return found
    }

    /// Why `url` cannot be a trigger endpoint, or nil when it can: an absolute http or https URL with a host.
    package static func urlProblem(_ url: String) -> String? {
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(),
            scheme == "http" || scheme == "https", parsed.host?.isEmpty == false
        else { return "must be an http:// or https:// URL with a host, got '\(url)'" }
        return nil
    }

    /// `Name: value` → its parts, the value trimmed; nil when the name is not an HTTP token or the colon is
    /// missing.
    package static func parseHeader(_ text: String) -> (name: String, value: String)? {
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let name = String(text[..<colon])
        let token = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_!#$%&'*+.^`|~")
        guard !name.isEmpty, name.allSatisfy(token.contains) else { return nil }
        let value = text[text.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        guard !value.contains(where: { $0 == "\r" || $0 == "\n" }) else { return nil }
        return (name, value)
    }
}

extension CloudWatchSettings {
    /// What is wrong with these values, as (key below `metrics.cloudwatch.`, reason).
    package func problems() -> [(key: String, message: String)] {
        var found: [(key: String, message: String)] = []
        if let namespace {
            // CloudWatch's own rules: 1…255 characters, not starting with ':' (reserved for AWS namespaces).
            if namespace.isEmpty || namespace.utf8.count > 255 {
                found.append(("namespace", "must be 1…255 characters, got \(namespace.utf8.count)"))
            } else if namespace.hasPrefix(":") {
                found.append(("namespace", "must not start with ':', got '\(namespace)'"))
            } else if namespace.unicodeScalars.contains(where: {
                !$0.isASCII || $0.properties.generalCategory == .control
            }) {
                found.append(("namespace", "must be printable ASCII, got '\(namespace)'"))
            }
        }
        if let region,
            region.isEmpty || !region.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") })
        {
            found.append(("region", "must look like us-east-1 or cn-north-1, got '\(region)'"))
        }
        if let endpoint, let reason = TriggerSettings.urlProblem(endpoint) { found.append(("endpoint", reason)) }
        if let vehicleId {
            if vehicleId.isEmpty || vehicleId.utf8.count > 1024 {
                found.append(("vehicle_id", "must be 1…1024 characters, got \(vehicleId.utf8.count)"))
            } else if vehicleId.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                found.append(("vehicle_id", "must not contain control characters"))
            }
        }
        if let flushSeconds, !(flushSeconds >= 1 && flushSeconds <= 3600) {
            found.append(("flush_seconds", "must be 1…3600, got \(flushSeconds)"))
        }
        return found
    }
}
