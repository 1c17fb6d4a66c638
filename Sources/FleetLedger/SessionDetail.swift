import FleetSystem
import Foundation

/// One session with what went wrong in it: `master status --session ID`.
package struct SessionDetail: Sendable {
    /// The session with its totals counted from the file rows.
    package var record: SessionRecord
    /// The database's clock when the session was read; the heartbeat's age is measured against it.
    package var readAt: Timestamp
    /// The session's failed files in the order they were recorded, at most as many as asked for.
    package var failedFiles: [FailedFile]
    /// Retry rounds in order.
    package var retryRounds: [RetryRound]
    /// Calls to the trigger endpoint, in the order they were made.
    package var triggerEvents: [TriggerEvent]
    /// The processes that worked on the session (its opener and those that joined it), in the order they came.
    package var processes: [Process]

    /// Failed files left out of `failedFiles` by the limit.
    package var failedFilesNotShown: Int { max(0, record.totals.failedFiles - failedFiles.count) }

    /// Marked running, but its heartbeat stopped (`SessionRow.isStale`): the process was killed or lost.
    package var stale: Bool { record.row.isStale(at: readAt) }

    /// A file that failed (`failed`) or cannot be uploaded at all (`permanent_failure`), with its last error.
    package struct FailedFile: Sendable, Equatable {
        package var localPath: String
        package var bucket: String
        package var key: String
        package var status: String
        package var errorClass: String?
        package var attempts: Int
        package var httpStatus: Int?
        package var errorMessage: String?
        package var finishedAt: Timestamp?
    }

    /// A process at work on the session (`session_workers`), with the files it uploaded.
    package struct Process: Sendable, Equatable {
        /// `hostname:pid`.
        package var worker: String
        package var role: String
        package var threads: Int
        package var joinedAt: Timestamp
        package var leftAt: Timestamp?
        package var heartbeatAgeSeconds: Double
        package var filesUploaded: Int64
    }
}

// MARK: - JSON

extension SessionDetail: Encodable {
    private enum CodingKeys: String, CodingKey {
        case failedFiles = "failed_files"
        case retryRounds = "retry_rounds"
        case triggerEvents = "trigger_events"
        case processes, stale
    }

    /// `SessionRecord`'s fields, unchanged, with `failed_files`, `retry_rounds`, `trigger_events`,
    /// `processes` and `stale` beside them in the same object.
    package func encode(to encoder: any Encoder) throws {
        try record.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(failedFiles, forKey: .failedFiles)
        try container.encode(retryRounds, forKey: .retryRounds)
        try container.encode(triggerEvents, forKey: .triggerEvents)
        try container.encode(processes, forKey: .processes)
        try container.encode(stale, forKey: .stale)
    }
}

extension SessionDetail.Process: Encodable {
    private enum CodingKeys: String, CodingKey {
        case worker, role, threads
        case joinedAt = "joined_at"
        case leftAt = "left_at"
        case heartbeatAgeSeconds = "heartbeat_age_seconds"
        case filesUploaded = "files_uploaded"
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(worker, forKey: .worker)
        try container.encode(role, forKey: .role)
        try container.encode(threads, forKey: .threads)
        try container.encode(joinedAt, forKey: .joinedAt)
        try container.encode(leftAt, forKey: .leftAt)
        try container.encode(heartbeatAgeSeconds, forKey: .heartbeatAgeSeconds)
        try container.encode(filesUploaded, forKey: .filesUploaded)
    }
}

extension SessionDetail.FailedFile: Encodable {
    private enum CodingKeys: String, CodingKey {
        case localPath = "local_path"
        case bucket
        case key = "s3_key"
        case status
        case errorClass = "error_class"
        case attempts
        case httpStatus = "http_status"
        case errorMessage = "error_message"
        case finishedAt = "finished_at"
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(localPath, forKey: .localPath)
        try container.encode(bucket, forKey: .bucket)
        try container.encode(key, forKey: .key)
        try container.encode(status, forKey: .status)
        try container.encode(errorClass, forKey: .errorClass)
        try container.encode(attempts, forKey: .attempts)
        try container.encode(httpStatus, forKey: .httpStatus)
        try container.encode(errorMessage, forKey: .errorMessage)
        try container.encode(finishedAt, forKey: .finishedAt)
    }
}
