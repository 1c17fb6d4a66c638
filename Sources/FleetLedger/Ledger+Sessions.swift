import FleetSystem
import Foundation

/// A session's totals as the ledger counts them.
package struct SessionTotals: Sendable, Codable, Equatable {
    package var files = 0
    package var bytes: Int64 = 0
    package var uploadedFiles = 0
    package var uploadedBytes: Int64 = 0
    /// The bytes of the objects uploaded: `uploadedBytes` read from the files, fewer where files went up compressed.
    package var sentBytes: Int64 = 0
    package var skippedFiles = 0
    package var skippedBytes: Int64 = 0
    package var failedFiles = 0
    package var failedBytes: Int64 = 0
    /// Failed and permanently failed files by error class.
    package var failuresByClass: [String: Int] = [:]
    /// Rows not finished (pending, uploading, failed with attempts left): only after an interruption.
    package var unfinishedFiles = 0

    package init() {}
}

/// The final state of a session.
package enum SessionStatus: String, Sendable, Codable {
    case running, completed
    case completedWithErrors = "completed_with_errors"
    case failed, interrupted
}

/// A status this binary does not know is an error when read, never taken for another.
extension SessionStatus: PGDecodable {}

/// Where a project's files go, as the `projects` table records it.
package struct ProjectDestination: Sendable, Equatable {
    package var name: String
    /// `nil` when the first directory names each file's bucket.
    package var bucket: String?
    package var prefix: String
    package var region: String
    /// A custom endpoint; `nil` for AWS.
    package var endpoint: String?
    package var keyTemplate: String
    /// Whether other projects that share too may store the same keys; otherwise a key another project stores
    /// is refused (`key_owned_by_other_project`).
    package var sharedPrefix: Bool

    package init(
        name: String,
        bucket: String?,
        prefix: String,
        region: String,
        endpoint: String?,
        keyTemplate: String,
        sharedPrefix: Bool = false
    ) {
        self.name = name
        self.bucket = bucket
        self.prefix = prefix
        self.region = region
        self.endpoint = endpoint
        self.keyTemplate = keyTemplate
        self.sharedPrefix = sharedPrefix
    }
}

extension Ledger {
    /// Creates the project or updates its destination; returns its id.
    ///
    /// - Throws: `ConfigError` (`project.name`) when a device role was not granted the project.
    package func upsertProject(_ project: ProjectDestination) throws -> Int64 {
        let rows = try refusedToDevice(keyPath: "project.name") {
            "the device login \($0.role) may not use project '\(project.name)' (granted: "
                + "\($0.projects.isEmpty ? "none" : $0.projects.joined(separator: ", "))); "
                + "an admin grants it with `master device add --project`"
        } run: {
            try connection.execute(
                """
                INSERT INTO projects (name, bucket, prefix, region, endpoint, key_template, shared_prefix)
                VALUES (\(project.name), \(project.bucket), \(project.prefix), \(project.region), \(project.endpoint),
                        \(project.keyTemplate), \(project.sharedPrefix))
                ON CONFLICT (name) DO UPDATE SET bucket = EXCLUDED.bucket, prefix = EXCLUDED.prefix,
                    region = EXCLUDED.region, endpoint = EXCLUDED.endpoint, key_template = EXCLUDED.key_template,
                    shared_prefix = EXCLUDED.shared_prefix, updated_at = now()
                RETURNING id
                """
            )
        }
        return try requireID(rows, "project", in: "projects")
    }

    /// Creates the device or refreshes its host name; returns its id.
    ///
    /// An existing device is updated first: a device role's row exists (`master device add` made it), and an
    /// `INSERT … ON CONFLICT` would propose a row with a new id, which row-level security refuses to return to it.
    ///
    /// - Throws: `ConfigError` (`device`) when a device role names another device than its own.
    package func upsertDevice(name: String, hostname: String, agentVersion: String) throws -> Int64 {
        let updated = try connection.execute(
            """
            UPDATE devices SET hostname = \(hostname), agent_version = \(agentVersion) WHERE name = \(name)
            RETURNING id
            """
        )
        if updated.rowCount == 1 { return try requireID(updated, "device", in: "devices") }
        let rows = try refusedToDevice(keyPath: "device") {
            "the ledger login \($0.role) is device '\($0.device)', not '\(name)'"
        } run: {
            try connection.execute(
                """
                INSERT INTO devices (name, hostname, agent_version) VALUES (\(name), \(hostname), \(agentVersion))
                ON CONFLICT (name) DO UPDATE SET hostname = EXCLUDED.hostname, agent_version = EXCLUDED.agent_version
                RETURNING id
                """
            )
        }
        return try requireID(rows, "device", in: "devices")
    }

    /// Runs `body`; when row-level security refuses it to a device role, throws a `ConfigError` with the message
    /// `explain` makes from the login, instead of the server's "new row violates row-level security policy".
    private func refusedToDevice(
        keyPath: String,
        _ explain: (DeviceIdentity) -> String,
        run body: () throws -> PGResult
    ) throws -> PGResult {
        do {
            return try body()
        } catch let error as LedgerError where error.sqlState == "42501" {
            guard let identity = try deviceIdentity() else { throw error }
            throw ConfigError(keyPath: keyPath, explain(identity))
        }
    }

    /// Records a configuration once per distinct hash; returns its id.
    ///
    /// - Parameters:
    ///   - hash: The configuration's hash, its identity in `config_history`.
    ///   - json: The configuration as canonical JSON.
    ///   - sourcePath: The file it was read from, if any.
    package func recordConfig(projectID: Int64, hash: String, json: String, sourcePath: String?) throws -> Int64 {
        let rows = try connection.execute(
            """
            INSERT INTO config_history (project_id, config_hash, config, source_path)
            VALUES (\(projectID), \(hash), \(json)::jsonb, \(sourcePath))
            ON CONFLICT (project_id, config_hash) DO UPDATE SET last_used_at = now(), source_path = EXCLUDED.source_path
            RETURNING id
            """
        )
        return try requireID(rows, "config", in: "config_history")
    }

    /// Opens a running session and makes sure this month's and next month's file partitions exist.
    package func openSession(
        kind: String,
        projectID: Int64,
        deviceID: Int64,
        configID: Int64,
        localDirectory: String,
        bucket: String?,
        prefix: String
    ) throws -> Int64 {
        try connection.execute("SELECT fleet_ensure_file_upload_partitions(now(), 2)")
        let rows = try connection.execute(
            """
            INSERT INTO sync_sessions (project_id, device_id, config_id, kind, hostname, pid, local_directory, bucket,
                                       s3_prefix)
            VALUES (\(projectID), \(deviceID), \(configID), \(kind), \(ProcessInfo.processInfo.hostName),
                    \(Int(ProcessInfo.processInfo.processIdentifier)), \(localDirectory), \(bucket), \(prefix))
            RETURNING id
            """
        )
        return try requireID(rows, "session", in: "sync_sessions")
    }

    /// The session's totals, from `file_upload_counts`: a trigger keeps there what every statement on the
    /// session's file rows changed, so this reads a few rows however many files the session holds.
    package func sessionTotals(_ sessionID: Int64) throws -> SessionTotals {
        let rows = try connection.execute(
            """
            SELECT status, error_class, sum(files), sum(bytes), sum(sent_bytes)
            FROM file_upload_counts WHERE session_id = \(sessionID) GROUP BY 1, 2 HAVING sum(files) <> 0
            """
        )
        var totals = SessionTotals()
        for row in 0..<rows.rowCount {
            let count = try rows.decode(Int.self, row, 2, in: "file_upload_counts")
            let bytes = try rows.decode(Int64.self, row, 3, in: "file_upload_counts")
            totals.files += count
            totals.bytes += bytes
            switch try rows.decode(String.self, row, 0, in: "file_upload_counts") {
            case "uploaded":
                totals.uploadedFiles += count
                totals.uploadedBytes += bytes
                totals.sentBytes += try rows.decode(Int64.self, row, 4, in: "file_upload_counts")
            case "skipped":
                totals.skippedFiles += count
                totals.skippedBytes += bytes
            case "failed", "permanent_failure":
                totals.failedFiles += count
                totals.failedBytes += bytes
                totals.failuresByClass[try rows.decode(String.self, row, 1, in: "file_upload_counts"), default: 0] +=
                    count
            default:
                totals.unfinishedFiles += count
            }
        }
        return totals
    }

    /// Closes the session with its final status and totals. A session closed before (a retry updates it) keeps
    /// its first finish time.
    ///
    /// - Parameter totals: The session's totals, when the caller has just read them (`sessionTotals`): one
    ///   round trip instead of two.
    package func closeSession(
        _ sessionID: Int64,
        status: SessionStatus,
        errorMessage: String? = nil,
        totals known: SessionTotals? = nil
    ) throws
        -> SessionTotals
    {
        let totals = try known ?? sessionTotals(sessionID)
        try connection.execute(
            """
            UPDATE sync_sessions SET status = \(status.rawValue), finished_at = coalesce(finished_at, now()),
                heartbeat_at = now(),
                total_files = \(totals.files), total_bytes = \(totals.bytes),
                files_uploaded = \(totals.uploadedFiles), bytes_uploaded = \(totals.uploadedBytes),
                files_skipped = \(totals.skippedFiles), bytes_skipped = \(totals.skippedBytes),
                files_failed = \(totals.failedFiles), error_message = \(errorMessage)
            WHERE id = \(sessionID)
            """
        )
        return totals
    }

    /// Records the number of files the session kept in flight (the level `upload.workers: auto` settled on).
    package func recordConcurrency(sessionID: Int64, level: Int) throws {
        try connection.execute("UPDATE sync_sessions SET concurrency = \(level) WHERE id = \(sessionID)")
    }

    private func requireID(_ rows: PGResult, _ what: String, in table: String) throws -> Int64 {
        guard rows.rowCount == 1 else {
            throw LedgerError(.queryFailed, location: location, message: "no id returned for the \(what)")
        }
        return try rows.decode(Int64.self, 0, 0, in: table)
    }
}
