import FleetSystem
import Foundation

/// A local file's object as the ledger would record it once uploaded.
package struct StoredCandidate: Sendable, Equatable {
    package var bucket: String
    package var key: String
    package var size: Int64
    package var mtime: Timestamp

    package init(bucket: String, key: String, size: Int64, mtime: Timestamp) {
        self.bucket = bucket
        self.key = key
        self.size = size
        self.mtime = mtime
    }
}

/// What a heartbeat records about a device.
package struct DeviceHeartbeat: Sendable, Equatable {
    package var disk: DiskUsage?
    /// Files ready (stable) but not uploaded yet, and their bytes.
    package var queueFiles: Int
    package var queueBytes: Int64
    package var agentVersion: String
    /// When this agent last recorded an uploaded file, if it has since it started.
    package var lastUploadAt: Date?

    package init(disk: DiskUsage?, queueFiles: Int, queueBytes: Int64, agentVersion: String, lastUploadAt: Date?) {
        self.disk = disk
        self.lastUploadAt = lastUploadAt
        self.queueFiles = queueFiles
        self.queueBytes = queueBytes
        self.agentVersion = agentVersion
    }
}

extension Ledger {
    /// For each candidate, in order, whether the key's latest record for the project (`fleet_latest_object`) is
    /// that object, with the same size and mtime and a SHA-256 checksum: an upload S3 verified. One round trip for
    /// the whole list.
    ///
    /// - Parameter acceptingImported: Also an object imported from an earlier tool's record (`master
    ///   import-state`: same size, and the same mtime where that record kept one). Enough not to send a file
    ///   again; never enough to delete one, since no checksum verifies it.
    package func storedMatches(
        projectID: Int64,
        _ candidates: [StoredCandidate],
        acceptingImported: Bool
    ) throws -> [Bool] {
        guard !candidates.isEmpty else { return [] }
        var found = [Bool](repeating: false, count: candidates.count)
        // Chunks keep each statement's parameters a few MiB at most.
        for start in stride(from: 0, to: candidates.count, by: 5000) {
            let chunk = candidates[start..<min(start + 5000, candidates.count)]
            let rows = try connection.execute(
                """
                SELECT c.ord FROM unnest(\(PGTextArray(chunk.map(\.bucket)))::text[],
                                         \(PGTextArray(chunk.map(\.key)))::text[],
                                         \(PGTextArray(chunk.map { String($0.size) }))::bigint[],
                                         \(PGTextArray(chunk.map(\.mtime.iso8601)))::timestamptz[])
                     WITH ORDINALITY AS c (bucket, s3_key, size_bytes, mtime, ord)
                JOIN LATERAL fleet_latest_object(\(projectID), c.bucket, c.s3_key) AS o
                  ON (o.size_bytes = c.size_bytes AND o.mtime = c.mtime AND o.checksum_sha256 IS NOT NULL)
                  OR (\(acceptingImported)::boolean AND o.imported_from IS NOT NULL
                      AND fleet_file_is_object(c.size_bytes, c.mtime, o.size_bytes, o.mtime, o.uploaded_at))
                """
            )
            for row in 0..<rows.rowCount {
                found[start + (try rows.decode(Int.self, row, 0, in: "object_records")) - 1] = true
            }
        }
        return found
    }

    /// Updates the device's row and appends to its heartbeat history.
    package func recordHeartbeat(deviceID: Int64, _ beat: DeviceHeartbeat) throws {
        let percent = beat.disk.map { (($0.usedPercent * 100).rounded() / 100).clamped(0, 100) }
        try connection.transaction {
            try connection.execute(
                """
                UPDATE devices SET last_heartbeat_at = now(), agent_version = \(beat.agentVersion),
                    disk_total_bytes = \(beat.disk?.totalBytes), disk_used_bytes = \(beat.disk?.usedBytes),
                    disk_used_percent = \(percent), queue_files = \(beat.queueFiles), queue_bytes = \(beat.queueBytes),
                    last_upload_at = greatest(last_upload_at, \(beat.lastUploadAt)::timestamptz)
                WHERE id = \(deviceID)
                """
            )
            try connection.execute(
                """
                INSERT INTO device_heartbeats (device_id, disk_used_percent, queue_files, queue_bytes)
                VALUES (\(deviceID), \(percent), \(beat.queueFiles), \(beat.queueBytes))
                ON CONFLICT (device_id, at) DO NOTHING
                """
            )
        }
    }

    /// Sessions of this device still marked running whose process on `hostname` is gone (killed, power lost):
    /// their ids, oldest first.
    package func deadSessions(
        deviceID: Int64,
        hostname: String,
        projectID: Int64? = nil,
        isAlive: (Int32, Timestamp) -> Bool
    ) throws -> [Int64] {
        let rows = try connection.execute(
            """
            SELECT id, pid, started_at FROM sync_sessions
            WHERE device_id = \(deviceID) AND status = 'running' AND hostname = \(hostname)
              AND (\(projectID)::bigint IS NULL OR project_id = \(projectID)::bigint)
            ORDER BY id
            """
        )
        return try (0..<rows.rowCount).compactMap { row in
            let pid = try rows.decode(Int.self, row, 1, in: "sync_sessions")
            let started = try rows.decode(Timestamp.self, row, 2, in: "sync_sessions")
            return isAlive(Int32(pid), started) ? nil : try rows.decode(Int64.self, row, 0, in: "sync_sessions")
        }
    }
}

extension Double {
    fileprivate func clamped(_ low: Double, _ high: Double) -> Double { Swift.min(Swift.max(self, low), high) }
}

/// A row left `uploading` by a process that no longer exists.
package struct DeadClaim: Sendable {
    package var sessionID: Int64
    package var projectID: Int64
    package var job: UploadJob
    package var claimedBy: String
}

extension Ledger {
    /// The rows of this device's sessions still held by a process on `hostname` that is gone, marked `uploading`
    /// (`markClaimedFiles`): their outcome was never recorded (SIGKILL, power loss, a stop that timed out).
    package func deadClaims(
        deviceID: Int64,
        hostname: String,
        projectID: Int64? = nil,
        isAlive: (Int32, Timestamp) -> Bool
    ) throws -> [DeadClaim] {
        // Ranges of a gone process become rows marked `uploading` first, and are settled with them: once per
        // holder and session (`markClaimedFiles` takes all of its ranges), judged by its latest claim.
        let ranges = try connection.execute(
            """
            SELECT k.session_id, k.holder, max(k.claimed_at)
            FROM file_claims AS k JOIN sync_sessions AS s ON s.id = k.session_id
            WHERE s.device_id = \(deviceID) AND k.holder LIKE \(hostname + ":%")
              AND (\(projectID)::bigint IS NULL OR s.project_id = \(projectID)::bigint)
            GROUP BY k.session_id, k.holder
            """
        )
        for row in 0..<ranges.rowCount {
            let holder = try ranges.decode(String.self, row, 1, in: "file_claims")
            guard let pid = ClaimHolder.pid(of: holder, on: hostname),
                !isAlive(pid, try ranges.decode(Timestamp.self, row, 2, in: "file_claims"))
            else { continue }
            try markClaimedFiles(sessionID: try ranges.decode(Int64.self, row, 0, in: "file_claims"), heldBy: holder)
        }
        let rows = try connection.execute(
            """
            SELECT f.id, f.created_at, f.local_path, f.path_bytes, f.bucket, f.s3_key, f.size_bytes, f.mtime,
                   f.session_id, f.project_id, f.claimed_by, f.claimed_at, f.codec, f.codec_level
            FROM file_uploads AS f JOIN sync_sessions AS s ON s.id = f.session_id
            WHERE s.device_id = \(deviceID) AND f.status = 'uploading' AND f.claimed_by LIKE \(hostname + ":%")
              AND EXISTS (SELECT 1 FROM file_upload_counts AS c
                          WHERE c.session_id = s.id AND c.status = 'uploading' AND c.files > 0)
              AND (\(projectID)::bigint IS NULL OR f.project_id = \(projectID)::bigint)
            ORDER BY f.id
            """
        )
        var claims: [DeadClaim] = []
        for row in 0..<rows.rowCount {
            let holder = try rows.decode(String.self, row, 10, in: "file_uploads")
            guard let pid = ClaimHolder.pid(of: holder, on: hostname) else { continue }
            // A claim without a time cannot be matched to the process that made it, so it counts as abandoned.
            if let claimedAt = try rows.decodeIfPresent(Timestamp.self, row, 11, in: "file_uploads"),
                isAlive(pid, claimedAt)
            {
                continue
            }
            claims.append(try Ledger.deadClaim(rows, row))
        }
        return claims
    }

    /// A claim from a row of `id, created_at, local_path, path_bytes, bucket, s3_key, size_bytes, mtime,
    /// session_id, project_id, claimed_by, claimed_at, codec, codec_level`; settled as a failure unless the bucket
    /// shows the upload finished.
    static func deadClaim(_ rows: PGResult, _ row: Int) throws -> DeadClaim {
        var job = try uploadJob(rows, row)
        job.claimedFrom = "failed"
        if let codec = try rows.decodeIfPresent(String.self, row, 12, in: "file_uploads") {
            job.codec = (codec, try rows.decode(Int.self, row, 13, in: "file_uploads"))
        }
        return DeadClaim(
            sessionID: try rows.decode(Int64.self, row, 8, in: "file_uploads"),
            projectID: try rows.decode(Int64.self, row, 9, in: "file_uploads"),
            job: job,
            claimedBy: try rows.decode(String.self, row, 10, in: "file_uploads")
        )
    }
}

extension Ledger {
    /// Closes as `skipped` (reason `ledger`) each of `claims` whose file another session has stored since, with
    /// the same size and mtime: a later run uploaded it while this row's outcome was unknown. The object in the
    /// bucket is then that run's, not proof of this row's upload, so the row is not counted `uploaded` again;
    /// each key keeps one `uploaded` row. Returns the ids closed.
    package func skipSupersededClaims(_ claims: [DeadClaim]) throws -> Set<Int64> {
        guard !claims.isEmpty else { return [] }
        let rows = try connection.execute(
            """
            UPDATE file_uploads AS f SET status = 'skipped', skip_reason = 'ledger', finished_at = now(),
                updated_at = now(), error_class = NULL,
                error_message = 'stored by session ' || s.stored_by || ' before the upload by ' || f.claimed_by
                                || ' was settled'
            FROM (
                SELECT g.id, g.created_at, o.session_id AS stored_by
                FROM unnest(\(PGArray.bigint(claims.map(\.job.id)))::bigint[],
                            \(PGArray.timestamptz(claims.map(\.job.createdAt)))::timestamptz[]) AS c (id, created_at)
                JOIN file_uploads AS g ON g.id = c.id AND g.created_at = c.created_at
                CROSS JOIN LATERAL fleet_latest_object(g.project_id, g.bucket, g.s3_key) AS o
                WHERE g.status = 'uploading' AND o.size_bytes = g.size_bytes AND o.mtime = g.mtime
                  AND o.checksum_sha256 IS NOT NULL AND o.session_id IS DISTINCT FROM g.session_id
            ) AS s
            WHERE f.id = s.id AND f.created_at = s.created_at AND f.status = 'uploading'
            RETURNING f.id
            """
        )
        return Set(try (0..<rows.rowCount).map { try rows.decode(Int64.self, $0, 0, in: "file_uploads") })
    }
}
