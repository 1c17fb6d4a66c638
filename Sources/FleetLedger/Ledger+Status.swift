import FleetSystem
import Foundation

/// Which sessions `master status` lists.
package struct StatusFilter: Sendable, Equatable {
    /// The most sessions listed, newest first.
    package var limit: Int
    /// Only this project's sessions, and only this project in the project totals.
    package var project: String?
    /// Only this device's sessions, and only this device in the device list.
    package var device: String?

    package init(limit: Int = 20, project: String? = nil, device: String? = nil) {
        self.limit = limit
        self.project = project
        self.device = device
    }
}

/// The fleet at a glance: recent sessions, the failures in them, per-project totals and every device.
///
/// Read from the session and device rows, never by counting file rows, except for the failures of the
/// sessions listed, which come from the partial index on failed files.
package struct FleetStatus: Sendable {
    /// The database's clock when the status was read; heartbeat ages are measured against it.
    package var readAt: Timestamp
    package var filter: StatusFilter
    /// The latest sessions matching the filter, newest first.
    package var sessions: [Session]
    /// Failed and permanently failed files of `sessions` by error class (`""` for files without one).
    package var failuresByClass: [String: Int]
    /// How many days back `projects` counts sessions.
    package var projectWindowDays: Int
    /// Every project (or the filtered one), by name.
    package var projects: [Project]
    /// Every device (or the filtered one), by name.
    package var devices: [Device]

    /// One session as its row records it, with the totals it closed with. The row's fields read through it
    /// (`session.status`).
    @dynamicMemberLookup
    package struct Session: Sendable {
        package var row: SessionRow
        /// The totals written when the session closed; `nil` while it runs.
        package var totals: Totals?

        package subscript<Value>(dynamicMember keyPath: KeyPath<SessionRow, Value>) -> Value {
            row[keyPath: keyPath]
        }

        /// Uploaded files per second over the whole session; `nil` while it runs or when it took no time.
        package var filesPerSecond: Double? {
            guard let totals, row.durationSeconds > 0 else { return nil }
            return Double(totals.uploadedFiles) / row.durationSeconds
        }

        /// Uploaded bytes per second over the whole session; `nil` while it runs or when it took no time.
        package var bytesPerSecond: Double? {
            guard let totals, row.durationSeconds > 0 else { return nil }
            return Double(totals.uploadedBytes) / row.durationSeconds
        }
    }

    /// The totals columns of a closed session.
    package struct Totals: Sendable, Equatable {
        package var files: Int64
        package var bytes: Int64
        package var uploadedFiles: Int64
        package var uploadedBytes: Int64
        package var skippedFiles: Int64
        package var skippedBytes: Int64
        package var failedFiles: Int64
    }

    /// A project's activity within the window.
    package struct Project: Sendable, Equatable {
        package var name: String
        /// Sessions started within the window.
        package var sessions: Int
        /// What those sessions uploaded and failed (running sessions count once they close).
        package var uploadedFiles: Int64
        package var uploadedBytes: Int64
        package var failedFiles: Int64
        /// When its latest session started, however long ago; `nil` if it never ran one.
        package var lastSessionAt: Timestamp?
    }

    /// A device as its last heartbeat left it.
    package struct Device: Sendable, Equatable {
        package var name: String
        package var hostname: String?
        package var agentVersion: String?
        package var lastHeartbeatAt: Timestamp?
        /// Seconds between the last heartbeat and `readAt`.
        package var heartbeatAgeSeconds: Double?
        package var diskUsedPercent: Double?
        /// Files ready but not yet uploaded.
        package var queueFiles: Int64?
        package var queueBytes: Int64?
        package var lastUploadAt: Timestamp?
    }
}

/// One session with what went wrong in it: `master status --session ID`.
package struct SessionDetail: Sendable {
    /// The session with its totals counted from the file rows.
    package var record: SessionRecord
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
            let sessions = try recentSessions(filter)
            return FleetStatus(
                readAt: readAt,
                filter: filter,
                sessions: sessions,
                failuresByClass: try failuresByClass(sessionIDs: sessions.map(\.id)),
                projectWindowDays: projectWindowDays,
                projects: try projectTotals(project: filter.project, windowDays: projectWindowDays),
                devices: try devices(named: filter.device)
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
            return SessionDetail(
                record: record,
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

    /// Counted from the partial index `file_uploads_failures (session_id, error_class)`, which holds only
    /// failed rows: an index-only probe per listed session.
    private func failuresByClass(sessionIDs: [Int64]) throws -> [String: Int] {
        guard !sessionIDs.isEmpty else { return [:] }
        let ids = "{" + sessionIDs.map(String.init).joined(separator: ",") + "}"
        let rows = try connection.execute(
            """
            SELECT coalesce(error_class, ''), count(*) FROM file_uploads
            WHERE session_id = ANY(\(ids)::bigint[]) AND status IN ('failed', 'permanent_failure')
            GROUP BY 1
            """
        )
        var byClass: [String: Int] = [:]
        for row in 0..<rows.rowCount {
            let errorClass = try rows.decode(String.self, row, 0, in: "file_uploads")
            byClass[errorClass, default: 0] += try rows.decode(Int.self, row, 1, in: "file_uploads")
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
            SELECT attempt, created_at, http_status, latency_ms, succeeded, error_message, url, response_excerpt
            FROM trigger_events WHERE session_id = \(sessionID) ORDER BY created_at, id
            """
        )
        return try (0..<rows.rowCount).map { row in
            TriggerEvent(
                sessionID: sessionID,
                url: try rows.decode(String.self, row, 6, in: "trigger_events"),
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

// MARK: - JSON

extension FleetStatus: Encodable {
    private enum CodingKeys: String, CodingKey {
        case readAt = "read_at"
        case filter, sessions
        case failuresByClass = "failures_by_class"
        case projectWindowDays = "project_window_days"
        case projects, devices
    }

    /// Snake-case keys; times in RFC 3339 UTC; absent values as `null`.
    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(readAt.rfc3339, forKey: .readAt)
        try container.encode(filter, forKey: .filter)
        try container.encode(sessions, forKey: .sessions)
        try container.encode(failuresByClass, forKey: .failuresByClass)
        try container.encode(projectWindowDays, forKey: .projectWindowDays)
        try container.encode(projects, forKey: .projects)
        try container.encode(devices, forKey: .devices)
    }
}

extension StatusFilter: Encodable {
    private enum CodingKeys: String, CodingKey { case limit, project, device }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(limit, forKey: .limit)
        try container.encode(project, forKey: .project)
        try container.encode(device, forKey: .device)
    }
}

extension FleetStatus.Session: Encodable {
    /// The keys `SessionRecord` uses for the same totals.
    private enum CodingKeys: String, CodingKey {
        case totalFiles = "total_files"
        case totalBytes = "total_size_bytes"
        case uploadedFiles = "files_uploaded"
        case uploadedBytes = "bytes_uploaded"
        case skippedFiles = "files_skipped"
        case skippedBytes = "bytes_skipped"
        case failedFiles = "files_failed"
        case filesPerSecond = "files_per_second"
        case bytesPerSecond = "bytes_per_second"
    }

    /// The row's summary with the closing totals and throughput beside it, `null` while the session runs.
    package func encode(to encoder: any Encoder) throws {
        try row.encodeSummary(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(totals?.files, forKey: .totalFiles)
        try container.encode(totals?.bytes, forKey: .totalBytes)
        try container.encode(totals?.uploadedFiles, forKey: .uploadedFiles)
        try container.encode(totals?.uploadedBytes, forKey: .uploadedBytes)
        try container.encode(totals?.skippedFiles, forKey: .skippedFiles)
        try container.encode(totals?.skippedBytes, forKey: .skippedBytes)
        try container.encode(totals?.failedFiles, forKey: .failedFiles)
        try container.encode(filesPerSecond.map(thousandths), forKey: .filesPerSecond)
        try container.encode(bytesPerSecond.map { $0.rounded() }, forKey: .bytesPerSecond)
    }
}

extension FleetStatus.Project: Encodable {
    private enum CodingKeys: String, CodingKey {
        case name = "project"
        case sessions
        case uploadedFiles = "files_uploaded"
        case uploadedBytes = "bytes_uploaded"
        case failedFiles = "files_failed"
        case lastSessionAt = "last_session_at"
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(sessions, forKey: .sessions)
        try container.encode(uploadedFiles, forKey: .uploadedFiles)
        try container.encode(uploadedBytes, forKey: .uploadedBytes)
        try container.encode(failedFiles, forKey: .failedFiles)
        try container.encode(lastSessionAt?.rfc3339, forKey: .lastSessionAt)
    }
}

extension FleetStatus.Device: Encodable {
    private enum CodingKeys: String, CodingKey {
        case name = "device"
        case hostname
        case agentVersion = "agent_version"
        case lastHeartbeatAt = "last_heartbeat_at"
        case heartbeatAgeSeconds = "heartbeat_age_seconds"
        case diskUsedPercent = "disk_used_percent"
        case queueFiles = "queue_files"
        case queueBytes = "queue_bytes"
        case lastUploadAt = "last_upload_at"
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(hostname, forKey: .hostname)
        try container.encode(agentVersion, forKey: .agentVersion)
        try container.encode(lastHeartbeatAt?.rfc3339, forKey: .lastHeartbeatAt)
        try container.encode(heartbeatAgeSeconds.map(thousandths), forKey: .heartbeatAgeSeconds)
        try container.encode(diskUsedPercent, forKey: .diskUsedPercent)
        try container.encode(queueFiles, forKey: .queueFiles)
        try container.encode(queueBytes, forKey: .queueBytes)
        try container.encode(lastUploadAt?.rfc3339, forKey: .lastUploadAt)
    }
}

extension SessionDetail: Encodable {
    private enum CodingKeys: String, CodingKey {
        case failedFiles = "failed_files"
        case retryRounds = "retry_rounds"
        case triggerEvents = "trigger_events"
        case processes
    }

    /// `SessionRecord`'s fields, unchanged, with `failed_files`, `retry_rounds`, `trigger_events` and
    /// `processes` beside them in the same object.
    package func encode(to encoder: any Encoder) throws {
        try record.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(failedFiles, forKey: .failedFiles)
        try container.encode(retryRounds, forKey: .retryRounds)
        try container.encode(triggerEvents, forKey: .triggerEvents)
        try container.encode(processes, forKey: .processes)
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
        try container.encode(joinedAt.rfc3339, forKey: .joinedAt)
        try container.encode(leftAt?.rfc3339, forKey: .leftAt)
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
        try container.encode(finishedAt?.rfc3339, forKey: .finishedAt)
    }
}

/// Rounded to milliseconds (or thousandths), as the session objects write their duration.
func thousandths(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }
