import FleetSystem
import Foundation

/// What an import of the Data Uploader's database took and what it left, and why.
package struct DataUploaderImportSummary: Sendable, Equatable {
    package var projectsCreated: [String] = []
    /// Projects the ledger had already (by name): their destination is left as it is.
    package var projectsExisting: [String] = []
    package var sessionsImported = 0
    /// Sessions an earlier import took.
    package var sessionsAlreadyImported = 0
    /// Sessions left out, by reason.
    package var sessionsSkipped: [String: Int] = [:]
    /// Files recorded, by their status in the ledger.
    package var filesImported: [String: Int] = [:]
    /// Files left out, by reason (their session was imported before, or their row cannot be used).
    package var filesSkipped: [String: Int] = [:]
    /// Keys recorded in `stored_objects` (uploaded files), so `upload` skips them.
    package var storedObjects = 0
    package var configsImported = 0
    package var configsKnown = 0
    package var configsSkipped: [String: Int] = [:]

    package init() {}
}

extension Ledger {
    /// The host name imported sessions carry: the Data Uploader recorded none.
    package static let dataUploaderHost = "data-uploader"

    /// Imports the Data Uploader's projects, sessions, files and configurations in one transaction.
    ///
    /// A project keeps its old name; one the ledger has already keeps its destination. Each session becomes a
    /// session of kind `imported` (`in_progress` → `interrupted`, the other statuses as they were, the totals
    /// the old tool counted) whose `import_key` names the old project and session, so a second import takes
    /// nothing twice. Its files keep their status (`pending`, `uploaded`, `failed` with class `imported`), with
    /// no mtime (the old tool kept none), and are not records of objects; each uploaded key goes to
    /// `stored_objects` without mtime or checksum, so a session of the same project skips a file with that key and
    /// size, unless the key's latest record is other than an earlier import of this kind (the ledger's own
    /// upload knows more).
    package func importDataUploader(from old: DataUploaderDatabase) throws -> DataUploaderImportSummary {
        var summary = DataUploaderImportSummary()
        let projects = try old.projects()
        let sessions = try old.sessions()
        let configs = try old.configs()
        return try connection.transaction {
            try connection.execute("SELECT fleet_ensure_file_upload_partitions(now(), 2)")
            var projectIDs: [Int64: (id: Int64, bucket: String)] = [:]
            var projectNames: [Int64: String] = [:]
            for project in projects {
                let inserted = try connection.execute(
                    """
                    INSERT INTO projects (name, bucket, prefix, region, key_template)
                    VALUES (\(project.name), \(project.bucket), '', \(project.region ?? "us-east-1"), '{prefix}/{relpath}')
                    ON CONFLICT (name) DO NOTHING RETURNING id
                    """
                )
                let id: Int64
                if inserted.rowCount == 1 {
                    id = try inserted.decode(Int64.self, 0, 0, in: "projects")
                    summary.projectsCreated.append(project.name)
                } else {
                    id = try connection.execute("SELECT id FROM projects WHERE name = \(project.name)")
                        .decode(Int64.self, 0, 0, in: "projects")
                    summary.projectsExisting.append(project.name)
                }
                projectIDs[project.id] = (id, project.bucket)
                projectNames[project.id] = project.name
            }

            let sessionProject = Dictionary(sessions.map { ($0.id, $0.projectID) }, uniquingKeysWith: { a, _ in a })
            var configOfSession: [Int64: Int64] = [:]
            for config in configs {
                guard let json = config.json,
                    (try? JSONSerialization.jsonObject(with: Data(json.utf8), options: .fragmentsAllowed)) != nil
                else {
                    summary.configsSkipped["not valid JSON", default: 0] += 1
                    continue
                }
                guard let oldProject = config.projectID ?? config.sessionID.flatMap({ sessionProject[$0] ?? nil }),
                    let project = projectIDs[oldProject]
                else {
                    summary.configsSkipped["names no project", default: 0] += 1
                    continue
                }
                let rows = try connection.execute(
                    """
                    WITH c AS (SELECT \(json)::jsonb AS config),
                    h AS (SELECT config, encode(sha256(convert_to(config::text, 'UTF8')), 'hex') AS hash FROM c),
                    inserted AS (
                        INSERT INTO config_history (project_id, config_hash, config, source_path, first_used_at,
                                                    last_used_at)
                        SELECT \(project.id), hash, config,
                               'Data Uploader config_history ' || coalesce(\(config.id)::text, '(no id)'),
                               coalesce(\(config.createdAt)::timestamptz, now()),
                               coalesce(\(config.createdAt)::timestamptz, now())
                        FROM h
                        ON CONFLICT (project_id, config_hash) DO NOTHING RETURNING id
                    )
                    SELECT id, true FROM inserted
                    UNION ALL
                    SELECT x.id, false FROM config_history x, h WHERE x.project_id = \(project.id) AND x.config_hash = h.hash
                    LIMIT 1
                    """
                )
                let id = try rows.decode(Int64.self, 0, 0, in: "config_history")
                if try rows.decode(Bool.self, 0, 1, in: "config_history") {
                    summary.configsImported += 1
                } else {
                    summary.configsKnown += 1
                }
                if let session = config.sessionID { configOfSession[session] = id }
            }

            // Old session id → the imported session, for the sessions imported now.
            var imported: [Int64: ImportedSession] = [:]
            for session in sessions {
                guard let oldProject = session.projectID, let project = projectIDs[oldProject],
                    let name = projectNames[oldProject]
                else {
                    summary.sessionsSkipped["its project is not in the old database", default: 0] += 1
                    continue
                }
                let status: SessionStatus
                switch session.status {
                case "in_progress": status = .interrupted
                case "completed": status = .completed
                case "completed_with_errors": status = .completedWithErrors
                case "failed": status = .failed
                default:
                    summary.sessionsSkipped[
                        "status '\(session.status ?? "NULL")' is not a Data Uploader status",
                        default: 0
                    ] +=
                        1
                    continue
                }
                let started = session.startedAt ?? session.completedAt
                let directory = session.localDirectory ?? ""
                let rows = try connection.execute(
                    """
                    INSERT INTO sync_sessions (project_id, config_id, kind, status, hostname, pid, local_directory, bucket,
                                               s3_prefix, started_at, heartbeat_at, finished_at, scan_finished_at,
                                               total_files, files_uploaded, files_failed, files_skipped, error_message,
                                               import_key)
                    VALUES (\(project.id), \(configOfSession[session.id]), 'imported', \(status.rawValue),
                            \(Ledger.dataUploaderHost), 0, \(directory), \(project.bucket), \(session.prefix ?? ""),
                            coalesce(\(started)::timestamptz, now()),
                            coalesce(\(session.completedAt ?? started)::timestamptz, now()),
                            coalesce(\(session.completedAt ?? started)::timestamptz, now()),
                            coalesce(\(session.completedAt ?? started)::timestamptz, now()),
                            \(session.totalFiles), \(session.uploadedFiles), \(session.failedFiles),
                            \(session.skippedFiles),
                            \(status == .interrupted ? "the Data Uploader had not finished this session when it was imported" : nil),
                            \("data-uploader:\(name):\(session.id)")
                    )
                    ON CONFLICT (import_key) DO NOTHING RETURNING id
                    """
                )
                guard rows.rowCount == 1 else {
                    summary.sessionsAlreadyImported += 1
                    continue
                }
                summary.sessionsImported += 1
                imported[session.id] = ImportedSession(
                    id: try rows.decode(Int64.self, 0, 0, in: "sync_sessions"),
                    project: project.id,
                    bucket: project.bucket,
                    directory: directory,
                    startedAt: started
                )
            }

            try connection.execute(
                """
                CREATE TEMPORARY TABLE imported_files (
                    session_id bigint, project_id bigint, created_at timestamptz, local_path text, rel_path text,
                    bucket text, s3_key text, size_bytes bigint, status text, error_class text, error_message text,
                    attempts integer, finished_at timestamptz
                ) ON COMMIT DROP
                """
            )
            let oldSessions = Set(sessions.map(\.id))
            try old.files { batch in
                var taken: [(file: DataUploaderDatabase.File, session: ImportedSession)] = []
                for file in batch {
                    guard let oldSession = file.sessionID, let session = imported[oldSession] else {
                        let reason =
                            file.sessionID.map(oldSessions.contains) == true
                            ? "its session was imported before or left out" : "its session is not in the old database"
                        summary.filesSkipped[reason, default: 0] += 1
                        continue
                    }
                    guard file.localPath != nil, file.key != nil, let size = file.size, size >= 0 else {
                        summary.filesSkipped["no local path, key or size", default: 0] += 1
                        continue
                    }
                    guard ["uploaded", "failed", "pending"].contains(file.status) else {
                        summary.filesSkipped[
                            "status '\(file.status ?? "NULL")' is not a Data Uploader status",
                            default: 0
                        ] += 1
                        continue
                    }
                    taken.append((file, session))
                }
                guard !taken.isEmpty else { return }
                try connection.copyIn("COPY imported_files FROM STDIN") { rows in
                    for (file, session) in taken {
                        let path = file.localPath ?? ""
                        let status = file.status ?? ""
                        let relative =
                            !session.directory.isEmpty && path.hasPrefix(session.directory + "/")
                            ? String(path.dropFirst(session.directory.count + 1)) : path
                        try rows.row([
                            .text(String(session.id)), .text(String(session.project)),
                            (session.startedAt ?? file.uploadedAt).map { .text($0.iso8601) } ?? .null, .text(path),
                            .text(relative), .text(session.bucket), .text(file.key ?? ""),
                            .text(String(file.size ?? 0)), .text(status),
                            status == "failed" ? .text("imported") : .null,
                            file.errorMessage.map { .text($0) } ?? .null,
                            .text(String(status == "pending" ? 0 : file.retryCount + 1)),
                            file.uploadedAt.map { .text($0.iso8601) } ?? .null,
                        ])
                        summary.filesImported[status, default: 0] += 1
                    }
                }
                try connection.execute(
                    """
                    INSERT INTO file_uploads (session_id, project_id, created_at, local_path, rel_path, bucket, s3_key,
                                              size_bytes, mtime, status, attempts, error_class, error_message, finished_at)
                    SELECT session_id, project_id, coalesce(created_at, now()), local_path, rel_path, bucket, s3_key,
                           size_bytes, NULL, status, attempts, error_class, error_message,
                           CASE WHEN status = 'pending' THEN NULL
                                ELSE coalesce(finished_at, (SELECT finished_at FROM sync_sessions WHERE id = session_id))
                           END
                    FROM imported_files
                    """
                )
                summary.storedObjects += try connection.execute(
                    """
                    INSERT INTO stored_objects (project_id, bucket, s3_key, size_bytes, mtime, session_id, uploaded_at,
                                                imported_from)
                    SELECT DISTINCT ON (project_id, bucket, s3_key) project_id, bucket, s3_key, size_bytes,
                           NULL::timestamptz, session_id, coalesce(finished_at, now()), 'data_uploader'
                    FROM imported_files AS i
                    WHERE status = 'uploaded'
                      AND NOT EXISTS (SELECT 1 FROM fleet_latest_object(i.project_id, i.bucket, i.s3_key) AS o
                                      WHERE o.imported_from IS DISTINCT FROM 'data_uploader')
                    ORDER BY project_id, bucket, s3_key, session_id DESC, finished_at DESC NULLS LAST
                    ON CONFLICT (project_id, bucket, s3_key) DO UPDATE SET size_bytes = EXCLUDED.size_bytes, mtime = NULL,
                        session_id = EXCLUDED.session_id, uploaded_at = EXCLUDED.uploaded_at
                    WHERE stored_objects.imported_from = 'data_uploader'
                    """
                ).affectedRows
                try connection.execute("TRUNCATE imported_files")
            }

            // Bytes the old tool did not count, from the files; an unfinished session ends at its last upload.
            let ids = imported.values.map { String($0.id) }
            if !ids.isEmpty {
                try connection.execute(
                    """
                    UPDATE sync_sessions AS s SET total_bytes = t.bytes, bytes_uploaded = t.uploaded_bytes,
                        finished_at = CASE WHEN s.status = 'interrupted' THEN greatest(s.finished_at, t.last)
                                           ELSE s.finished_at END,
                        heartbeat_at = CASE WHEN s.status = 'interrupted' THEN greatest(s.heartbeat_at, t.last)
                                            ELSE s.heartbeat_at END
                    FROM (SELECT session_id, sum(size_bytes) AS bytes,
                                 coalesce(sum(size_bytes) FILTER (WHERE status = 'uploaded'), 0) AS uploaded_bytes,
                                 max(finished_at) AS last
                          FROM file_uploads WHERE session_id = ANY(\(PGTextArray(ids))::bigint[]) GROUP BY session_id) AS t
                    WHERE s.id = t.session_id
                    """
                )
            }
            return summary
        }
    }
}

/// A session the import is taking now, as its files need it.
private struct ImportedSession {
    var id: Int64
    var project: Int64
    var bucket: String
    var directory: String
    var startedAt: Timestamp?
}
