import FleetSystem
import Foundation

/// A multipart upload the ledger knows was started for a key and never completed, with the parts S3
/// acknowledged for it.
package struct RecordedMultipartUpload: Sendable, Equatable {
    package var uploadID: String
    /// The file the upload was sending: its size, mtime and part size when the upload started.
    package var size: Int64
    package var mtime: Timestamp
    /// `nil` when it was never recorded: the upload can then only be aborted, not resumed.
    package var partSize: Int64?
    /// Rows that sent parts of it (several when a later run took it over), with their holders.
    package var holders: [Holder]
    /// Every part recorded for it, one per part number (the latest when a part was sent twice).
    package var parts: [RecordedPart]

    package struct Holder: Sendable, Equatable {
        package var fileID: Int64
        package var status: String
        /// `host:pid` while the row is `uploading`.
        package var claimedBy: String?
        package var claimedAt: Timestamp?
    }
}

/// One part S3 acknowledged for a multipart upload, as `upload_parts` records it.
package struct RecordedPart: Sendable, Equatable {
    package var partNumber: Int
    package var etag: String
    package var checksumSHA256: String?
    package var size: Int64

    package init(partNumber: Int, etag: String, checksumSHA256: String?, size: Int64) {
        self.partNumber = partNumber
        self.etag = etag
        self.checksumSHA256 = checksumSHA256
        self.size = size
    }
}

extension Ledger {
    /// The multipart uploads recorded for a key that no row records as completed, newest first. A pending row a
    /// claim range holds (a file claimed again, not started yet) shows as `uploading` by the range's holder.
    package func unfinishedMultipartUploads(
        projectID: Int64,
        bucket: String,
        key: String
    ) throws
        -> [RecordedMultipartUpload]
    {
        let rows = try connection.execute(
            """
            SELECT f.multipart_upload_id, f.size_bytes, f.mtime, f.part_size_bytes, f.id,
                   CASE WHEN k.holder IS NOT NULL THEN 'uploading' ELSE f.status END,
                   coalesce(k.holder, f.claimed_by), coalesce(k.claimed_at, f.claimed_at)
            FROM file_uploads AS f
            LEFT JOIN LATERAL (
                SELECT r.holder, r.claimed_at FROM (
                    SELECT c.holder, c.claimed_at, c.last_id FROM file_claims AS c
                    WHERE c.session_id = f.session_id AND c.first_id <= f.id ORDER BY c.first_id DESC LIMIT 1
                ) AS r
                WHERE r.last_id >= f.id
            ) AS k ON f.status = 'pending'
            WHERE f.project_id = \(projectID) AND f.s3_key = \(key) AND f.bucket = \(bucket)
              AND f.multipart_upload_id IS NOT NULL AND f.status <> 'uploaded'
              AND NOT EXISTS (
                  SELECT 1 FROM file_uploads AS u
                  WHERE u.project_id = f.project_id AND u.s3_key = f.s3_key AND u.bucket = f.bucket
                    AND u.multipart_upload_id = f.multipart_upload_id AND u.status = 'uploaded'
              )
            ORDER BY f.updated_at DESC, f.id DESC
            """
        )
        var uploads: [RecordedMultipartUpload] = []
        for row in 0..<rows.rowCount {
            let uploadID = try rows.decode(String.self, row, 0, in: "file_uploads")
            let holder = RecordedMultipartUpload.Holder(
                fileID: try rows.decode(Int64.self, row, 4, in: "file_uploads"),
                status: try rows.decode(String.self, row, 5, in: "file_uploads"),
                claimedBy: try rows.decodeIfPresent(String.self, row, 6, in: "file_uploads"),
                claimedAt: try rows.decodeIfPresent(Timestamp.self, row, 7, in: "file_uploads")
            )
            if let index = uploads.firstIndex(where: { $0.uploadID == uploadID }) {
                uploads[index].holders.append(holder)
                continue
            }
            uploads.append(
                RecordedMultipartUpload(
                    uploadID: uploadID,
                    size: try rows.decode(Int64.self, row, 1, in: "file_uploads"),
                    mtime: try rows.decode(Timestamp.self, row, 2, in: "file_uploads"),
                    // Recorded with the upload id (`recordMultipartUpload`), unless that recording failed while the
                    // result still named the upload: then the upload cannot be resumed, only aborted.
                    partSize: try rows.decodeIfPresent(Int64.self, row, 3, in: "file_uploads"),
                    holders: [holder],
                    parts: []
                )
            )
        }
        guard !uploads.isEmpty else { return [] }
        // By the primary key's prefix: the rows that sent parts, then the upload.
        let parts = try connection.execute(
            """
            SELECT DISTINCT ON (multipart_upload_id, part_number) multipart_upload_id, part_number, etag,
                   checksum_sha256, size_bytes
            FROM upload_parts
            WHERE file_upload_id = ANY(\(PGTextArray(uploads.flatMap { $0.holders.map { String($0.fileID) } }))::bigint[])
              AND multipart_upload_id = ANY(\(PGTextArray(uploads.map(\.uploadID)))::text[])
            ORDER BY multipart_upload_id, part_number, uploaded_at DESC
            """
        )
        for row in 0..<parts.rowCount {
            let uploadID = try parts.decode(String.self, row, 0, in: "upload_parts")
            guard let index = uploads.firstIndex(where: { $0.uploadID == uploadID }) else { continue }
            uploads[index].parts.append(
                RecordedPart(
                    partNumber: try parts.decode(Int.self, row, 1, in: "upload_parts"),
                    etag: try parts.decode(String.self, row, 2, in: "upload_parts"),
                    checksumSHA256: try parts.decodeIfPresent(String.self, row, 3, in: "upload_parts"),
                    size: try parts.decode(Int64.self, row, 4, in: "upload_parts")
                )
            )
        }
        return uploads
    }

    /// Records on the file's row the multipart upload it is sending, before any part is sent, and marks the row
    /// `uploading` by this process if a claim range held it: a run that finds the upload unfinished for the key
    /// sees who may still be sending it.
    package func recordMultipartUpload(_ job: UploadJob, uploadID: String, partSize: Int64) throws {
        try connection.execute(
            """
            UPDATE file_uploads SET multipart_upload_id = \(uploadID), part_size_bytes = \(partSize), updated_at = now(),
                claimed_by = CASE WHEN status = 'pending' THEN \(ClaimHolder.thisProcess) ELSE claimed_by END,
                claimed_at = CASE WHEN status = 'pending' THEN now() ELSE claimed_at END,
                status = CASE WHEN status = 'pending' THEN 'uploading' ELSE status END
            WHERE id = \(job.id) AND created_at = \(job.createdAt)::timestamptz
            """
        )
    }

    /// Records one part as S3 acknowledged it.
    package func recordPart(_ part: RecordedPart, of job: UploadJob, uploadID: String) throws {
        try connection.execute(
            """
            INSERT INTO upload_parts (file_upload_id, file_created_at, multipart_upload_id, part_number, size_bytes,
                                      etag, checksum_sha256)
            VALUES (\(job.id), \(job.createdAt)::timestamptz, \(uploadID), \(part.partNumber), \(part.size),
                    \(part.etag), \(part.checksumSHA256))
            ON CONFLICT (file_upload_id, multipart_upload_id, part_number) DO UPDATE
                SET size_bytes = EXCLUDED.size_bytes, etag = EXCLUDED.etag, checksum_sha256 = EXCLUDED.checksum_sha256,
                    uploaded_at = now()
            """
        )
    }

    /// Forgets an upload S3 no longer holds (aborted, or never to be completed): no row points at it any more and
    /// its parts are deleted.
    package func forgetMultipartUpload(projectID: Int64, bucket: String, key: String, uploadID: String) throws {
        try connection.transaction {
            let rows = try connection.execute(
                """
                UPDATE file_uploads SET multipart_upload_id = NULL, updated_at = now()
                WHERE project_id = \(projectID) AND s3_key = \(key) AND bucket = \(bucket)
                  AND multipart_upload_id = \(uploadID) AND status <> 'uploaded'
                RETURNING id
                """
            )
            let ids = try (0..<rows.rowCount).map { String(try rows.decode(Int64.self, $0, 0, in: "file_uploads")) }
            try connection.execute(
                """
                DELETE FROM upload_parts
                WHERE file_upload_id = ANY(\(PGTextArray(ids))::bigint[]) AND multipart_upload_id = \(uploadID)
                """
            )
        }
    }
}

extension Ledger {
    /// The parts recorded for the multipart upload the row records (by whichever row of the key sent them, the
    /// latest of each part number), in part order; none when the row records no upload.
    package func recordedParts(of job: UploadJob) throws -> [RecordedPart] {
        let rows = try connection.execute(
            """
            SELECT DISTINCT ON (p.part_number) p.part_number, p.etag, p.checksum_sha256, p.size_bytes
            FROM file_uploads AS f
            JOIN file_uploads AS h
              ON h.project_id = f.project_id AND h.bucket = f.bucket AND h.s3_key = f.s3_key
             AND h.multipart_upload_id = f.multipart_upload_id
            JOIN upload_parts AS p
              ON p.file_upload_id = h.id AND p.file_created_at = h.created_at
             AND p.multipart_upload_id = f.multipart_upload_id
            WHERE f.id = \(job.id) AND f.created_at = \(job.createdAt)::timestamptz
            ORDER BY p.part_number, p.uploaded_at DESC
            """
        )
        return try (0..<rows.rowCount).map { row in
            RecordedPart(
                partNumber: try rows.decode(Int.self, row, 0, in: "upload_parts"),
                etag: try rows.decode(String.self, row, 1, in: "upload_parts"),
                checksumSHA256: try rows.decodeIfPresent(String.self, row, 2, in: "upload_parts"),
                size: try rows.decode(Int64.self, row, 3, in: "upload_parts")
            )
        }
    }
}
