import FleetSystem
import Foundation

/// How a process takes part in a session: it opened it (and scans), or it joined it (`upload --join`).
package enum SessionWorkerRole: String, Sendable {
    case opener
    case joined
}

/// Where a session stands, as a process that joined it needs to know.
package enum SessionPhase: Sendable, Equatable {
    /// The opener is still recording files: an empty claim is not the end.
    case scanning
    /// Every file is recorded: an empty claim is the end.
    case scanned
    /// The session is over (finished, interrupted or failed): claim nothing more.
    case closed
}

/// A process that holds claims on a session's files, as the opener sees it when it waits for them.
package struct ClaimHolder: Sendable, Equatable {
    /// `hostname:pid`, as `file_uploads.claimed_by`.
    package var holder: String
    package var files: Int
    /// Seconds since its last heartbeat (database clock); nil when it never registered (a `retry`).
    package var silentFor: Double?
    /// Seconds since its oldest claim of these files.
    package var claimedFor: Double
    /// When it joined, for telling a reused pid from the process itself.
    package var since: Timestamp

    /// The name every claim of this process carries.
    package static let thisProcess = "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier)"

    /// A holder on another machine whose heartbeat stopped this long ago is gone.
    package static let silenceLimit: Double = 60

    package var hostname: Substring { holder.lastIndex(of: ":").map { holder[..<$0] } ?? Substring(holder) }
    package var pid: Int32? { holder.lastIndex(of: ":").flatMap { Int32(holder[holder.index(after: $0)...]) } }

    /// The pid of `holder` (`hostname:pid`, as `claimed_by` and `file_claims.holder` name it) when it is a process
    /// on `hostname`; nil for a process elsewhere or a name of another form.
    package static func pid(of holder: String, on hostname: String) -> Int32? {
        guard let colon = holder.lastIndex(of: ":"), holder[..<colon] == hostname else { return nil }
        return Int32(holder[holder.index(after: colon)...])
    }

    /// Whether it is still at work. On this machine its pid answers (and must have started before it joined);
    /// elsewhere its heartbeat, which a working process renews every few seconds. A holder that never registered
    /// gets the ten minutes `retry` gives a session.
    package func isAlive(hostname local: String, processAlive: (Int32, Timestamp) -> Bool) -> Bool {
        if hostname == local, let pid { return processAlive(pid, since) }
        if let silentFor { return silentFor < ClaimHolder.silenceLimit }
        return claimedFor < 600
    }
}

extension Ledger {
    /// Records this process as one at work on the session (again, if it was before).
    package func registerWorker(sessionID: Int64, role: SessionWorkerRole, workers: Int) throws {
        try connection.execute(
            """
            INSERT INTO session_workers (session_id, worker, role, hostname, pid, workers)
            VALUES (\(sessionID), \(ClaimHolder.thisProcess), \(role.rawValue), \(ProcessInfo.processInfo.hostName),
                    \(Int(ProcessInfo.processInfo.processIdentifier)), \(workers))
            ON CONFLICT (session_id, worker) DO UPDATE SET heartbeat_at = now(), left_at = NULL
            """
        )
    }

    /// This process is still at work on the session; so is the session, while it runs.
    package func workerHeartbeat(sessionID: Int64) throws {
        try connection.execute(
            """
            WITH w AS (
                UPDATE session_workers SET heartbeat_at = now()
                WHERE session_id = \(sessionID) AND worker = \(ClaimHolder.thisProcess)
            )
            UPDATE sync_sessions SET heartbeat_at = now() WHERE id = \(sessionID) AND status = 'running'
            """
        )
    }

    /// This process is done with the session.
    package func leaveSession(_ sessionID: Int64) throws {
        try connection.execute(
            """
            UPDATE session_workers SET left_at = now(), heartbeat_at = now()
            WHERE session_id = \(sessionID) AND worker = \(ClaimHolder.thisProcess)
            """
        )
    }

    /// Every file of the session is recorded: processes that joined it stop once nothing is left to claim.
    package func markScanFinished(_ sessionID: Int64) throws {
        try connection.execute(
            "UPDATE sync_sessions SET scan_finished_at = coalesce(scan_finished_at, now()) WHERE id = \(sessionID)"
        )
    }

    /// Whether the session still records files, only has files to upload, or is over. A session whose opener
    /// died while scanning is over too: nobody will record the rest, or end it, until it is settled.
    package func sessionPhase(_ sessionID: Int64) throws -> SessionPhase {
        let rows = try connection.execute(
            """
            SELECT status = 'running', scan_finished_at IS NOT NULL, hostname || ':' || pid,
                   extract(epoch FROM now() - heartbeat_at)::float8, started_at
            FROM sync_sessions WHERE id = \(sessionID)
            """
        )
        guard rows.rowCount == 1, try rows.decode(Bool.self, 0, 0, in: "sync_sessions") else { return .closed }
        if try rows.decode(Bool.self, 0, 1, in: "sync_sessions") { return .scanned }
        let opener = ClaimHolder(
            holder: try rows.decode(String.self, 0, 2, in: "sync_sessions"),
            files: 0,
            silentFor: try rows.decode(Double.self, 0, 3, in: "sync_sessions"),
            claimedFor: 0,
            since: try rows.decode(Timestamp.self, 0, 4, in: "sync_sessions")
        )
        let alive = opener.isAlive(hostname: ProcessInfo.processInfo.hostName, processAlive: LocalProcess.isAlive)
        return alive ? .scanning : .closed
    }

    /// The processes other than this one that hold files of the session `uploading`.
    package func otherClaimHolders(sessionID: Int64) throws -> [ClaimHolder] {
        let rows = try connection.execute(
            """
            SELECT f.holder, count(*),
                   extract(epoch FROM now() - max(w.heartbeat_at))::float8,
                   extract(epoch FROM now() - min(f.claimed_at))::float8,
                   coalesce(min(w.joined_at), min(f.claimed_at))
            FROM fleet_claimed_files(\(sessionID)) AS f
            LEFT JOIN session_workers AS w ON w.session_id = \(sessionID) AND w.worker = f.holder
            WHERE f.holder <> \(ClaimHolder.thisProcess)
            GROUP BY f.holder
            """
        )
        // The heartbeat is missing for a holder without a `session_workers` row (a `retry`). Claims without a
        // `claimed_at` (older binaries) count as abandoned, as `deadClaims` treats them: claimed forever ago, by
        // a process that started at the earliest possible moment, so a live process with that pid is another.
        return try (0..<rows.rowCount).map { row in
            ClaimHolder(
                holder: try rows.decode(String.self, row, 0, in: "file_uploads"),
                files: try rows.decode(Int.self, row, 1, in: "file_uploads"),
                silentFor: try rows.decodeIfPresent(Double.self, row, 2, in: "session_workers"),
                claimedFor: try rows.decodeIfPresent(Double.self, row, 3, in: "file_uploads") ?? .infinity,
                since: try rows.decodeIfPresent(Timestamp.self, row, 4, in: "file_uploads")
                    ?? Timestamp(microseconds: 0)
            )
        }
    }

    /// The session's files `holder` holds, marked `uploading` (`markClaimedFiles`), to settle against the bucket
    /// once it is gone.
    package func claims(sessionID: Int64, heldBy holder: String) throws -> [DeadClaim] {
        try markClaimedFiles(sessionID: sessionID, heldBy: holder)
        let rows = try connection.execute(
            """
            SELECT f.id, f.created_at, f.local_path, f.path_bytes, f.bucket, f.s3_key, f.size_bytes, f.mtime,
                   f.session_id, f.project_id, f.claimed_by, f.claimed_at, f.codec, f.codec_level
            FROM file_uploads AS f
            WHERE f.session_id = \(sessionID) AND f.status = 'uploading' AND f.claimed_by = \(holder)
            ORDER BY f.id
            """
        )
        return try (0..<rows.rowCount).map { try Ledger.deadClaim(rows, $0) }
    }
}
