import FleetSystem
import Foundation

/// The Data Uploader's JSON configuration as a session configuration (`upload --config`).
///
/// Kept as the tool did it: keys `s3_prefix/path below local_directory`, only the file types its scanner took
/// (`.wav .jpg .jpeg .mp4 .mov .avi`, any case), files already in the bucket skipped, its region and profile
/// defaults (`eu-west-1`, `default`) and its attempts per file. The project is the old `project_name`, else `--project`, else the
/// bucket's name, so that `master import-state --from-database` (which keeps the old database's project names)
/// lands on the same project.
struct DataUploaderConfigImport {
    var reader: OldConfigReader
    let options: ConfigImport.Options
    var result: ImportedConfig

    /// The extensions the old scanner took (compared without regard to case).
    static let extensions = ["wav", "jpg", "jpeg", "mp4", "mov", "avi"]

    init(file: String, options: ConfigImport.Options) {
        reader = OldConfigReader(file: file, environment: options.environment)
        self.options = options
        result = ImportedConfig(format: .json, source: "the Data Uploader's \(file)")
    }

    mutating func run(_ document: ConfigValue) throws(ConfigError) -> ImportedConfig {
        guard let fields = try reader.object(document, at: "") else {
            throw reader.error("", "the file holds no settings")
        }
        guard let directory = try reader.text(document["local_directory"], at: "local_directory"), !directory.isEmpty
        else { throw reader.error("local_directory", "is required") }
        guard let bucket = try reader.text(document["bucket_name"], at: "bucket_name"), !bucket.isEmpty else {
            throw reader.error("bucket_name", "is required")
        }

        if let name = try reader.text(document["project_name"], at: "project_name"), !name.isEmpty {
            result.set("project.name", .text(name), from: "project_name")
        } else if let name = options.project {
            result.set("project.name", .text(name), from: "--project")
        } else {
            result.set("project.name", .text(bucket), from: "bucket_name: the old file names no project")
        }
        result.set("s3.bucket", .text(bucket), from: "bucket_name")
        if let prefix = try reader.text(document["s3_prefix"], at: "s3_prefix") {
            result.set("s3.prefix", .text(prefix), from: "s3_prefix")
        }
        if let region = try reader.text(document["aws_region"], at: "aws_region") {
            result.set("s3.region", .text(region), from: "aws_region")
        } else {
            result.set("s3.region", .text("eu-west-1"), from: "not in the old file: the old tool's default")
        }
        if let profile = try reader.text(document["aws_profile"], at: "aws_profile") {
            result.set("s3.profile", .text(profile), from: "aws_profile")
        } else {
            // The old tool always named a profile, so its credentials came from the shared files, not AWS_PROFILE.
            result.set("s3.profile", .text("default"), from: "not in the old file: the old tool's default")
        }

        let expanded = try reader.expandedPath(directory, at: "local_directory")
        let path = ConfigImport.absolute(expanded, from: options.currentDirectory)
        if path != expanded {
            result.notices.append("local_directory '\(directory)' is taken relative to \(options.currentDirectory)")
        }
        result.set("source.path", .text(path), from: "local_directory")
        let patterns = Self.extensions.map { extension_ in
            ImportedConfig.Value.text(
                "*." + extension_.map { $0.isLetter ? "[\($0)\(String($0).uppercased())]" : String($0) }.joined()
            )
        }
        result.set(
            "source.include",
            .list(patterns),
            from: "the old scanner took only " + Self.extensions.map { "." + $0 }.joined(separator: " ")
                + ", in any case"
        )
        result.set(
            "keys.template",
            .text("{prefix}/{relpath}"),
            from: "the old keys: s3_prefix/path below local_directory"
        )

        if let workers = try reader.number(document["max_workers"], at: "max_workers") {
            guard workers >= 1, workers.rounded() == workers else {
                throw reader.error("max_workers", "must be a whole number of at least 1, got \(workers.compact)")
            }
            result.set("upload.workers", .number(min(workers, 256)), from: "max_workers")
            if workers > 256 { result.notices.append("max_workers \(workers.compact) is capped at 256") }
        }
        let retries = try reader.number(document["times_to_retry"], at: "times_to_retry")
        if let retries, retries < 0 || retries.rounded() != retries {
            throw reader.error("times_to_retry", "must be a whole number of at least 0, got \(retries.compact)")
        }
        let attempts = (retries ?? 3) + 1
        result.set(
            "upload.max_attempts",
            .number(min(attempts, 100)),
            from: retries == nil
                ? "not in the old file: the old tool's 3 retries, so 4 attempts" : "times_to_retry + the first attempt"
        )
        result.set(
            "upload.compare_with_bucket",
            .bool(true),
            from: "the old tool listed the bucket and skipped files already there"
        )
        if let url = try reader.text(document["endpoint_url"], at: "endpoint_url"), !url.isEmpty {
            result.set("trigger.url", .text(url), from: "endpoint_url")
        }

        let handled: Set = [
            "local_directory", "bucket_name", "project_name", "s3_prefix", "aws_region", "aws_profile", "max_workers",
            "times_to_retry", "endpoint_url",
        ]
        for (key, _) in fields where !handled.contains(key) {
            switch key {
            case "use_find":
                result.leave(key, "fleet-upload always scans with find, streaming")
            case "db_host", "db_port", "db_name", "db_user", "db_password":
                result.leave(key, "the ledger's database is --database URL or DATABASE_URL, never in the file")
            default:
                result.leave(key, "not a setting of the Data Uploader this import knows")
            }
        }
        if let hint = Self.databaseHint(document: document, environment: options.environment) {
            result.notices.append(hint)
        }
        result.notices = reader.expansionNotices + result.notices
        return result
    }

    /// The `DATABASE_URL` the old `DB_*` variables (or `db_*` keys) describe, without the password.
    static func databaseHint(document: ConfigValue, environment: [String: String]) -> String? {
        func value(_ name: String) -> String? {
            if let text = environment["DB_" + name.uppercased()], !text.isEmpty { return text }
            switch document["db_" + name] {
            case .string(let text)?, .plain(let text)?: return text.isEmpty ? nil : text
            case .integer(let number)?: return String(number)
            default: return nil
            }
        }
        guard let host = value("host") else { return nil }
        let user = value("user").map { $0 + "@" } ?? ""
        let port = value("port").map { ":" + $0 } ?? ""
        let name = value("name") ?? "data_uploader"
        return "the old database is postgresql://\(user)\(host)\(port)/\(name) (DB_* variables); the ledger is a "
            + "database of its own: give it as --database URL or DATABASE_URL, the password in PGPASSWORD or "
            + "~/.pgpass"
    }
}
