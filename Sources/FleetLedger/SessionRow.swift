import FleetSystem
import Foundation

/// One row of `sync_sessions` with its project's and device's names: the session as it was opened and where it
/// stands. The views of a session contain it: `SessionRecord` (with totals counted from the file rows) and
/// `FleetStatus.Session` (with the totals it closed with).
package struct SessionRow: Sendable, Equatable {
    package var id: Int64
    package var project: String
    package var projectID: Int64
    package var device: String?
    package var deviceID: Int64?
    package var configID: Int64?
    package var kind: String
    package var status: SessionStatus
    package var hostname: String
    package var pid: Int
    package var localDirectory: String
    package var bucket: String?
    package var prefix: String
    package var startedAt: Timestamp
    package var heartbeatAt: Timestamp
    package var finishedAt: Timestamp?
    package var errorMessage: String?

    /// A running session's process renews its heartbeat every few seconds; one silent this long (seconds) was
    /// killed or lost its host, and `master status` shows the session as stale rather than running.
    package static let staleAfterSeconds: Double = 60

    /// Whether the session is still marked running although its heartbeat stopped more than
    /// `staleAfterSeconds` before `now` (the database's clock).
    package func isStale(at now: Timestamp) -> Bool {
        status == .running && heartbeatAge(at: now) > Self.staleAfterSeconds
    }

    /// Seconds from the last heartbeat to `now`.
    package func heartbeatAge(at now: Timestamp) -> Double {
        Double(now.microseconds - heartbeatAt.microseconds) / 1_000_000
    }

    /// Seconds from start to finish (to the last heartbeat while running).
    package var durationSeconds: Double {
        Double((finishedAt ?? heartbeatAt).microseconds - startedAt.microseconds) / 1_000_000
    }
}

// MARK: - JSON

extension SessionRow: Encodable {
    /// The keys of every object that describes a session.
    private enum CodingKeys: String, CodingKey {
        case id = "session_id"
        case project, device, kind, status, hostname, pid
        case localDirectory = "local_directory"
        case bucket
        case prefix = "s3_prefix"
        case startedAt = "started_at"
        case heartbeatAt = "heartbeat_at"
        case finishedAt = "finished_at"
        case durationSeconds = "duration_seconds"
        case errorMessage = "error_message"
    }

    /// What `master status` lists for each session: `session_id`, `project`, `device`, `kind`, `status`, the
    /// three times and `duration_seconds`.
    func encodeSummary(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(project, forKey: .project)
        try container.encode(device, forKey: .device)
        try container.encode(kind, forKey: .kind)
        try container.encode(status, forKey: .status)
        try container.encode(startedAt, forKey: .startedAt)
        try container.encode(heartbeatAt, forKey: .heartbeatAt)
        try container.encode(finishedAt, forKey: .finishedAt)
        try container.encode(thousandths(durationSeconds), forKey: .durationSeconds)
    }

    /// The summary with `hostname`, `pid`, `local_directory`, `bucket`, `s3_prefix` and `error_message`. Snake-case
    /// keys; times in RFC 3339 UTC; absent values as `null`.
    package func encode(to encoder: any Encoder) throws {
        try encodeSummary(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(hostname, forKey: .hostname)
        try container.encode(pid, forKey: .pid)
        try container.encode(localDirectory, forKey: .localDirectory)
        try container.encode(bucket, forKey: .bucket)
        try container.encode(prefix, forKey: .prefix)
        try container.encode(errorMessage, forKey: .errorMessage)
    }
}
