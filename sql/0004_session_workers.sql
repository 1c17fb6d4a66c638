-- fleet-upload ledger, version 4: several processes on one session (`upload --join SESSION`).
--
-- The process that opened a session scans its sources into file_uploads; processes that join it (on this
-- machine or others that see the same files) claim its pending rows with FOR UPDATE SKIP LOCKED, exactly as
-- the opener's own workers do. Two facts make that safe:
--   * scan_finished_at: a joined process stops when the scan is over and nothing is left to claim; without
--     it, a moment with no pending rows could not be told from the end.
--   * session_workers: every process at work on a session, with a heartbeat. The opener closes the session
--     only once the files other processes hold are recorded; a holder whose heartbeat stopped (or whose pid
--     is gone, on this host) is dead, and its claims are settled against the bucket like any dead claim.

ALTER TABLE sync_sessions ADD COLUMN scan_finished_at timestamptz;

CREATE TABLE session_workers (
    session_id   bigint NOT NULL REFERENCES sync_sessions (id) ON DELETE CASCADE,
    worker       text NOT NULL,                -- hostname:pid, as file_uploads.claimed_by
    role         text NOT NULL CHECK (role IN ('opener', 'joined')),
    hostname     text NOT NULL,
    pid          integer NOT NULL,
    workers      integer NOT NULL,             -- upload threads in the process
    joined_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    left_at      timestamptz,
    PRIMARY KEY (session_id, worker)
);
