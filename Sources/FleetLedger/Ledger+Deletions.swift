import FleetSystem
import Foundation

/// An uploaded file `deletion.after_upload` may remove: one `file_uploads` row whose upload S3 verified and
/// that is still its key's latest record.
package struct AfterUploadCandidate: Sendable, Equatable {
    package var id: Int64
    package var createdAt: String
    /// The session that uploaded it.
    package var sessionID: Int64
    /// The bytes to open.
    package var path: [UInt8]
    /// The path as the ledger shows it (invalid UTF-8 as `%XX`).
    package var displayPath: String
    package var bucket: String
    package var key: String
    /// Size and mtime when it was uploaded.
    package var size: Int64
    package var mtime: Timestamp
    /// The device and inode the upload read, when it recorded them.
    package var device: UInt64?
    package var inode: UInt64?
}

/// A file a session recorded `skipped` because the ledger stores its object already (an earlier run uploaded it,
/// perhaps one killed before it could delete the local copy), with the checksum S3 verified for that object.
package struct StoredSkippedFile: Sendable, Equatable {
    package var id: Int64
    /// The bytes to open.
    package var path: [UInt8]
    /// The path as the ledger shows it (invalid UTF-8 as `%XX`).
    package var displayPath: String
    package var bucket: String
    package var key: String
    /// Size and mtime the scan found, which are the stored object's.
    package var size: Int64
    package var mtime: Timestamp
    /// The stored object's SHA-256, hex: the local file is deleted only if it hashes to this.
    package var checksum: String
}

/// One local file to delete, as `local_deletions` records it.
package struct LocalDeletionRecord: Sendable, Equatable {
    /// The bytes to open.
    package var path: [UInt8]
    package var displayPath: String
    package var size: Int64
    package var mtime: Timestamp
    /// Whether the ledger confirmed its upload before it was deleted.
    package var wasUploaded: Bool
    /// The session that uploaded it; `nil` to take it from the key's latest record (uploaded files) or leave it empty.
    package var sessionID: Int64?
    /// Where it went or would go; empty when the file cannot have a key.
    package var bucket: String
    package var key: String

    package init(
        path: [UInt8],
        displayPath: String,
        size: Int64,
        mtime: Timestamp,
        wasUploaded: Bool,
        sessionID: Int64?,
        bucket: String,
        key: String
    ) {
        self.path = path
        self.displayPath = displayPath
        self.size = size
        self.mtime = mtime
        self.wasUploaded = wasUploaded
        self.sessionID = sessionID
        self.bucket = bucket
        self.key = key
    }
}

extension Ledger {
    /// The files of this device's sessions that `deletion.after_upload` may remove now, oldest examined first.
    ///
    /// A row qualifies when it is `uploaded` with a SHA-256 checksum, finished at or before `finishedBefore`, its
    /// local copy is not known to be gone (`local_deleted_at` null), its path lies under one of `rootPrefixes`,
    /// and the key's latest record is the same object (size, mtime and checksum): a key overwritten since by
    /// another file no longer holds these bytes, so the local copy is all there is.
    ///
    /// Rows come in `updated_at` order: rows examined and kept (`deferAfterUploadCandidates`) go to the back, so a
    /// pile of files that cannot be deleted never hides the others from the `limit`.
    ///
    /// - Parameter rootPrefixes: each source directory with a trailing `/`.
    package func afterUploadCandidates(
        projectID: Int64,
        deviceID: Int64,
        finishedBefore: Timestamp,
        rootPrefixes: [String],
        limit: Int
    ) throws -> [AfterUploadCandidate] {
        let rows = try connection.execute(
            """
            SELECT f.id, f.created_at, f.session_id, f.local_path, f.path_bytes, f.bucket, f.s3_key, f.size_bytes,
                   f.mtime, f.file_device, f.file_inode
            FROM file_uploads f
            JOIN sync_sessions s ON s.id = f.session_id AND s.device_id = \(deviceID)
            JOIN LATERAL fleet_latest_object(f.project_id, f.bucket, f.s3_key) o
              ON o.size_bytes = f.size_bytes AND o.mtime = f.mtime AND o.checksum_sha256 = f.checksum_sha256
            WHERE f.project_id = \(projectID) AND f.status = 'uploaded' AND f.checksum_sha256 IS NOT NULL
              AND f.local_deleted_at IS NULL AND f.finished_at IS NOT NULL
              AND f.finished_at <= \(finishedBefore)::timestamptz
              AND EXISTS (SELECT 1 FROM unnest(\(PGTextArray(rootPrefixes))::text[]) AS r (prefix)
                          WHERE starts_with(f.local_path, r.prefix))
            ORDER BY f.updated_at, f.id
            LIMIT \(limit)
            """
        )
        var candidates: [AfterUploadCandidate] = []
        candidates.reserveCapacity(rows.rowCount)
        for row in 0..<rows.rowCount {
            let display = try rows.decode(String.self, row, 3, in: "file_uploads")
            let bytes = try rows.decodeIfPresent(String.self, row, 4, in: "file_uploads")
            candidates.append(
                AfterUploadCandidate(
                    id: try rows.decode(Int64.self, row, 0, in: "file_uploads"),
                    createdAt: try rows.decode(String.self, row, 1, in: "file_uploads"),
                    sessionID: try rows.decode(Int64.self, row, 2, in: "file_uploads"),
                    path: bytes.map(Ledger.decodeByteaHex) ?? Array(display.utf8),
                    displayPath: display,
                    bucket: try rows.decode(String.self, row, 5, in: "file_uploads"),
                    key: try rows.decode(String.self, row, 6, in: "file_uploads"),
                    size: try rows.decode(Int64.self, row, 7, in: "file_uploads"),
                    mtime: try rows.decode(Timestamp.self, row, 8, in: "file_uploads"),
                    device: try rows.decodeIfPresent(Int64.self, row, 9, in: "file_uploads").map(
                        UInt64.init(bitPattern:)
                    ),
                    inode: try rows.decodeIfPresent(Int64.self, row, 10, in: "file_uploads").map(
                        UInt64.init(bitPattern:)
                    )
                )
            )
        }
        return candidates
    }

    /// The session's files recorded `skipped` because the key's latest record is their object with the same size and
    /// mtime and a verified SHA-256, whose local copy is not known to be gone; in id order after `afterID`.
    ///
    /// Files skipped because the bucket listing had their key (`skip_reason` `bucket`) are not among them: the
    /// ledger never verified those bytes. Nor is a file whose key another project (sharing the prefix) has
    /// written since: the bucket no longer holds this copy (`fleet_key_written_since` looks at every project, also
    /// for a device role that may not read them).
    package func storedSkippedFiles(sessionID: Int64, afterID: Int64, limit: Int) throws -> [StoredSkippedFile] {
        let rows = try connection.execute(
            """
            SELECT f.id, f.local_path, f.path_bytes, f.bucket, f.s3_key, f.size_bytes, f.mtime, o.checksum_sha256
            FROM file_uploads f
            JOIN LATERAL fleet_latest_object(f.project_id, f.bucket, f.s3_key) o
              ON o.size_bytes = f.size_bytes AND o.mtime = f.mtime
            WHERE f.session_id = \(sessionID) AND f.status = 'skipped' AND f.id > \(afterID)
              AND f.skip_reason = 'ledger' AND f.local_deleted_at IS NULL AND o.checksum_sha256 IS NOT NULL
              AND NOT fleet_key_written_since(o.project_id, o.bucket, o.s3_key, o.uploaded_at)
            ORDER BY f.id
            LIMIT \(limit)
            """
        )
        return try (0..<rows.rowCount).map { row in
            let display = try rows.decode(String.self, row, 1, in: "file_uploads")
            let bytes = try rows.decodeIfPresent(String.self, row, 2, in: "file_uploads")
            return StoredSkippedFile(
                id: try rows.decode(Int64.self, row, 0, in: "file_uploads"),
                path: bytes.map(Ledger.decodeByteaHex) ?? Array(display.utf8),
                displayPath: display,
                bucket: try rows.decode(String.self, row, 3, in: "file_uploads"),
                key: try rows.decode(String.self, row, 4, in: "file_uploads"),
                size: try rows.decode(Int64.self, row, 5, in: "file_uploads"),
                mtime: try rows.decode(Timestamp.self, row, 6, in: "file_uploads"),
                checksum: try rows.decode(String.self, row, 7, in: "object_records")
            )
        }
    }

    /// Sends rows examined and kept (the file changed, or cannot be deleted safely) to the back of the
    /// `afterUploadCandidates` queue by touching `updated_at`.
    package func deferAfterUploadCandidates(_ rows: [AfterUploadCandidate]) throws {
        guard !rows.isEmpty else { return }
        try connection.execute(
            """
            UPDATE file_uploads f SET updated_at = now()
            FROM unnest(\(PGTextArray(rows.map { String($0.id) }))::bigint[],
                        \(PGTextArray(rows.map(\.createdAt)))::timestamptz[]) AS r (id, created_at)
            WHERE f.id = r.id AND f.created_at = r.created_at
            """
        )
    }

    /// Records that the local copies of these uploads are gone although no policy deleted them (removed by
    /// hand, say): `local_deleted_at` is set, so they are not examined again, and no `local_deletions` row is
    /// written, since that table lists only what fleet-upload deleted.
    package func markLocalCopiesGone(_ rows: [AfterUploadCandidate]) throws {
        guard !rows.isEmpty else { return }
        try connection.execute(
            """
            UPDATE file_uploads f SET local_deleted_at = now(), updated_at = now()
            FROM unnest(\(PGTextArray(rows.map { String($0.id) }))::bigint[],
                        \(PGTextArray(rows.map(\.createdAt)))::timestamptz[]) AS r (id, created_at)
            WHERE f.id = r.id AND f.created_at = r.created_at AND f.local_deleted_at IS NULL
            """
        )
    }

    // MARK: - Intent, unlink, confirm

    /// Records deletions about to happen, before any file goes: one `local_deletions` row each in state
    /// `intended`, held by this process.
    ///
    /// An uploaded file recorded without a session gets the session of the key's latest record.
    ///
    /// - Parameters:
    ///   - deletions: The files, each path at most once.
    ///   - reason: `after_upload`, `age` or `emergency`.
    /// - Returns: each file's `local_deletions` id, by path.
    package func intendDeletions(
        _ deletions: [LocalDeletionRecord],
        reason: String,
        projectID: Int64,
        deviceID: Int64
    ) throws -> [[UInt8]: Int64] {
        guard !deletions.isEmpty else { return [:] }
        let paths = PGTextArray(deletions.map(\.displayPath))
        let pathBytes = PGTextArray(
            deletions.map { String(validating: $0.path, as: UTF8.self) == nil ? "\\x" + $0.path.hexString : "" }
        )
        let sizes = PGTextArray(deletions.map { String($0.size) })
        let mtimes = PGTextArray(deletions.map(\.mtime.iso8601))
        let uploaded = PGTextArray(deletions.map { $0.wasUploaded ? "t" : "f" })
        let sessions = PGTextArray(deletions.map { $0.sessionID.map(String.init) ?? "" })
        let buckets = PGTextArray(deletions.map(\.bucket))
        let keys = PGTextArray(deletions.map(\.key))
        let rows = try connection.execute(
            """
            INSERT INTO local_deletions (device_id, session_id, local_path, local_path_bytes, size_bytes, mtime,
                                         reason, was_uploaded, bucket, s3_key, state, holder)
            SELECT \(deviceID),
                   coalesce(nullif(d.session_id, '')::bigint,
                            (SELECT o.session_id FROM fleet_latest_object(\(projectID), d.bucket, d.s3_key) o
                             WHERE d.was_uploaded AND o.size_bytes = d.size_bytes AND o.mtime = d.mtime)),
                   d.local_path, nullif(d.path_bytes, '')::bytea, d.size_bytes, d.mtime, \(reason), d.was_uploaded,
                   nullif(d.bucket, ''), nullif(d.s3_key, ''), 'intended', \(ClaimHolder.thisProcess)
            FROM unnest(\(paths)::text[], \(pathBytes)::text[], \(sizes)::bigint[], \(mtimes)::timestamptz[],
                        \(uploaded)::boolean[], \(sessions)::text[], \(buckets)::text[], \(keys)::text[])
                 AS d (local_path, path_bytes, size_bytes, mtime, was_uploaded, session_id, bucket, s3_key)
            RETURNING id, local_path, local_path_bytes
            """
        )
        var ids: [[UInt8]: Int64] = [:]
        for row in 0..<rows.rowCount {
            let display = try rows.decode(String.self, row, 1, in: "local_deletions")
            let bytes = try rows.decodeIfPresent(String.self, row, 2, in: "local_deletions")
            ids[bytes.map(Ledger.decodeByteaHex) ?? Array(display.utf8)] = try rows.decode(
                Int64.self,
                row,
                0,
                in: "local_deletions"
            )
        }
        return ids
    }

    /// Settles intents once their files were unlinked or kept, in one transaction: the deleted ones become
    /// deletions (and set `local_deleted_at` on every row of this device's sessions that recorded the same file:
    /// path, bucket, key, size and mtime); the kept ones are withdrawn.
    ///
    /// - Parameters:
    ///   - deleted: Intents whose file is gone.
    ///   - kept: Intents whose file stayed.
    package func settleDeletions(deleted: [Int64], kept: [Int64], projectID: Int64, deviceID: Int64) throws {
        guard !deleted.isEmpty || !kept.isEmpty else { return }
        try connection.transaction {
            if !kept.isEmpty {
                try connection.execute(
                    """
                    DELETE FROM local_deletions
                    WHERE id = ANY(\(PGTextArray(kept.map(String.init)))::bigint[]) AND state = 'intended'
                    """
                )
            }
            guard !deleted.isEmpty else { return }
            try connection.execute(
                """
                WITH confirmed AS (
                    UPDATE local_deletions SET state = 'deleted', holder = NULL, deleted_at = now()
                    WHERE id = ANY(\(PGTextArray(deleted.map(String.init)))::bigint[]) AND state = 'intended'
                    RETURNING local_path, size_bytes, mtime, bucket, s3_key
                )
                UPDATE file_uploads f SET local_deleted_at = now(), updated_at = now()
                FROM confirmed d
                WHERE f.project_id = \(projectID) AND f.bucket = d.bucket AND f.s3_key = d.s3_key
                  AND f.local_path = d.local_path AND f.size_bytes = d.size_bytes AND f.mtime = d.mtime
                  AND f.local_deleted_at IS NULL
                  AND f.session_id IN (SELECT id FROM sync_sessions WHERE device_id = \(deviceID))
                """
            )
        }
    }

    /// Intents on this device that are not settled: each with its file's path, the process that holds it and
    /// when it was recorded.
    package func openDeletionIntents(
        deviceID: Int64
    ) throws -> [(id: Int64, path: [UInt8], holder: String, recordedAt: Timestamp)] {
        let rows = try connection.execute(
            """
            SELECT id, local_path, local_path_bytes, holder, deleted_at FROM local_deletions
            WHERE device_id = \(deviceID) AND state = 'intended'
            ORDER BY id
            """
        )
        return try (0..<rows.rowCount).map { row in
            let display = try rows.decode(String.self, row, 1, in: "local_deletions")
            let bytes = try rows.decodeIfPresent(String.self, row, 2, in: "local_deletions")
            return (
                try rows.decode(Int64.self, row, 0, in: "local_deletions"),
                bytes.map(Ledger.decodeByteaHex) ?? Array(display.utf8),
                try rows.decode(String.self, row, 3, in: "local_deletions"),
                try rows.decode(Timestamp.self, row, 4, in: "local_deletions")
            )
        }
    }
}
