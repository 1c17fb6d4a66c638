import FleetLedger

/// What `upload` would do with a configuration, as `upload --dry-run` prints it.
package struct UploadPlan: Sendable, Codable, Equatable {
    package struct Source: Sendable, Codable, Equatable {
        package var name: String
        package var path: String
    }

    package struct Sample: Sendable, Codable, Equatable {
        package var localPath: String
        package var bucket: String
        package var key: String
    }

    package struct Unplaceable: Sendable, Codable, Equatable {
        package var localPath: String
        package var reason: String
    }

    package var project: String
    package var device: String
    package var configHash: String
    package var ledger: String
    package var schemaVersion: Int
    /// The bucket, or `nil` when the first directory names it.
    package var bucket: String?
    package var prefix: String
    package var region: String
    package var endpoint: String?
    package var keyTemplate: String
    package var sources: [Source]

    package var scan = ScanCounts()
    /// Problems `find` reported (unreadable directories and the like), the first few.
    package var scanProblems: [String] = []
    /// Files for which no key could be made (not valid as a bucket directory, key too long), the first few.
    package var unplaceable: [Unplaceable] = []
    package var unplaceableCount = 0
    /// Keys that more than one local file maps to.
    package var duplicateKeys = 0
    /// Files whose key another project stores: `upload` refuses them (`key_owned_by_other_project`) unless both
    /// projects set `s3.shared_prefix`.
    package var otherProjectFiles = 0
    /// The first few of those keys, with the project each belongs to.
    package var otherProjectKeys: [OtherProjectKey] = []

    /// Files the ledger records as uploaded with the same project, bucket, key, size and mtime.
    package var alreadyUploadedFiles = 0
    package var alreadyUploadedBytes: Int64 = 0
    package var toUploadFiles = 0
    package var toUploadBytes: Int64 = 0
    /// Of those to upload, how many are at or above the multipart threshold.
    package var toUploadMultipart = 0
    package var multipartThresholdBytes: Int64 = 0
    /// `upload.workers`: the files the run keeps in flight, `auto` or a fixed number.
    package var workers: WorkerCount = .auto
    /// With `auto`: the files in flight at the start, and the range it adjusts them in.
    package var autoWorkers: AutoWorkers?

    /// Where `upload.workers: auto` starts and the range it keeps to.
    package struct AutoWorkers: Sendable, Codable, Equatable {
        package var initial: Int
        package var minimum: Int
        package var maximum: Int

        package init(initial: Int, minimum: Int, maximum: Int) {
            self.initial = initial
            self.minimum = minimum
            self.maximum = maximum
        }
    }

    package var samples: [Sample] = []
    package var scanSeconds = 0.0
    package var totalSeconds = 0.0
}
