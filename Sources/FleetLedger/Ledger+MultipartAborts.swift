import FleetSystem
import Foundation

/// A multipart upload the bucket holds open (neither completed nor aborted), as ListMultipartUploads names it.
package struct OpenMultipartUpload: Sendable, Equatable {
    package var bucket: String
    package var key: String
    package var uploadID: String
    /// When S3 created it; `nil` when the listing did not say.
    package var initiated: Timestamp?

    package init(bucket: String, key: String, uploadID: String, initiated: Timestamp?) {
        self.bucket = bucket
        self.key = key
        self.uploadID = uploadID
        self.initiated = initiated
    }
}

extension Ledger {
    /// Of `uploads`, the ids some row of any project owns: a `file_uploads` row that records it as its
    /// `multipart_upload_id`, or an `upload_parts` row that sent a part of it. Those are resumed or aborted by
    /// the upload that owns them; the others were created by a process that died before recording them.
    package func ownedMultipartUploads(_ uploads: [OpenMultipartUpload]) throws -> Set<String> {
        guard !uploads.isEmpty else { return [] }
        let buckets = PGTextArray(uploads.map(\.bucket))
        let keys = PGTextArray(uploads.map(\.key))
        let ids = PGTextArray(uploads.map(\.uploadID))
        // fleet_owned_multipart_uploads looks at every project's and device's rows, found by (project, key), the
        // index file_uploads has: a project's row may own an upload under another project's prefix when two
        // projects share a bucket, and a device role must not take another device's upload for abandoned.
        let rows = try connection.execute(
            "SELECT fleet_owned_multipart_uploads(\(buckets)::text[], \(keys)::text[], \(ids)::text[])"
        )
        return Set(try (0..<rows.rowCount).map { try rows.decode(String.self, $0, 0, in: "file_uploads") })
    }

    /// Records that `upload` was aborted by `holder` (`hostname:pid`) because no row owned it. Recording the
    /// same upload twice (two processes aborting it at once) keeps the first record.
    package func recordMultipartAbort(
        _ upload: OpenMultipartUpload,
        projectID: Int64,
        deviceID: Int64?,
        holder: String
    ) throws {
        try connection.execute(
            """
            INSERT INTO multipart_aborts (project_id, device_id, bucket, s3_key, upload_id, initiated_at, aborted_by)
            VALUES (\(projectID), \(deviceID), \(upload.bucket), \(upload.key), \(upload.uploadID),
                    \(upload.initiated)::timestamptz, \(holder))
            ON CONFLICT (project_id, bucket, upload_id) DO NOTHING
            """
        )
    }

    /// The buckets the project's uploads may have left a multipart upload in, for a project whose files name
    /// their bucket by their first directory: those of the files of the sessions of the last `days` days (an
    /// upload killed before the ledger recorded its id leaves no trace but its row; read through the sessions'
    /// index, never the whole history) and those of the objects the ledger recorded without sending them
    /// (`stored_objects`, one index probe per bucket).
    package func storedBuckets(projectID: Int64, days: Int = 30) throws -> [String] {
        let rows = try connection.execute(
            """
            WITH RECURSIVE b (bucket) AS (
                SELECT min(bucket) FROM stored_objects WHERE project_id = \(projectID)
                UNION ALL
                SELECT (SELECT min(bucket) FROM stored_objects WHERE project_id = \(projectID) AND bucket > b.bucket)
                FROM b WHERE b.bucket IS NOT NULL
            )
            SELECT bucket FROM b WHERE bucket IS NOT NULL
            UNION
            SELECT DISTINCT f.bucket FROM sync_sessions AS s JOIN file_uploads AS f ON f.session_id = s.id
            WHERE s.project_id = \(projectID) AND s.started_at > now() - make_interval(days => \(days))
            ORDER BY 1
            """
        )
        return try (0..<rows.rowCount).map { try rows.decode(String.self, $0, 0, in: "stored_objects") }
    }
}
