import Foundation

/// The one configuration schema, for a data-set session (`source`) and a vehicle (`sources`) alike.
///
/// Files write keys in snake_case. Optional keys have the defaults named on each property; `effective…`
/// accessors apply them. `ConfigLoader` reads a file, applies environment and flag overrides, decodes and
/// validates.
package struct FleetConfig: Codable, Sendable, Equatable {
    package var project: ProjectSettings
    /// The machine this runs on; default: the host name.
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
        trigger: TriggerSettings? = nil
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
    }
}

package struct ProjectSettings: Codable, Sendable, Equatable {
    /// The project's name in the ledger; sessions of the same name share their history.
    package var name: String
}

package struct S3Settings: Codable, Sendable, Equatable {
    /// The bucket; must be absent when `keys.first_dir_is_bucket` is on.
    package var bucket: String?
    /// Prepended to every key through `{prefix}`; default empty.
    package var prefix: String?
    /// Default `us-east-1`. `cn-north-1` and `cn-northwest-1` are AWS China.
    package var region: String?
    /// An S3-compatible endpoint such as `http://127.0.0.1:8333`; default: `AWS_ENDPOINT_URL_S3`, else
    /// `AWS_ENDPOINT_URL`, else AWS's endpoint for the region.
    package var endpoint: String?
    /// Address buckets as `endpoint/bucket/key`; default: true for custom endpoints, false on AWS (where
    /// buckets whose names are not DNS-safe still use it).
    package var pathStyle: Bool?
    /// The profile of the shared AWS files to take credentials from; it then comes before the environment.
    package var profile: String?
}

package struct SourceSettings: Codable, Sendable, Equatable {
    /// The source's name, used by `{source}` in key templates; default: the directory's last component.
    package var name: String?
    /// The directory to scan.
    package var path: String
    /// Globs a file's relative path must match (any of them); default: every file.
    package var include: [String]?
    /// Globs that exclude a file even if it is included.
    package var exclude: [String]?

    package init(name: String? = nil, path: String, include: [String]? = nil, exclude: [String]? = nil) {
        self.name = name
        self.path = path
        self.include = include
        self.exclude = exclude
    }
}

package struct KeySettings: Codable, Sendable, Equatable {
    /// Where a file goes: `{prefix}/{relpath}` (default for one source) or `{device}/{date}/{source}/{relpath}`
    /// (default for several).
    package var template: String?
    /// The zone `{date}` is computed in: `UTC` (default), `local`, or an IANA name such as `Asia/Shanghai`.
    package var timezone: String?
    /// The first directory under the source names the bucket; the rest of the path is `{relpath}`.
    package var firstDirIsBucket: Bool?
}

package struct ScanSettings: Codable, Sendable, Equatable {
    /// Globs applied to every source in addition to its own.
    package var include: [String]?
    package var exclude: [String]?
    /// A file modified less than this many seconds ago is still being written and is left for later;
    /// default 0.
    package var minAgeSeconds: Int?
    /// Files last modified more than this many days ago are left out; a file exactly this old is still in.
    /// Default: no limit.
    package var maxAgeDays: Double?
    /// Follow symbolic links to files and directories; default false.
    package var followSymlinks: Bool?
}

package struct UploadSettings: Codable, Sendable, Equatable {
    /// Parallel uploads; default 15.
    package var workers: Int?
    /// Files at least this large go up in parts; default 64 MiB.
    package var multipartThresholdMb: Int?
    /// The size of each part; default 16 MiB.
    package var partSizeMb: Int?
    /// Parts of one large file sent at once; default 4.
    package var partConcurrency: Int?
    /// Attempts per file within a run for transient errors (seed 001); default 10.
    package var maxAttempts: Int?
    /// Exponential backoff with full jitter between attempts: the first wait is up to this long; default 1 s.
    package var backoffBaseSeconds: Double?
    /// …and no wait is longer than this; default 60 s.
    package var backoffCapSeconds: Double?
    /// When nothing has uploaded for this long and errors keep coming, the run stops trying: remaining files
    /// are recorded `failed` for `retry`; default 600 s.
    package var giveUpAfterSeconds: Double?
    /// Before uploading, list the bucket under the destination prefix and skip files already there with the
    /// same size (uploaded by another tool); default false.
    package var compareWithBucket: Bool?
    /// Delete each local file once the ledger records it uploaded with a verified checksum; default false.
    package var deleteAfterUpload: Bool?
    /// With `delete_after_upload`, also remove directories left empty; default false.
    package var removeEmptyDirectories: Bool?
}

package struct RetrySettings: Codable, Sendable, Equatable {
    /// Rounds `retry --auto` runs at most; default 5.
    package var rounds: Int?
    /// Exponential backoff with full jitter between rounds: the first wait is up to this long; default 30 s.
    package var roundBackoffBaseSeconds: Double?
    /// …and no wait is longer than this; default 900 s.
    package var roundBackoffCapSeconds: Double?
    /// A file that has been attempted this many times in all (every run and round together) is out of
    /// attempts: automatic rounds leave it failed; default 100.
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
    /// Seconds one request may take; default 30.
    package var timeoutSeconds: Double?
    /// Requests at most, for network errors and 5xx answers (a 4xx is final); default 5.
    package var maxAttempts: Int?
    /// Exponential backoff with full jitter between requests: up to this long at first; default 1 s.
    package var backoffBaseSeconds: Double?
    /// …and no wait is longer than this; default 30 s.
    package var backoffCapSeconds: Double?
    /// `always` (default) or `complete`: fire only for a session without failed files.
    package var onlyIf: String?
    /// Also send every uploaded key (streamed); default false.
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

// MARK: - Effective values

extension FleetConfig {
    /// The sources with their names filled in.
    package var effectiveSources: [SourceSettings] {
        let list = sources ?? source.map { [$0] } ?? []
        return list.map { source in
            var named = source
            if named.name == nil {
                let last = URL(fileURLWithPath: source.path).standardizedFileURL.lastPathComponent
                named.name = last.isEmpty || last == "/" ? "root" : last
            }
            return named
        }
    }

    package var effectiveDevice: String {
        device ?? ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "unknown"
    }

    package var effectiveKeyTemplate: String {
        keys?.template ?? (sources != nil ? "{device}/{date}/{source}/{relpath}" : "{prefix}/{relpath}")
    }

    package var effectiveRegion: String { s3.region ?? "us-east-1" }
    package var effectivePrefix: String { s3.prefix ?? "" }
    package var firstDirIsBucket: Bool { keys?.firstDirIsBucket ?? false }
    package var effectiveWorkers: Int { upload?.workers ?? 15 }
    package var multipartThresholdBytes: Int64 { Int64(upload?.multipartThresholdMb ?? 64) * 1024 * 1024 }
    package var partSizeBytes: Int64 { Int64(upload?.partSizeMb ?? 16) * 1024 * 1024 }
    package var partConcurrency: Int { upload?.partConcurrency ?? 4 }
    package var maxAttempts: Int { upload?.maxAttempts ?? 10 }
    package var backoff: Backoff {
        Backoff(baseSeconds: upload?.backoffBaseSeconds ?? 1, capSeconds: upload?.backoffCapSeconds ?? 60)
    }
    package var giveUpAfterSeconds: Double { upload?.giveUpAfterSeconds ?? 600 }
    package var compareWithBucket: Bool { upload?.compareWithBucket ?? false }
    package var deleteAfterUpload: Bool { upload?.deleteAfterUpload ?? false }
    package var removeEmptyDirectories: Bool { upload?.removeEmptyDirectories ?? false }
    package var minAgeSeconds: Int { scan?.minAgeSeconds ?? 0 }
    package var maxAgeDays: Double? { scan?.maxAgeDays }
    package var followSymlinks: Bool { scan?.followSymlinks ?? false }
    package var retryRounds: Int { retry?.rounds ?? 5 }
    package var retryRoundBackoff: Backoff {
        Backoff(baseSeconds: retry?.roundBackoffBaseSeconds ?? 30, capSeconds: retry?.roundBackoffCapSeconds ?? 900)
    }
    package var maxFileAttempts: Int { retry?.maxFileAttempts ?? 100 }

    /// The zone for `{date}`, resolved from `keys.timezone`.
    package var dateTimeZone: TimeZone {
        switch keys?.timezone {
        case nil, "UTC", "utc": TimeZone(identifier: "UTC")!
        case "local": TimeZone.current
        case let name?: TimeZone(identifier: name) ?? TimeZone(identifier: "UTC")!
        }
    }

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
