import FleetSystem
import Foundation

/// One round of `retry` within a session, as `retry_rounds` records it.
package struct RetryRound: Sendable, Equatable {
    package var round: Int
    package var startedAt: Timestamp
    /// Nil while the round runs.
    package var finishedAt: Timestamp?
    package var filesAttempted: Int
    package var filesUploaded: Int
    package var filesFailed: Int

    /// Seconds from start to finish; nil while the round runs.
    package var durationSeconds: Double? {
        finishedAt.map { Double($0.microseconds - startedAt.microseconds) / 1_000_000 }
    }
}

extension RetryRound: Encodable {
    private enum CodingKeys: String, CodingKey {
        case round
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case filesAttempted = "files_attempted"
        case filesUploaded = "files_uploaded"
        case filesFailed = "files_failed"
    }

    /// Snake-case keys; times in RFC 3339 UTC; `finished_at` is `null` while the round runs.
    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(round, forKey: .round)
        try container.encode(startedAt.rfc3339, forKey: .startedAt)
        try container.encode(finishedAt?.rfc3339, forKey: .finishedAt)
        try container.encode(filesAttempted, forKey: .filesAttempted)
        try container.encode(filesUploaded, forKey: .filesUploaded)
        try container.encode(filesFailed, forKey: .filesFailed)
    }
}

extension Ledger {
    /// Records the start of a retry round; returns its number (one more than the session's last round).
    package func startRetryRound(sessionID: Int64) throws -> Int {
        // Two retries of one session may start a round at the same moment: the second insert then breaks the
        // (session_id, round) uniqueness and simply takes the next number.
        var attempt = 0
        while true {
            do {
                let rows = try connection.execute(
                    """
                    INSERT INTO retry_rounds (session_id, round)
                    SELECT \(sessionID), coalesce(max(round), 0) + 1 FROM retry_rounds WHERE session_id = \(sessionID)
                    RETURNING round
                    """
                )
                return try rows.decode(Int.self, 0, 0, in: "retry_rounds")
            } catch let error as LedgerError where error.sqlState == "23505" && attempt < 5 {
                attempt += 1
            }
        }
    }

    /// Records how a retry round ended; returns the round as recorded.
    ///
    /// - Throws: `LedgerError`, also when the session has no such round.
    @discardableResult
    package func finishRetryRound(
        sessionID: Int64,
        round: Int,
        attempted: Int,
        uploaded: Int,
        failed: Int
    ) throws -> RetryRound {
        let rows = try connection.execute(
            """
            UPDATE retry_rounds SET finished_at = now(), files_attempted = \(attempted), files_uploaded = \(uploaded),
                files_failed = \(failed)
            WHERE session_id = \(sessionID) AND round = \(round)
            RETURNING round, started_at, finished_at, files_attempted, files_uploaded, files_failed
            """
        )
        guard rows.rowCount == 1 else {
            throw LedgerError(
                .queryFailed,
                location: location,
                message: "session \(sessionID) has no retry round \(round)"
            )
        }
        return try Ledger.retryRound(rows, 0)
    }

    /// A round from a row of `round, started_at, finished_at, files_attempted, files_uploaded, files_failed`.
    static func retryRound(_ rows: PGResult, _ row: Int) throws -> RetryRound {
        RetryRound(
            round: try rows.decode(Int.self, row, 0, in: "retry_rounds"),
            startedAt: try rows.decode(Timestamp.self, row, 1, in: "retry_rounds"),
            finishedAt: try rows.decodeIfPresent(Timestamp.self, row, 2, in: "retry_rounds"),
            filesAttempted: try rows.decode(Int.self, row, 3, in: "retry_rounds"),
            filesUploaded: try rows.decode(Int.self, row, 4, in: "retry_rounds"),
            filesFailed: try rows.decode(Int.self, row, 5, in: "retry_rounds")
        )
    }

    /// Puts back the session's files still claimed by processes on `hostname` that no longer exist (killed
    /// before they recorded an outcome), so a retry can take them. Returns how many.
    package func releaseDeadClaims(sessionID: Int64, hostname: String, isAlive: (Int32) -> Bool) throws -> Int {
        let holders = try connection.execute(
            """
            SELECT DISTINCT claimed_by FROM file_uploads WHERE session_id = \(sessionID) AND status = 'uploading'
            UNION SELECT holder FROM file_claims WHERE session_id = \(sessionID)
            """
        )
        var released = 0
        for row in 0..<holders.rowCount {
            let holder = try holders.decode(String.self, row, 0, in: "file_uploads")
            guard let pid = ClaimHolder.pid(of: holder, on: hostname), !isAlive(pid) else { continue }
            released += try releaseClaims(sessionID: sessionID, heldBy: holder)
        }
        return released
    }

    /// Closes a retried session with the status its files call for now: `completed` once none failed or is
    /// unfinished, else `interrupted` when the session was interrupted and so was this retry (`interrupted`), else
    /// `completed_with_errors`; the totals are counted from the rows at the same moment.
    ///
    /// The status and the totals are decided and written in one statement, taken while this transaction holds
    /// the session's row: two retries of one session that finish together close it one after the other, and
    /// the later one sees every outcome the earlier one recorded. A status read first and written later could
    /// close a session whose every file was uploaded as `completed_with_errors`.
    ///
    /// - Returns: the status written.
    @discardableResult
    package func closeRetriedSession(_ sessionID: Int64, interrupted: Bool) throws -> SessionStatus {
        try connection.transaction {
            try connection.execute("SELECT 1 FROM sync_sessions WHERE id = \(sessionID) FOR UPDATE")
            let rows = try connection.execute(
                """
                WITH t AS (
                    SELECT count(*) AS files, coalesce(sum(size_bytes), 0) AS bytes,
                           count(*) FILTER (WHERE status = 'uploaded') AS uploaded_files,
                           coalesce(sum(size_bytes) FILTER (WHERE status = 'uploaded'), 0) AS uploaded_bytes,
                           count(*) FILTER (WHERE status = 'skipped') AS skipped_files,
                           coalesce(sum(size_bytes) FILTER (WHERE status = 'skipped'), 0) AS skipped_bytes,
                           count(*) FILTER (WHERE status IN ('failed', 'permanent_failure')) AS failed_files,
                           count(*) FILTER (WHERE status IN ('pending', 'uploading')) AS unfinished_files
                    FROM file_uploads WHERE session_id = \(sessionID)
                )
                UPDATE sync_sessions AS s SET
                    status = CASE WHEN t.failed_files = 0 AND t.unfinished_files = 0 THEN 'completed'
                                  WHEN s.status = 'interrupted' AND \(interrupted) THEN 'interrupted'
                                  ELSE 'completed_with_errors' END,
                    finished_at = coalesce(s.finished_at, now()), heartbeat_at = now(),
                    total_files = t.files, total_bytes = t.bytes,
                    files_uploaded = t.uploaded_files, bytes_uploaded = t.uploaded_bytes,
                    files_skipped = t.skipped_files, bytes_skipped = t.skipped_bytes, files_failed = t.failed_files
                FROM t WHERE s.id = \(sessionID)
                RETURNING s.status
                """
            )
            guard rows.rowCount == 1 else {
                throw LedgerError(.queryFailed, location: location, message: "no session \(sessionID) to close")
            }
            return try rows.decode(SessionStatus.self, 0, 0, in: "sync_sessions")
        }
    }

    /// Marks the session's unfinished files whose key's latest record now matches them (same bucket, key, size and
    /// mtime, stored by a later session) as `skipped`, but not a pending file a claim range holds (a process
    /// still at work on it); returns how many.
    package func skipAlreadyStored(sessionID: Int64) throws -> Int {
        try takingClaimTurn(sessionID) {
            try connection.execute(
                """
                UPDATE file_uploads AS f SET status = 'skipped', skip_reason = 'ledger', updated_at = now()
                FROM (
                    SELECT g.id, g.created_at FROM file_uploads AS g
                    CROSS JOIN LATERAL fleet_latest_object(g.project_id, g.bucket, g.s3_key) AS o
                    WHERE g.session_id = \(sessionID) AND g.status IN ('pending', 'failed', 'permanent_failure')
                      AND (g.status <> 'pending' OR fleet_range_holder(g.session_id, g.id) IS NULL)
                      AND fleet_file_is_object(g.size_bytes, g.mtime, o.size_bytes, o.mtime, o.uploaded_at)
                      AND o.session_id IS DISTINCT FROM g.session_id
                ) AS s
                WHERE f.id = s.id AND f.created_at = s.created_at
                """
            ).affectedRows
        }
    }
}
