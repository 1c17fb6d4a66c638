import FleetSystem
import Foundation

extension Ledger {
    /// The fleet's recent sessions, the failures in them, per-project totals and devices.
    ///
    /// - Parameters:
    ///   - filter: which sessions, projects and devices to show.
    ///   - projectWindowDays: how many days back the project totals count sessions.
    /// - Throws: `LedgerError`.
    package func fleetStatus(_ filter: StatusFilter, projectWindowDays: Int = 30) throws -> FleetStatus {
        try readingOneSnapshot {
            let readAt = try connection.execute("SELECT now()").decode(Timestamp.self, 0, 0, in: "now()")
            let sessions = try recentSessions(filter).map { session in
                var session = session
                session.stale = session.row.isStale(at: readAt)
                return session
            }
            return FleetStatus(
                readAt: readAt,
                filter: filter,
                sessions: sessions,
                failuresByClass: try failuresByClass(sessionIDs: sessions.map(\.id)),
                projectWindowDays: projectWindowDays,
                projects: try projectTotals(project: filter.project, windowDays: projectWindowDays),
                devices: try devices(named: filter.device),
                connections: try connections()
            )
        }
    }

    /// The session, its first `failedLimit` failed files, its retry rounds and trigger calls; `nil` when there
    /// is no session `id`.
    ///
    /// - Throws: `LedgerError`.
    package func sessionDetail(_ id: Int64, failedLimit: Int) throws -> SessionDetail? {
        try readingOneSnapshot {
            guard let record = try session(id) else { return nil }
            let readAt = try connection.execute("SELECT now()").decode(Timestamp.self, 0, 0, in: "now()")
            return SessionDetail(
                record: record,
                readAt: readAt,
                failedFiles: try failedFiles(sessionID: id, limit: failedLimit),
                retryRounds: try retryRounds(sessionID: id),
                triggerEvents: try triggerEvents(sessionID: id),
                processes: try processes(sessionID: id)
            )
        }
    }

    /// Runs `body` in a read-only repeatable-read transaction, so every section sees the ledger at the same
    /// moment (and `now()` is the same in all of them) while uploads go on.
    private func readingOneSnapshot<T>(_ body: () throws -> T) throws -> T {
        try connection.transaction {
            try connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            return try body()
        }
    }

    // MARK: - Fleet queries

    /// The server's client connections to this database by application, this one left out. A reader without
    /// `pg_read_all_stats` sees other roles' rows with their `application_name` but without `state` and
    /// `backend_type`: they count in the total only.
    package func connections() throws -> [FleetStatus.Connections] {
        let rows = try connection.execute(
            """
            SELECT application_name, count(*)::integer, count(*) FILTER (WHERE state = 'active')::integer,
                   count(*) FILTER (WHERE state LIKE 'idle in transaction%')::integer,
                   count(*) FILTER (WHERE state = 'idle')::integer
            FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid()
              AND (backend_type = 'client backend' OR backend_type IS NULL)
            GROUP BY application_name
            ORDER BY count(*) DESC, application_name
            """
        )
        return try (0..<rows.rowCount).map { row in
            FleetStatus.Connections(
                application: try rows.decodeIfPresent(String.self, row, 0, in: "pg_stat_activity"),
                total: try rows.decode(Int.self, row, 1, in: "pg_stat_activity"),
                active: try rows.decode(Int.self, row, 2, in: "pg_stat_activity"),
                idleInTransaction: try rows.decode(Int.self, row, 3, in: "pg_stat_activity"),
                idle: try rows.decode(Int.self, row, 4, in: "pg_stat_activity")
            )
        }
    }

    /// Newest first from the `started_at` indexes. A name filter becomes an id looked up once, so the planner
    /// can walk `(project_id, started_at)` or `(device_id, started_at)` backwards and stop at the limit.
    private func recentSessions(_ filter: StatusFilter) throws -> [FleetStatus.Session] {
        let rows = try connection.execute(
            """
            SELECT s.id, p.name, p.id, d.name, d.id, s.config_id, s.kind, s.status, s.hostname, s.pid,
                   s.local_directory, s.bucket, s.s3_prefix, s.started_at, s.heartbeat_at, s.finished_at,
                   s.error_message,
                   s.total_files, s.total_bytes, s.files_uploaded, s.bytes_uploaded, s.files_skipped, s.bytes_skipped,
                   s.files_failed
            FROM sync_sessions s JOIN projects p ON p.id = s.project_id LEFT JOIN devices d ON d.id = s.device_id
            WHERE (\(filter.project)::text IS NULL
                   OR s.project_id = (SELECT id FROM projects WHERE name = \(filter.project)))
              AND (\(filter.device)::text IS NULL
                   OR s.device_id = (SELECT id FROM devices WHERE name = \(filter.device)))
            ORDER BY s.started_at DESC, s.id DESC
            LIMIT \(filter.limit)
            """
        )
        return try (0..<rows.rowCount).map { row in
            let sessionRow = try Ledger.sessionRow(rows, row)
            return FleetStatus.Session(
                row: sessionRow,
                totals: sessionRow.status == .running
                    ? nil
                    : FleetStatus.Totals(
                        files: try rows.decode(Int64.self, row, 17, in: "sync_sessions"),
                        bytes: try rows.decode(Int64.self, row, 18, in: "sync_sessions"),
                        uploadedFiles: try rows.decode(Int64.self, row, 19, in: "sync_sessions"),
                        uploadedBytes: try rows.decode(Int64.self, row, 20, in: "sync_sessions"),
                        skippedFiles: try rows.decode(Int64.self, row, 21, in: "sync_sessions"),
                        skippedBytes: try rows.decode(Int64.self, row, 22, in: "sync_sessions"),
                        failedFiles: try rows.decode(Int64.self, row, 23, in: "sync_sessions")
                    )
            )
        }
    }

    /// Counted from `file_upload_counts` (kept by a trigger on `file_uploads`): a few rows per listed session,
    /// however many files the sessions hold.
    private func failuresByClass(sessionIDs: [Int64]) throws -> [String: Int] {
        guard !sessionIDs.isEmpty else { return [:] }
        let ids = "{" + sessionIDs.map(String.init).joined(separator: ",") + "}"
        let rows = try connection.execute(
            """
            SELECT error_class, sum(files) FROM file_upload_counts
            WHERE session_id = ANY(\(ids)::bigint[]) AND status IN ('failed', 'permanent_failure')
            GROUP BY 1 HAVING sum(files) > 0
            """
        )
        var byClass: [String: Int] = [:]
        for row in 0..<rows.rowCount {
            let errorClass = try rows.decode(String.self, row, 0, in: "file_upload_counts")
            byClass[errorClass, default: 0] += try rows.decode(Int.self, row, 1, in: "file_upload_counts")
        }
        return byClass
    }

    /// One pass over the window's sessions through the `started_at` index, grouped by project; each project's
    /// latest session from the top of `(project_id, started_at)`.
    private func projectTotals(project: String?, windowDays: Int) throws -> [FleetStatus.Project] {
        let rows = try connection.execute(
            """
            WITH window_totals AS (
                SELECT project_id, count(*) AS sessions, sum(files_uploaded) AS files_uploaded,
                       sum(bytes_uploaded) AS bytes_uploaded, sum(files_failed) AS files_failed
                FROM sync_sessions
                WHERE started_at >= now() - make_interval(days => \(windowDays))
                  AND (\(project)::text IS NULL OR project_id = (SELECT id FROM projects WHERE name = \(project)))
                GROUP BY project_id
            )
            SELECT p.name, coalesce(w.sessions, 0), coalesce(w.files_uploaded, 0), coalesce(w.bytes_uploaded, 0),
                   coalesce(w.files_failed, 0), latest.started_at
            FROM projects p
            LEFT JOIN window_totals w ON w.project_id = p.id
            LEFT JOIN LATERAL (
                SELECT s.started_at FROM sync_sessions s WHERE s.project_id = p.id ORDER BY s.started_at DESC LIMIT 1
            ) latest ON true
            WHERE \(project)::text IS NULL OR p.name = \(project)
            ORDER BY p.name
            """
        )
        return try (0..<rows.rowCount).map { row in
            FleetStatus.Project(
                name: try rows.decode(String.self, row, 0, in: "projects"),
                sessions: try rows.decode(Int.self, row, 1, in: "sync_sessions"),
                uploadedFiles: try rows.decode(Int64.self, row, 2, in: "sync_sessions"),
                uploadedBytes: try rows.decode(Int64.self, row, 3, in: "sync_sessions"),
                failedFiles: try rows.decode(Int64.self, row, 4, in: "sync_sessions"),
                lastSessionAt: try rows.decodeIfPresent(Timestamp.self, row, 5, in: "sync_sessions")
            )
        }
    }

    private func devices(named name: String?) throws -> [FleetStatus.Device] {
        let rows = try connection.execute(
            """
            SELECT name, hostname, agent_version, last_heartbeat_at,
                   extract(epoch FROM now() - last_heartbeat_at)::float8, disk_used_percent, queue_files, queue_bytes,
                   last_upload_at
            FROM devices
            WHERE \(name)::text IS NULL OR name = \(name)
            ORDER BY name
            """
        )
        return try (0..<rows.rowCount).map { row in
            FleetStatus.Device(
                name: try rows.decode(String.self, row, 0, in: "devices"),
                hostname: try rows.decodeIfPresent(String.self, row, 1, in: "devices"),
                agentVersion: try rows.decodeIfPresent(String.self, row, 2, in: "devices"),
                lastHeartbeatAt: try rows.decodeIfPresent(Timestamp.self, row, 3, in: "devices"),
                heartbeatAgeSeconds: try rows.decodeIfPresent(Double.self, row, 4, in: "devices"),
                diskUsedPercent: try rows.decodeIfPresent(Double.self, row, 5, in: "devices"),
                queueFiles: try rows.decodeIfPresent(Int64.self, row, 6, in: "devices"),
                queueBytes: try rows.decodeIfPresent(Int64.self, row, 7, in: "devices"),
                lastUploadAt: try rows.decodeIfPresent(Timestamp.self, row, 8, in: "devices")
            )
        }
    }

    // MARK: - Session queries

    /// The first `limit` failed files by id. Each status is read in id order from `(session_id, status, id)` and
    /// stops at the limit, so a session with a million failures costs no more than one with ten.
    private func failedFiles(sessionID: Int64, limit: Int) throws -> [SessionDetail.FailedFile] {
        guard limit > 0 else { return [] }
        let rows = try connection.execute(
            """
            SELECT local_path, bucket, s3_key, status, error_class, attempts, http_status, error_message, finished_at
            FROM (
                (SELECT * FROM file_uploads WHERE session_id = \(sessionID) AND status = 'failed'
                 ORDER BY id LIMIT \(limit))
                UNION ALL
                (SELECT * FROM file_uploads WHERE session_id = \(sessionID) AND status = 'permanent_failure'
                 ORDER BY id LIMIT \(limit))
            ) failed
            ORDER BY id
            LIMIT \(limit)
            """
        )
        return try (0..<rows.rowCount).map { row in
            SessionDetail.FailedFile(
                localPath: try rows.decode(String.self, row, 0, in: "file_uploads"),
                bucket: try rows.decode(String.self, row, 1, in: "file_uploads"),
                key: try rows.decode(String.self, row, 2, in: "file_uploads"),
                status: try rows.decode(String.self, row, 3, in: "file_uploads"),
                errorClass: try rows.decodeIfPresent(String.self, row, 4, in: "file_uploads"),
                attempts: try rows.decode(Int.self, row, 5, in: "file_uploads"),
                httpStatus: try rows.decodeIfPresent(Int.self, row, 6, in: "file_uploads"),
                errorMessage: try rows.decodeIfPresent(String.self, row, 7, in: "file_uploads"),
                finishedAt: try rows.decodeIfPresent(Timestamp.self, row, 8, in: "file_uploads")
            )
        }
    }

    private func retryRounds(sessionID: Int64) throws -> [RetryRound] {
        let rows = try connection.execute(
            """
            SELECT round, started_at, finished_at, files_attempted, files_uploaded, files_failed
            FROM retry_rounds WHERE session_id = \(sessionID) ORDER BY round
            """
        )
        return try (0..<rows.rowCount).map { try Ledger.retryRound(rows, $0) }
    }

    /// One pass over the session's uploaded rows counts every process's share (`claimed_by`).
    private func processes(sessionID: Int64) throws -> [SessionDetail.Process] {
        let rows = try connection.execute(
            """
            WITH shares AS (
                SELECT claimed_by, count(*) AS files FROM file_uploads
                WHERE session_id = \(sessionID) AND status = 'uploaded' GROUP BY claimed_by
            )
            SELECT w.worker, w.role, w.workers, w.joined_at, w.left_at,
                   extract(epoch FROM now() - w.heartbeat_at)::float8, coalesce(s.files, 0)
            FROM session_workers w LEFT JOIN shares s ON s.claimed_by = w.worker
            WHERE w.session_id = \(sessionID) ORDER BY w.joined_at, w.worker
            """
        )
        return try (0..<rows.rowCount).map { row in
            SessionDetail.Process(
                worker: try rows.decode(String.self, row, 0, in: "session_workers"),
                role: try rows.decode(String.self, row, 1, in: "session_workers"),
                threads: try rows.decode(Int.self, row, 2, in: "session_workers"),
                joinedAt: try rows.decode(Timestamp.self, row, 3, in: "session_workers"),
                leftAt: try rows.decodeIfPresent(Timestamp.self, row, 4, in: "session_workers"),
                heartbeatAgeSeconds: try rows.decode(Double.self, row, 5, in: "session_workers"),
                filesUploaded: try rows.decode(Int64.self, row, 6, in: "session_workers")
            )
        }
    }

    private func triggerEvents(sessionID: Int64) throws -> [TriggerEvent] {
        let rows = try connection.execute(
            """
            SELECT attempt, created_at, http_status, latency_ms, succeeded, error_message, url, response_excerpt,
                   delivery
            FROM trigger_events WHERE session_id = \(sessionID) ORDER BY created_at, id
            """
        )
        return try (0..<rows.rowCount).map { row in
            TriggerEvent(
                sessionID: sessionID,
                url: try rows.decode(String.self, row, 6, in: "trigger_events"),
                delivery: try rows.decode(Int.self, row, 8, in: "trigger_events"),
                attempt: try rows.decode(Int.self, row, 0, in: "trigger_events"),
                httpStatus: try rows.decodeIfPresent(Int.self, row, 2, in: "trigger_events"),
                latencyMs: try rows.decodeIfPresent(Int.self, row, 3, in: "trigger_events"),
                succeeded: try rows.decode(Bool.self, row, 4, in: "trigger_events"),
                errorMessage: try rows.decodeIfPresent(String.self, row, 5, in: "trigger_events"),
                responseExcerpt: try rows.decodeIfPresent(String.self, row, 7, in: "trigger_events"),
                at: try rows.decode(Timestamp.self, row, 1, in: "trigger_events")
            )
        }
    }
}
