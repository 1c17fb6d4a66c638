import FleetAWS
import FleetSystem
import Foundation

/// One value that replaces what the file says: from an environment variable or a command-line flag.
package struct ConfigOverride: Sendable, Equatable {
    /// The dotted key, `upload.workers`.
    package var keyPath: String
    package var value: String
    /// `FLEET_UPLOAD_WORKERS` or `--workers`, for messages.
    package var origin: String

    package init(keyPath: String, value: String, origin: String) {
        self.keyPath = keyPath
        self.value = value
        self.origin = origin
    }
}

/// Reads a configuration file, applies overrides, decodes and validates.
///
/// Precedence, highest first: command-line flags, then `FLEET_*` environment variables, then the file, then
/// the defaults documented on `FleetConfig`. The environment variable for a key is `FLEET_` followed by the
/// key path in capitals with `_` for `.`: `upload.workers` ← `FLEET_UPLOAD_WORKERS`.
package enum ConfigLoader {
    /// The keys that can be overridden from the environment (and their variables).
    package static let overridableKeys = [
        "project.name", "device", "s3.bucket", "s3.prefix", "s3.region", "s3.endpoint", "s3.path_style", "s3.profile",
        "s3.shared_prefix", "s3.credentials_path",
        "keys.template",
        "keys.timezone", "scan.min_age_seconds", "scan.max_age_days", "scan.follow_symlinks", "upload.workers",
        "upload.multipart_threshold_mb", "upload.part_size_mb", "upload.part_concurrency", "upload.max_attempts",
        "upload.backoff_base_seconds", "upload.backoff_cap_seconds", "upload.give_up_after_seconds",
        "upload.compare_with_bucket", "upload.delete_after_upload", "upload.remove_empty_directories",
        "upload.abandoned_multipart_hours", "upload.stop_timeout_seconds", "upload.max_bandwidth",
    ]

    /// `FLEET_UPLOAD_WORKERS` for `upload.workers`.
    package static func environmentVariable(for keyPath: String) -> String {
        "FLEET_" + keyPath.uppercased().replacingOccurrences(of: ".", with: "_")
    }

    /// The overrides present in `environment`.
    package static func environmentOverrides(_ environment: [String: String]) -> [ConfigOverride] {
        overridableKeys.compactMap { key in
            let variable = environmentVariable(for: key)
            return environment[variable].map { ConfigOverride(keyPath: key, value: $0, origin: variable) }
        }
    }

    /// Loads `path` (`.json`, `.yaml` or `.yml`), applies `overrides` in order (later wins), decodes, validates.
    ///
    /// - Throws: `ConfigError` naming the file, the key and the reason (the first problem found).
    package static func load(path: String, overrides: [ConfigOverride] = []) throws(ConfigError) -> FleetConfig {
        let data = try read(path, what: "the configuration")
        let lowercased = path.lowercased()
        do throws(ConfigError) {
            var config: FleetConfig
            if lowercased.hasSuffix(".json") {
                config = try decode(try ConfigValue.parseJSON(data), overrides: overrides)
            } else if lowercased.hasSuffix(".yaml") || lowercased.hasSuffix(".yml") {
                guard let text = String(data: data, encoding: .utf8) else {
                    throw ConfigError(keyPath: nil, "the file is not UTF-8 text")
                }
                config = try decode(try ConfigValue.parseYAML(text), overrides: overrides)
            } else {
                throw ConfigError(keyPath: nil, "unknown file type: name it .json, .yaml or .yml")
            }
            config.resolveSourcePaths(relativeTo: URL(fileURLWithPath: path).deletingLastPathComponent())
            // Relative source paths can be compared only now that they are taken relative to the file.
            if config.sources != nil, let overlap = FleetConfig.overlappingSourceProblems(config.resolved.sources).first
            {
                throw overlap
            }
            return config
        } catch {
            var located = error
            located.file = path
            throw located
        }
    }

    /// The bytes of the file at `path`.
    ///
    /// - Parameter what: What the file is, for the message: `cannot read the configuration: no such file`.
    /// - Throws: `ConfigError` naming the file and why it cannot be read (missing, not a regular file, empty,
    ///   permission denied).
    package static func read(_ path: String, what: String) throws(ConfigError) -> Data {
        if let problem = fileProblem(path) {
            throw ConfigError(file: path, keyPath: nil, "cannot read \(what): \(problem)")
        }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            let reason =
                !FileManager.default.fileExists(atPath: path)
                ? "no such file"
                : !FileManager.default.isReadableFile(atPath: path) ? "permission denied" : error.localizedDescription
            throw ConfigError(file: path, keyPath: nil, "cannot read \(what): \(reason)")
        }
    }

    /// Why `path` cannot be a configuration file, before anything reads it: it is a directory, not a regular
    /// file (`/dev/null`, a pipe) or empty. `nil` when it is a non-empty regular file, or when it cannot be
    /// looked at (reading it then says why).
    static func fileProblem(_ path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return info.st_size == 0 ? "the file is empty" : nil
        case S_IFDIR: return "is a directory, not a file"
        case S_IFCHR, S_IFBLK: return "is a device, not a regular file"
        case S_IFIFO: return "is a pipe, not a regular file"
        case S_IFSOCK: return "is a socket, not a regular file"
        default: return "not a regular file"
        }
    }

    /// Applies overrides to a parsed document, decodes and validates it.
    ///
    /// - Throws: `ConfigError` naming the key (and the flag or variable) for an empty override or any value
    ///   that cannot be used.
    package static func decode(
        _ document: ConfigValue,
        overrides: [ConfigOverride] = []
    ) throws(ConfigError)
        -> FleetConfig
    {
        var document = document
        if case .object = document {
        } else if !document.isNull {
            throw ConfigError(keyPath: "", "expected an object of settings, got \(document.summary)")
        } else {
            document = .object([])
        }
        var origins: [String: String] = [:]
        for item in overrides {
            // An empty flag or variable must not quietly drop the file's value (an empty endpoint would send
            // everything to AWS instead): it is refused, as any other unusable value is.
            guard !item.value.trimmingCharacters(in: .whitespaces).isEmpty else {
                let leave = item.origin.hasPrefix("-") ? "leave the flag out" : "unset the variable"
                throw ConfigError(
                    keyPath: item.keyPath,
                    origin: item.origin,
                    "is empty; \(leave) to keep the file's value"
                )
            }
            if item.keyPath == "source.path", case .object(let pairs) = document,
                pairs.contains(where: { $0.key == "sources" })
            {
                throw ConfigError(
                    keyPath: item.keyPath,
                    origin: item.origin,
                    "applies to a configuration with one source, not to one that lists sources"
                )
            }
            document.set(.plain(item.value), at: item.keyPath.split(separator: ".").map(String.init)[...])
            origins[item.keyPath] = item.origin
        }
        func attributed(_ error: ConfigError) -> ConfigError {
            var error = error
            if let keyPath = error.keyPath { error.origin = origins[keyPath] }
            return error
        }
        let config: FleetConfig
        do {
            config = try ConfigDecoder().decode(FleetConfig.self, from: document)
        } catch let error as ConfigError {
            throw attributed(error)
        } catch {
            throw ConfigError(keyPath: nil, "\(error)")
        }
        if let first = config.problems().first { throw attributed(first) }
        return config
    }
}

extension FleetConfig {
    /// Relative source paths (and `s3.ca_bundle`, `s3.credentials_path`) are taken relative to the configuration file, so a job
    /// started from any directory (cron, systemd) scans the same place and trusts the same CAs.
    mutating func resolveSourcePaths(relativeTo directory: URL) {
        func resolved(_ path: String) -> String {
            path.hasPrefix("/") ? path : directory.appendingPathComponent(path).standardizedFileURL.path
        }
        if let path = source?.path { source?.path = resolved(path) }
        if let path = s3.caBundle { s3.caBundle = resolved(path) }
        if let path = s3.credentialsPath { s3.credentialsPath = resolved(path) }
        sources = sources?.map { item in
            var item = item
            item.path = resolved(item.path)
            return item
        }
    }
}
