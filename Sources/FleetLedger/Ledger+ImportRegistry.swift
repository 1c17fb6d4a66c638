import FleetSystem
import Foundation

/// An object an earlier tool uploaded, as its registry describes it: recorded in `stored_objects` without a
/// checksum, so that neither a session nor the agent sends it again.
package struct ImportedObject: Sendable, Equatable {
    package var bucket: String
    package var key: String
    package var size: Int64
    package var mtime: Timestamp
    /// When the earlier tool uploaded it, if it said.
    package var uploadedAt: Timestamp?

    package init(bucket: String, key: String, size: Int64, mtime: Timestamp, uploadedAt: Timestamp?) {
        self.bucket = bucket
        self.key = key
        self.size = size
        self.mtime = mtime
        self.uploadedAt = uploadedAt
    }
}

/// A file an earlier tool had queued for upload, for the agent's next start.
package struct QueuedFile: Sendable, Equatable {
    package var localPath: String
    package var size: Int64
    package var mtime: Timestamp
    package var detectedAt: Timestamp?
    package var attempts: Int

    package init(localPath: String, size: Int64, mtime: Timestamp, detectedAt: Timestamp?, attempts: Int) {
        self.localPath = localPath
        self.size = size
        self.mtime = mtime
        self.detectedAt = detectedAt
        self.attempts = attempts
    }
}

extension Ledger {
    /// Records the registry's objects in `stored_objects` (`imported_from` = `tvm_registry`) in one transaction.
    /// A key the ledger already holds for the project is left as it is: an upload this tool made knows more
    /// (its checksum), and an object imported before is the same one.
    ///
    /// - Returns: how many were recorded now; the rest were known already.
    package func importRegistry(projectID: Int64, objects: [ImportedObject]) throws -> Int {
        guard !objects.isEmpty else { return 0 }
        return try connection.transaction {
            try connection.execute(
                """
                CREATE TEMPORARY TABLE registry_objects (bucket text, s3_key text, size_bytes bigint, mtime timestamptz,
                                                         uploaded_at timestamptz) ON COMMIT DROP
                """
            )
            try connection.copyIn("COPY registry_objects FROM STDIN") { rows in
                for object in objects {
                    try rows.row([
                        .text(object.bucket), .text(object.key), .text(String(object.size)),
                        .text(object.mtime.iso8601),
                        object.uploadedAt.map { .text($0.iso8601) } ?? .null,
                    ])
                }
            }
            return try connection.execute(
                """
                INSERT INTO stored_objects (project_id, bucket, s3_key, size_bytes, mtime, uploaded_at, imported_from)
                SELECT DISTINCT ON (bucket, s3_key) \(projectID)::bigint, bucket, s3_key, size_bytes, mtime,
                       coalesce(uploaded_at, now()), 'tvm_registry'
                FROM registry_objects AS r
                WHERE NOT EXISTS (SELECT 1 FROM fleet_latest_object(\(projectID), r.bucket, r.s3_key))
                ORDER BY bucket, s3_key, uploaded_at DESC NULLS LAST
                ON CONFLICT (project_id, bucket, s3_key) DO NOTHING
                """
            ).affectedRows
        }
    }

    /// Records files an earlier tool had queued, for the device's agent to take up when it starts, in one
    /// transaction. A path already queued for the device is left as it is.
    ///
    /// - Returns: how many were queued now.
    package func importQueue(deviceID: Int64, projectID: Int64, files: [QueuedFile]) throws -> Int {
        guard !files.isEmpty else { return 0 }
        return try connection.transaction {
            try connection.execute(
                """
                INSERT INTO queued_files (device_id, project_id, local_path, size_bytes, mtime, detected_at, attempts)
                SELECT \(deviceID)::bigint, \(projectID)::bigint, local_path, size_bytes, mtime, nullif(detected_at, '')::timestamptz,
                       attempts
                FROM unnest(\(PGTextArray(files.map(\.localPath)))::text[],
                            \(PGTextArray(files.map { String($0.size) }))::bigint[],
                            \(PGTextArray(files.map(\.mtime.iso8601)))::timestamptz[],
                            \(PGTextArray(files.map { $0.detectedAt?.iso8601 ?? "" }))::text[],
                            \(PGTextArray(files.map { String($0.attempts) }))::integer[])
                     AS u (local_path, size_bytes, mtime, detected_at, attempts)
                ON CONFLICT (device_id, local_path) DO NOTHING
                """
            ).affectedRows
        }
    }

    /// The files queued for the device by an import, oldest first.
    package func queuedFiles(deviceID: Int64) throws -> [QueuedFile] {
        let rows = try connection.execute(
            """
            SELECT local_path, size_bytes, mtime, detected_at, attempts FROM queued_files
            WHERE device_id = \(deviceID) ORDER BY detected_at NULLS LAST, local_path
            """
        )
        return try (0..<rows.rowCount).map { row in
            QueuedFile(
                localPath: try rows.decode(String.self, row, 0, in: "queued_files"),
                size: try rows.decode(Int64.self, row, 1, in: "queued_files"),
                mtime: try rows.decode(Timestamp.self, row, 2, in: "queued_files"),
                detectedAt: try rows.decodeIfPresent(Timestamp.self, row, 3, in: "queued_files"),
                attempts: try rows.decode(Int.self, row, 4, in: "queued_files")
            )
        }
    }

    /// Forgets queued files of the device: settled (uploaded or stored), or gone.
    @discardableResult
    package func forgetQueuedFiles(deviceID: Int64, paths: [String]) throws -> Int {
        guard !paths.isEmpty else { return 0 }
        return try connection.execute(
            """
            DELETE FROM queued_files WHERE device_id = \(deviceID) AND local_path = ANY(\(PGTextArray(paths))::text[])
            """
        ).affectedRows
    }
}
