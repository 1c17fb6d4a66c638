import FleetSystem
import Foundation

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
