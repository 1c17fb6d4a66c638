import FleetSystem
import Foundation

/// The old database cannot be reached (one that is not the Data Uploader's is a `ConfigError`).
package struct DataUploaderDatabaseError: Error, CustomStringConvertible, Sendable {
    package var location: String
    package var message: String

    package var description: String { "cannot reach the old database at \(location): \(message)" }
}

/// The Data Uploader's PostgreSQL database, read (never written) by `master import-state --from-database`.
///
/// Its tables: `projects(id, project_name, bucket_name, aws_region)`, `sync_sessions(id, project_id,
/// local_directory, s3_prefix, status, total_files, files_uploaded, files_failed, files_skipped, started_at,
/// completed_at)`, `file_uploads(id, session_id, local_path, s3_key, file_size, status, retry_count,
/// error_message, uploaded_at)` and `config_history(config_json` and any of `project_id, session_id,
/// created_at)`; other columns are ignored. Times without a zone are read in the old server's own time zone.
package final class DataUploaderDatabase {
    let connection: PGConnection
    package var location: String { connection.location }

    /// The columns the import reads, by table; a database without one of them is not the Data Uploader's.
    static let requiredColumns: [(String, [String])] = [
        ("projects", ["id", "project_name", "bucket_name", "aws_region"]),
        (
            "sync_sessions",
            [
                "id", "project_id", "local_directory", "s3_prefix", "status", "total_files", "files_uploaded",
                "files_failed", "files_skipped", "started_at", "completed_at",
            ]
        ),
        (
            "file_uploads",
            [
                "id", "session_id", "local_path", "s3_key", "file_size", "status", "retry_count", "error_message",
                "uploaded_at",
            ]
        ),
        ("config_history", ["config_json"]),
    ]

    /// Connects and checks that the tables and columns the import reads are there.
    ///
    /// - Throws: `DataUploaderDatabaseError` when it cannot be reached; `ConfigError` when it is not a Data
    ///   Uploader database (or the connection string cannot work).
    package init(url: String) throws {
        do {
            connection = try PGConnection(conninfo: url, applicationName: "fleet-upload import-state")
        } catch let error as LedgerError {
            throw DataUploaderDatabaseError(location: error.location, message: error.message)
        }
        // Times without a zone were written in the server's zone, which the session's UTC would hide.
        try connection.executeScript("RESET TimeZone")
        let rows = try connection.execute(
            """
            SELECT table_name::text, column_name::text FROM information_schema.columns
            WHERE table_schema = current_schema()
              AND table_name IN ('projects', 'sync_sessions', 'file_uploads', 'config_history')
            """
        )
        var present: [String: Set<String>] = [:]
        for row in 0..<rows.rowCount {
            present[try rows.decode(String.self, row, 0, in: "information_schema.columns"), default: []].insert(
                try rows.decode(String.self, row, 1, in: "information_schema.columns")
            )
        }
        for (table, columns) in Self.requiredColumns {
            guard let found = present[table] else {
                throw ConfigError(
                    keyPath: nil,
                    "--from-database \(location): no table \(table); is it the Data Uploader's database?"
                )
            }
            if let missing = columns.first(where: { !found.contains($0) }) {
                throw ConfigError(
                    keyPath: nil,
                    "--from-database \(location): \(table) has no column \(missing); is it the Data Uploader's database?"
                )
            }
        }
    }

    package struct Project: Sendable {
        package var id: Int64
        package var name: String
        package var bucket: String
        package var region: String?
    }

    package struct Session: Sendable {
        package var id: Int64
        package var projectID: Int64?
        package var localDirectory: String?
        package var prefix: String?
        package var status: String?
        package var totalFiles: Int64
        package var uploadedFiles: Int64
        package var failedFiles: Int64
        package var skippedFiles: Int64
        package var startedAt: Timestamp?
        package var completedAt: Timestamp?
    }

    package struct Config: Sendable {
        package var id: Int64?
        package var projectID: Int64?
        package var sessionID: Int64?
        package var json: String?
        package var createdAt: Timestamp?
    }

    package struct File: Sendable {
        package var id: Int64
        package var sessionID: Int64?
        package var localPath: String?
        package var key: String?
        package var size: Int64?
        package var status: String?
        package var retryCount: Int
        package var errorMessage: String?
        package var uploadedAt: Timestamp?
    }

    package func projects() throws -> [Project] {
        let rows = try connection.execute(
            "SELECT id, project_name, bucket_name, aws_region FROM projects ORDER BY id"
        )
        return try (0..<rows.rowCount).map { row in
            Project(
                id: try rows.decode(Int64.self, row, 0, in: "old projects"),
                name: try rows.decode(String.self, row, 1, in: "old projects"),
                bucket: try rows.decode(String.self, row, 2, in: "old projects"),
                region: try rows.decodeIfPresent(String.self, row, 3, in: "old projects")
            )
        }
    }

    package func sessions() throws -> [Session] {
        let rows = try connection.execute(
            """
            SELECT id, project_id, local_directory, s3_prefix, status, total_files, files_uploaded, files_failed,
                   files_skipped, started_at::timestamptz, completed_at::timestamptz
            FROM sync_sessions ORDER BY id
            """
        )
        let table = "old sync_sessions"
        return try (0..<rows.rowCount).map { row in
            Session(
                id: try rows.decode(Int64.self, row, 0, in: table),
                projectID: try rows.decodeIfPresent(Int64.self, row, 1, in: table),
                localDirectory: try rows.decodeIfPresent(String.self, row, 2, in: table),
                prefix: try rows.decodeIfPresent(String.self, row, 3, in: table),
                status: try rows.decodeIfPresent(String.self, row, 4, in: table),
                totalFiles: try rows.decodeIfPresent(Int64.self, row, 5, in: table) ?? 0,
                uploadedFiles: try rows.decodeIfPresent(Int64.self, row, 6, in: table) ?? 0,
                failedFiles: try rows.decodeIfPresent(Int64.self, row, 7, in: table) ?? 0,
                skippedFiles: try rows.decodeIfPresent(Int64.self, row, 8, in: table) ?? 0,
                startedAt: try rows.decodeIfPresent(Timestamp.self, row, 9, in: table),
                completedAt: try rows.decodeIfPresent(Timestamp.self, row, 10, in: table)
            )
        }
    }

    /// Every configuration; the columns beside `config_json` are read when the table has them.
    package func configs() throws -> [Config] {
        let rows = try connection.execute(
            """
            SELECT (j ->> 'id')::bigint, (j ->> 'project_id')::bigint, (j ->> 'session_id')::bigint,
                   j ->> 'config_json', (j ->> 'created_at')::timestamptz
            FROM (SELECT to_jsonb(c) AS j FROM config_history AS c) AS history
            ORDER BY 1 NULLS LAST
            """
        )
        let table = "old config_history"
        return try (0..<rows.rowCount).map { row in
            Config(
                id: try rows.decodeIfPresent(Int64.self, row, 0, in: table),
                projectID: try rows.decodeIfPresent(Int64.self, row, 1, in: table),
                sessionID: try rows.decodeIfPresent(Int64.self, row, 2, in: table),
                json: try rows.decodeIfPresent(String.self, row, 3, in: table),
                createdAt: try rows.decodeIfPresent(Timestamp.self, row, 4, in: table)
            )
        }
    }

    /// Streams every file row, by session and id, 10,000 at a time, through a cursor: one pass over the table,
    /// whatever its size.
    package func files(_ body: ([File]) throws -> Void) throws {
        try connection.transaction {
            try connection.executeScript(
                """
                DECLARE old_files NO SCROLL CURSOR FOR
                SELECT id, session_id, local_path, s3_key, file_size, status, retry_count, error_message,
                       uploaded_at::timestamptz
                FROM file_uploads ORDER BY session_id, id
                """
            )
            let table = "old file_uploads"
            while true {
                let rows = try connection.execute("FETCH 10000 FROM old_files")
                guard rows.rowCount > 0 else { break }
                try body(
                    try (0..<rows.rowCount).map { row in
                        File(
                            id: try rows.decode(Int64.self, row, 0, in: table),
                            sessionID: try rows.decodeIfPresent(Int64.self, row, 1, in: table),
                            localPath: try rows.decodeIfPresent(String.self, row, 2, in: table),
                            key: try rows.decodeIfPresent(String.self, row, 3, in: table),
                            size: try rows.decodeIfPresent(Int64.self, row, 4, in: table),
                            status: try rows.decodeIfPresent(String.self, row, 5, in: table),
                            retryCount: try rows.decodeIfPresent(Int.self, row, 6, in: table) ?? 0,
                            errorMessage: try rows.decodeIfPresent(String.self, row, 7, in: table),
                            uploadedAt: try rows.decodeIfPresent(Timestamp.self, row, 8, in: table)
                        )
                    }
                )
            }
        }
    }
}
