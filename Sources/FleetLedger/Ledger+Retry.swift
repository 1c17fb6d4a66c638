import FleetSystem
import Foundation

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

    /// Records how a retry round ended.
    package func finishRetryRound(sessionID: Int64, round: Int, attempted: Int, uploaded: Int, failed: Int) throws {
        try connection.execute(
            """
            UPDATE retry_rounds SET finished_at = now(), files_attempted = \(attempted), files_uploaded = \(uploaded),
                files_failed = \(failed)
            WHERE session_id = \(sessionID) AND round = \(round)
            """
        )
    }

    /// Puts back the session's files still claimed by processes on `hostname` that no longer exist (killed
    /// before they recorded an outcome), so a retry can take them. Returns how many.
    package func releaseDeadClaims(sessionID: Int64, hostname: String, isAlive: (Int32) -> Bool) throws -> Int {
        let holders = try connection.execute(
            """
            SELECT DISTINCT claimed_by FROM file_uploads WHERE session_id = \(sessionID) AND status = 'uploading'
            """
        )
        var released = 0
        for row in 0..<holders.rowCount {
            let holder = try holders.decode(String.self, row, 0, in: "file_uploads")
            guard let colon = holder.lastIndex(of: ":"),
                holder[..<colon] == hostname, let pid = Int32(holder[holder.index(after: colon)...]), !isAlive(pid)
            else { continue }
            released +=
                try connection.execute(
                    """
                    UPDATE file_uploads SET status = 'pending', claimed_by = NULL, claimed_at = NULL, updated_at = now()
                    WHERE session_id = \(sessionID) AND status = 'uploading' AND claimed_by = \(holder)
                    """
                ).affectedRows
        }
        return released
    }

    /// Marks the session's unfinished files that `stored_objects` now records (same bucket, key, size and
    /// mtime, stored by a later session) as `skipped`; returns how many.
    package func skipAlreadyStored(sessionID: Int64) throws -> Int {
        try connection.execute(
            """
            UPDATE file_uploads AS f SET status = 'skipped', skip_reason = 'ledger', updated_at = now()
            FROM stored_objects AS o
            WHERE f.session_id = \(sessionID) AND f.status IN ('pending', 'failed', 'permanent_failure')
              AND o.project_id = f.project_id AND o.bucket = f.bucket AND o.s3_key = f.s3_key
              AND o.size_bytes = f.size_bytes AND o.mtime = f.mtime AND o.session_id <> f.session_id
            """
        ).affectedRows
    }
}
