import FleetSystem
import Foundation

/// A database of the Data Uploader (the session tools before fleet-upload), built from its own schema, for the
/// tests of `master import-state --from-database`.
package enum DataUploaderFixture {
    /// The old schema: serial ids, the foreign keys the tools used, times without a zone.
    package static let schema = """
        CREATE TABLE projects (
            id serial PRIMARY KEY, project_name text NOT NULL UNIQUE, bucket_name text NOT NULL, aws_region text,
            created_at timestamp DEFAULT now());
        CREATE TABLE sync_sessions (
            id serial PRIMARY KEY, project_id integer NOT NULL REFERENCES projects (id), local_directory text NOT NULL,
            s3_prefix text, status text NOT NULL, total_files integer DEFAULT 0, files_uploaded integer DEFAULT 0,
            files_failed integer DEFAULT 0, files_skipped integer DEFAULT 0, started_at timestamp DEFAULT now(),
            completed_at timestamp);
        CREATE TABLE file_uploads (
            id serial PRIMARY KEY, session_id integer NOT NULL REFERENCES sync_sessions (id), local_path text NOT NULL,
            s3_key text NOT NULL, file_size bigint, status text NOT NULL DEFAULT 'pending', retry_count integer DEFAULT 0,
            error_message text, uploaded_at timestamp);
        CREATE INDEX file_uploads_session ON file_uploads (session_id);
        CREATE TABLE config_history (
            id serial PRIMARY KEY, project_id integer REFERENCES projects (id),
            session_id integer REFERENCES sync_sessions (id), config_json jsonb NOT NULL,
            created_at timestamp DEFAULT now());
        """

    package struct File {
        package var path: String
        package var key: String
        package var size: Int
        package var status: String
        package var retryCount = 0
        package var error: String?

        package init(path: String, key: String, size: Int, status: String, retryCount: Int = 0, error: String? = nil) {
            self.path = path
            self.key = key
            self.size = size
            self.status = status
            self.retryCount = retryCount
            self.error = error
        }
    }

    package struct Session {
        package var directory: String
        package var prefix: String
        package var status: String
        package var files: [File]
        /// Started this many hours ago; finished an hour later unless `in_progress`.
        package var startedHoursAgo: Int

        package init(directory: String, prefix: String, status: String, files: [File], startedHoursAgo: Int) {
            self.directory = directory
            self.prefix = prefix
            self.status = status
            self.files = files
            self.startedHoursAgo = startedHoursAgo
        }
    }

    /// Creates the schema in `database` and one project with its sessions (totals counted from the files, as the
    /// old tool did) and a configuration for the first session.
    package static func create(
        in database: TestDatabase,
        project: String,
        bucket: String,
        region: String,
        sessions: [Session]
    ) throws {
        let connection = try database.connect()
        try connection.executeScript(schema)
        try connection.execute(
            "INSERT INTO projects (project_name, bucket_name, aws_region) VALUES (\(project), \(bucket), \(region))"
        )
        for (index, session) in sessions.enumerated() {
            let count = { (status: String) in session.files.filter { $0.status == status }.count }
            try connection.execute(
                """
                INSERT INTO sync_sessions (project_id, local_directory, s3_prefix, status, total_files, files_uploaded,
                                           files_failed, files_skipped, started_at, completed_at)
                VALUES (1, \(session.directory), \(session.prefix), \(session.status), \(session.files.count),
                        \(count("uploaded")), \(count("failed")), 0,
                        localtimestamp - make_interval(hours => \(session.startedHoursAgo)),
                        CASE WHEN \(session.status) <> 'in_progress'
                             THEN localtimestamp - make_interval(hours => \(session.startedHoursAgo - 1)) END)
                """
            )
            for file in session.files {
                try connection.execute(
                    """
                    INSERT INTO file_uploads (session_id, local_path, s3_key, file_size, status, retry_count, error_message,
                                              uploaded_at)
                    VALUES (\(index + 1), \(file.path), \(file.key), \(file.size), \(file.status), \(file.retryCount),
                            \(file.error),
                            CASE WHEN \(file.status) = 'uploaded'
                                 THEN localtimestamp - make_interval(hours => \(session.startedHoursAgo), mins => -5) END)
                    """
                )
            }
        }
        try connection.execute(
            """
            INSERT INTO config_history (project_id, session_id, config_json)
            VALUES (1, 1, \("{\"local_directory\": \"\(sessions.first?.directory ?? "")\", \"bucket_name\": \"\(bucket)\", \"max_workers\": 15}")::jsonb)
            """
        )
    }
}
