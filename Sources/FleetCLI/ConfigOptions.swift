import ArgumentParser
import FleetCore
import Foundation

/// `--config FILE` and the flags that override single keys of it.
///
/// Precedence, highest first: these flags, `FLEET_*` environment variables (`FLEET_UPLOAD_WORKERS` for
/// `upload.workers`, see `ConfigLoader`), the file, the defaults.
package struct ConfigOptions: ParsableArguments {
    @Option(
        name: .shortAndLong,
        help: ArgumentHelp("Session or agent configuration (.json, .yaml, .yml).", valueName: "file")
    )
    package var config: String?

    @Option(help: ArgumentHelp("Override project.name.", valueName: "name"))
    package var project: String?

    @Option(help: ArgumentHelp("Override device.", valueName: "name"))
    package var device: String?

    @Option(help: ArgumentHelp("Override s3.bucket.", valueName: "name"))
    package var bucket: String?

    @Option(help: ArgumentHelp("Override s3.prefix.", valueName: "prefix"))
    package var prefix: String?

    @Option(help: ArgumentHelp("Override s3.region.", valueName: "region"))
    package var region: String?

    @Option(help: ArgumentHelp("Override s3.endpoint (an S3-compatible server).", valueName: "url"))
    package var endpoint: String?

    @Option(help: ArgumentHelp("Override s3.profile (the shared AWS files' profile).", valueName: "name"))
    package var profile: String?

    @Option(
        help: ArgumentHelp(
            "Override source.path (a configuration with one source); relative to the current directory.",
            valueName: "dir"
        )
    )
    package var source: String?

    /// Taken as it is, even when it starts with `-`, so `--workers -1` is refused by the range check that names
    /// the key rather than reported as a missing value.
    @Option(parsing: .unconditional, help: ArgumentHelp("Override upload.workers (auto or 1…1024).", valueName: "n"))
    package var workers: String?

    @Option(
        help: ArgumentHelp(
            "Override upload.max_bandwidth: bytes per second for all uploads together (8M), or a timetable ('08:00,2M 19:00,off').",
            valueName: "rate"
        )
    )
    package var maxBandwidth: String?

    package init() {}

    /// The flags given, as overrides of their keys.
    package var flagOverrides: [ConfigOverride] {
        let flags: [(String, String, String?)] = [
            ("project.name", "--project", project), ("device", "--device", device), ("s3.bucket", "--bucket", bucket),
            ("s3.prefix", "--prefix", prefix), ("s3.region", "--region", region),
            ("s3.endpoint", "--endpoint", endpoint), ("s3.profile", "--profile", profile),
            ("source.path", "--source", source.map(Self.absolute)),
            ("upload.workers", "--workers", workers), ("upload.max_bandwidth", "--max-bandwidth", maxBandwidth),
        ]
        return flags.compactMap { key, flag, value in
            value.map { ConfigOverride(keyPath: key, value: $0, origin: flag) }
        }
    }

    /// A directory named on the command line is relative to where the command runs, not to the configuration file.
    private static func absolute(_ path: String) -> String {
        guard !path.isEmpty, !path.hasPrefix("/") else { return path }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(path)
            .standardizedFileURL.path
    }

    /// `--config`, which every command but `upload --join` needs.
    ///
    /// - Throws: `ValidationError` when it is missing.
    package func requiredPath() throws -> String {
        guard let config else { throw ValidationError("Missing expected argument '--config <file>'") }
        return config
    }

    /// Reads and validates the configuration with every override applied.
    ///
    /// - Throws: `ValidationError` without `--config`; `ConfigError`.
    package func load(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> FleetConfig {
        try ConfigLoader.load(
            path: try requiredPath(),
            overrides: ConfigLoader.environmentOverrides(environment) + flagOverrides
        )
    }
}
