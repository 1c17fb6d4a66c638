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

    /// Seconds from start to finish (to the last heartbeat while running).
    package var durationSeconds: Double {
        Double((finishedAt ?? heartbeatAt).microseconds - startedAt.microseconds) / 1_000_000
    }
}

/// One session with its totals counted from the file rows now: what `retry`, `trigger`, `master once` and
/// `master status --session` report. The row's fields read through it (`record.status`).
@dynamicMemberLookup
package struct SessionRecord: Sendable {
    package var row: SessionRow
    /// Counted from the file rows now (not the copy `closeSession` left on the session row).
    package var totals: SessionTotals

    package subscript<Value>(dynamicMember keyPath: KeyPath<SessionRow, Value>) -> Value { row[keyPath: keyPath] }

    package subscript<Value>(dynamicMember keyPath: WritableKeyPath<SessionRow, Value>) -> Value {
        get { row[keyPath: keyPath] }
        set { row[keyPath: keyPath] = newValue }
    }
}

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
        try container.encode(status.rawValue, forKey: .status)
        try container.encode(startedAt.rfc3339, forKey: .startedAt)
        try container.encode(heartbeatAt.rfc3339, forKey: .heartbeatAt)
        try container.encode(finishedAt?.rfc3339, forKey: .finishedAt)
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

extension SessionRecord: Encodable {
    private enum CodingKeys: String, CodingKey {
        case totalFiles = "total_files"
        case totalBytes = "total_size_bytes"
        case uploadedFiles = "files_uploaded"
        case uploadedBytes = "bytes_uploaded"
        case skippedFiles = "files_skipped"
        case skippedBytes = "bytes_skipped"
        case failedFiles = "files_failed"
        case failedBytes = "bytes_failed"
        case failuresByClass = "failures_by_class"
        case unfinishedFiles = "files_unfinished"
    }

    /// The row's object with the counted totals beside its fields.
    package func encode(to encoder: any Encoder) throws {
        try row.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(totals.files, forKey: .totalFiles)
        try container.encode(totals.bytes, forKey: .totalBytes)
        try container.encode(totals.uploadedFiles, forKey: .uploadedFiles)
        try container.encode(totals.uploadedBytes, forKey: .uploadedBytes)
        try container.encode(totals.skippedFiles, forKey: .skippedFiles)
        try container.encode(totals.skippedBytes, forKey: .skippedBytes)
        try container.encode(totals.failedFiles, forKey: .failedFiles)
        try container.encode(totals.failedBytes, forKey: .failedBytes)
        try container.encode(totals.failuresByClass, forKey: .failuresByClass)
        try container.encode(totals.unfinishedFiles, forKey: .unfinishedFiles)
    }
}

extension Ledger {
    /// The session with its totals, or nil when there is no session `id`.
    package func session(_ id: Int64) throws -> SessionRecord? {
        let rows = try connection.execute(
            """
            SELECT s.id, p.name, p.id, d.name, d.id, s.config_id, s.kind, s.status, s.hostname, s.pid,
                   s.local_directory, s.bucket, s.s3_prefix, s.started_at, s.heartbeat_at, s.finished_at,
                   s.error_message
            FROM sync_sessions s JOIN projects p ON p.id = s.project_id LEFT JOIN devices d ON d.id = s.device_id
            WHERE s.id = \(id)
            """
        )
        guard rows.rowCount == 1 else { return nil }
        return SessionRecord(row: try Ledger.sessionRow(rows, 0), totals: try sessionTotals(id))
    }

    /// The session row in `row` of `rows`, whose first 17 columns are, in order: `s.id, p.name, p.id, d.name,
    /// d.id, s.config_id, s.kind, s.status, s.hostname, s.pid, s.local_directory, s.bucket, s.s3_prefix,
    /// s.started_at, s.heartbeat_at, s.finished_at, s.error_message` (`sync_sessions s` joined to its project `p`
    /// and, left, its device `d`).
    static func sessionRow(_ rows: PGResult, _ row: Int) throws -> SessionRow {
        SessionRow(
            id: try rows.decode(Int64.self, row, 0, in: "sync_sessions"),
            project: try rows.decode(String.self, row, 1, in: "projects"),
            projectID: try rows.decode(Int64.self, row, 2, in: "projects"),
            device: try rows.decodeIfPresent(String.self, row, 3, in: "devices"),
            deviceID: try rows.decodeIfPresent(Int64.self, row, 4, in: "devices"),
            configID: try rows.decodeIfPresent(Int64.self, row, 5, in: "sync_sessions"),
            kind: try rows.decode(String.self, row, 6, in: "sync_sessions"),
            status: try rows.decode(SessionStatus.self, row, 7, in: "sync_sessions"),
            hostname: try rows.decode(String.self, row, 8, in: "sync_sessions"),
            pid: try rows.decode(Int.self, row, 9, in: "sync_sessions"),
            localDirectory: try rows.decode(String.self, row, 10, in: "sync_sessions"),
            bucket: try rows.decodeIfPresent(String.self, row, 11, in: "sync_sessions"),
            prefix: try rows.decode(String.self, row, 12, in: "sync_sessions"),
            startedAt: try rows.decode(Timestamp.self, row, 13, in: "sync_sessions"),
            heartbeatAt: try rows.decode(Timestamp.self, row, 14, in: "sync_sessions"),
            finishedAt: try rows.decodeIfPresent(Timestamp.self, row, 15, in: "sync_sessions"),
            errorMessage: try rows.decodeIfPresent(String.self, row, 16, in: "sync_sessions")
        )
    }

    /// The configuration a session ran with, as the JSON `config_history` recorded.
    ///
    /// - Throws: `ConfigError` when the session has no recorded configuration or it is missing.
    package func sessionConfigJSON(_ session: SessionRecord) throws -> (id: Int64, json: String) {
        guard let configID = session.configID else {
            throw ConfigError(keyPath: nil, "session \(session.id) has no recorded configuration")
        }
        let rows = try connection.execute("SELECT config::text FROM config_history WHERE id = \(configID)")
        guard rows.rowCount == 1 else {
            throw ConfigError(keyPath: nil, "session \(session.id): configuration \(configID) is missing")
        }
        return (configID, try rows.decode(String.self, 0, 0, in: "config_history"))
    }
}
