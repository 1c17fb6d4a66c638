import FleetSystem
import Foundation

/// The bash S3 daemon's settings as an agent configuration.
///
/// The old file is what started the daemon: an environment file (`S3_ROOT_DIR=…`, `export …`), a systemd unit
/// (`Environment=…`, `ExecStart=…`) or a script with its command line (`s3_upload_daemon.sh -i 30 -d DIR`).
/// Flags win over variables, later lines over earlier ones. Kept as the daemon did it: the first directory
/// under the root names the bucket and the rest of the path is the key, files of any age, a file goes up once
/// it has stopped changing and is deleted once uploaded, the root is looked at every interval, and the region
/// defaults to `eu-west-1`.
struct BashDaemonConfigImport {
    var reader: OldConfigReader
    let options: ConfigImport.Options
    var result: ImportedConfig

    /// A setting as last given, and where.
    private struct Setting {
        var value: String
        var origin: String
    }

    private var settings: [String: Setting] = [:]

    /// The flags and the variables they stand for.
    private static let flags: [String: String] = [
        "-i": "S3_UPLOAD_INTERVAL", "--interval": "S3_UPLOAD_INTERVAL", "-d": "S3_ROOT_DIR",
        "--directory": "S3_ROOT_DIR", "-r": "AWS_REGION", "--region": "AWS_REGION", "-p": "AWS_PROFILE",
        "--profile": "AWS_PROFILE", "-s": "FILE_STABILITY_SECONDS", "--stability": "FILE_STABILITY_SECONDS",
    ]

    private static let variables: Set = [
        "S3_UPLOAD_INTERVAL", "S3_ROOT_DIR", "AWS_REGION", "AWS_PROFILE", "FILE_STABILITY_SECONDS",
    ]

    init(file: String, options: ConfigImport.Options) {
        reader = OldConfigReader(file: file, environment: options.environment)
        self.options = options
        result = ImportedConfig(format: .yaml, source: "the bash S3 daemon's \(file)")
    }

    mutating func run(_ text: String) throws(ConfigError) -> ImportedConfig {
        var understood = false
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            understood = try read(line: String(line), number: index + 1) || understood
        }
        guard understood else {
            throw ConfigError(
                file: reader.file,
                keyPath: nil,
                "no setting of the bash daemon found: expected S3_ROOT_DIR=…, S3_UPLOAD_INTERVAL=…, or its command "
                    + "line with -i, -d, -r, -p, -s"
            )
        }
        try write()
        result.notices = reader.expansionNotices + result.notices
        return result
    }

    /// Takes one line's assignments and daemon flags; true when it held any.
    private mutating func read(line: String, number: Int) throws(ConfigError) -> Bool {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, !trimmed.hasPrefix("#"), !trimmed.hasPrefix("[") else { return false }
        var words = try Self.words(trimmed, line: number, reader: reader)[...]
        if words.first == "export" { words = words.dropFirst() }
        var found = false
        // Leading assignments: NAME=value (and systemd's Environment=NAME=value, ExecStart=command).
        while let word = words.first, let (name, value) = Self.assignment(word) {
            words = words.dropFirst()
            if name == "ExecStart" || name == "ExecStartPre" {
                words = [value][...] + words
                break
            }
            if name == "Environment", let (inner, innerValue) = Self.assignment(value) {
                found = take(inner, innerValue, line: number) || found
            } else {
                found = take(name, value, line: number) || found
            }
        }
        guard let start = words.firstIndex(where: { Self.isDaemon($0) }) else {
            if !words.isEmpty, !found {
                result.notices.append("line \(number) ignored: neither a setting nor the daemon's command line")
            }
            return found
        }
        var rest = words[words.index(after: start)...]
        while let word = rest.first {
            rest = rest.dropFirst()
            if ["&", "&&", ";", "|", "||"].contains(word) || word.hasPrefix(">") || word.hasPrefix("<")
                || word.hasPrefix("2>") || word.hasPrefix("1>") || word.hasPrefix("&>")
            {
                break
            }
            if word == "-h" || word == "--help" {
                result.leave("line \(number): \(word)", "prints the old daemon's help; nothing to carry over")
                continue
            }
            var flag = word
            var value: String?
            if word.hasPrefix("--"), let equals = word.firstIndex(of: "=") {
                flag = String(word[..<equals])
                value = String(word[word.index(after: equals)...])
            }
            guard let variable = Self.flags[flag] else {
                throw reader.error("line \(number): \(word)", "not an option of the bash daemon (-i, -d, -r, -p, -s)")
            }
            if value == nil {
                guard let next = rest.first, !next.hasPrefix("-") else {
                    throw reader.error("line \(number): \(flag)", "needs a value")
                }
                value = next
                rest = rest.dropFirst()
            }
            settings[variable] = Setting(value: value!, origin: "\(flag) on line \(number)")
        }
        return true
    }

    /// Records a variable; true when it is one of the daemon's.
    private mutating func take(_ name: String, _ value: String, line: Int) -> Bool {
        if Self.variables.contains(name) {
            // A flag given on an earlier line still wins, as it did when the daemon parsed its arguments.
            if let earlier = settings[name], earlier.origin.hasPrefix("-") { return true }
            settings[name] = Setting(value: value, origin: "\(name) on line \(line)")
            return true
        }
        if name.hasPrefix("AWS_") {
            result.leave(
                "line \(line): \(name)",
                "credentials are not part of the configuration: fleet-upload reads the AWS_* variables from its "
                    + "own environment (agent.env)"
            )
        } else {
            result.leave("line \(line): \(name)", "not a variable of the bash daemon")
        }
        return false
    }

    private mutating func write() throws(ConfigError) {
        if let project = options.project {
            result.set("project.name", .text(project), from: "--project")
        } else {
            result.set("project.name", .text("s3-upload-daemon"), from: "the old daemon had no project (--project)")
        }
        if let region = settings["AWS_REGION"] {
            result.set("s3.region", .text(region.value), from: region.origin)
        } else {
            result.set("s3.region", .text("eu-west-1"), from: "not given: the old daemon's default")
        }
        if let profile = settings["AWS_PROFILE"] {
            result.set("s3.profile", .text(profile.value), from: profile.origin)
        }

        let root = settings["S3_ROOT_DIR"] ?? Setting(value: "output/s3", origin: "not given: the old daemon's default")
        let expanded = try reader.expandedPath(root.value, at: root.origin)
        let path = ConfigImport.absolute(expanded, from: options.currentDirectory)
        if path != expanded {
            result.notices.append("the root '\(root.value)' is taken relative to \(options.currentDirectory)")
        }
        result.set("source.path", .text(path), from: root.origin)
        result.set(
            "keys.first_dir_is_bucket",
            .bool(true),
            from: "the old daemon: the first directory under the root names the bucket, the rest is the key"
        )
        result.set(
            "scan.max_age_days",
            .number(ConfigImport.noAgeLimitDays),
            from: "the old daemon took files of any age"
        )

        let stability = settings["FILE_STABILITY_SECONDS"]
        let seconds = try number(stability, default: 2, name: "FILE_STABILITY_SECONDS")
        guard seconds >= 0, seconds <= 86_400 else {
            throw reader.error(stability!.origin, "must be 0…86400 seconds, got \(seconds.compact)")
        }
        result.set(
            "agent.stability_seconds",
            .number(seconds),
            from: stability?.origin ?? "not given: the old daemon's default"
        )
        let interval = settings["S3_UPLOAD_INTERVAL"]
        let every = try number(interval, default: 60, name: "S3_UPLOAD_INTERVAL")
        guard every > 0 else {
            throw reader.error(interval!.origin, "must be more than 0 seconds, got \(every.compact)")
        }
        let minutes = min(max(every / 60, 0.1), 1440)
        if minutes * 60 != every {
            result.notices.append(
                "the scan interval of \(every.compact) s becomes \((minutes * 60).compact) s (6 s…1 day)"
            )
        }
        result.set(
            "agent.rescan_minutes",
            .number((minutes * 1000).rounded() / 1000),
            from: (interval?.origin ?? "not given: the old daemon's default") + ", a scan every \(every.compact) s"
        )
        result.set(
            "deletion.after_upload.keep_days",
            .number(0),
            from: "the old daemon deleted each file once it was uploaded"
        )
    }

    private func number(_ setting: Setting?, default fallback: Double, name: String) throws(ConfigError) -> Double {
        guard let setting else { return fallback }
        guard let value = Double(setting.value), value.isFinite else {
            throw reader.error(setting.origin, "expected a number of seconds, got '\(setting.value)'")
        }
        return value
    }

    // MARK: - Shell words

    /// `NAME=value` split, when `word` is an assignment.
    private static func assignment(_ word: String) -> (String, String)? {
        guard let equals = word.firstIndex(of: "="), equals != word.startIndex else { return nil }
        let name = word[..<equals]
        guard let first = name.first, first.isLetter || first == "_",
            name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") })
        else { return nil }
        return (String(name), String(word[word.index(after: equals)...]))
    }

    /// Whether `word` runs the daemon (`./scripts/s3_upload_daemon.sh`, `s3_upload_daemon`).
    private static func isDaemon(_ word: String) -> Bool {
        (word.split(separator: "/").last ?? "").hasPrefix("s3_upload_daemon")
    }

    /// The words of a shell line: quotes removed (`'…'` as written, `"…"` with `\` escapes), a word starting
    /// with `#` ends the line.
    private static func words(
        _ line: String,
        line number: Int,
        reader: OldConfigReader
    ) throws(ConfigError)
        -> [String]
    {
        var words: [String] = []
        var current = ""
        var inWord = false
        var characters = line[...]
        while let character = characters.first {
            characters = characters.dropFirst()
            switch character {
            case " ", "\t":
                if inWord { words.append(current) }
                current = ""
                inWord = false
            case "#" where !inWord:
                return words
            case "'":
                guard let close = characters.firstIndex(of: "'") else {
                    throw reader.error("line \(number)", "unclosed single quote")
                }
                current += characters[..<close]
                characters = characters[characters.index(after: close)...]
                inWord = true
            case "\"":
                var closed = false
                while let next = characters.first {
                    characters = characters.dropFirst()
                    if next == "\"" {
                        closed = true
                        break
                    }
                    if next == "\\", let escaped = characters.first, "\"\\$`".contains(escaped) {
                        current.append(escaped)
                        characters = characters.dropFirst()
                    } else {
                        current.append(next)
                    }
                }
                guard closed else { throw reader.error("line \(number)", "unclosed double quote") }
                inWord = true
            case "\\":
                if let escaped = characters.first {
                    current.append(escaped)
                    characters = characters.dropFirst()
                }
                inWord = true
            default:
                current.append(character)
                inWord = true
            }
        }
        if inWord { words.append(current) }
        return words
    }
}
