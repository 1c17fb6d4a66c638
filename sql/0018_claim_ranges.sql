-- fleet-upload ledger, version 18: claiming a session's pending files writes one row per claim, not one per file.
--
-- Until this version a claim rewrote every file it took (`uploading`, who, when): about 120 bytes of WAL and a
-- row version per file, a tenth of all an upload wrote, and a third of the versions pruning cleans up. An
-- upload claims its session's pending files in id order, so what it holds is a range of ids: file_claims keeps
-- one row per range, and a pending file of the session whose id lies in a range is held by the range's holder.
-- A file leaves the range's hold when its outcome is written (it leaves `pending`) or when the range is
-- deleted. Ranges of one session never overlap: a claim stops before the next range of the session, and
-- claims of one session take turns (fleet_claim_files).
--
-- A row `uploading` with claimed_by still means what it meant, and the two ways of holding a file live side
-- by side:
--   * a retry's claims (failed files, or a limit on attempts) still mark each row: they are few, and the
--     claimable rows of a retry are not consecutive;
--   * a multipart upload marks its row when it starts, so that another run resuming the key sees its holder;
--   * settling a holder that is gone (the agent, a retry, the end of a run) first turns its ranges into
--     `uploading` rows, and settles those as before.
-- Rows `uploading` from before this version need nothing: they are settled as they always were.

CREATE TABLE file_claims (
    session_id bigint NOT NULL REFERENCES sync_sessions (id) ON DELETE CASCADE,
    first_id   bigint NOT NULL,
    last_id    bigint NOT NULL,
    holder     text NOT NULL,                 -- hostname:pid, as file_uploads.claimed_by
    claimed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, first_id),
    CHECK (first_id <= last_id)
);
ALTER TABLE file_claims OWNER TO fleet_admin;
REVOKE ALL ON file_claims FROM PUBLIC;
GRANT ALL ON file_claims TO fleet_admin;
GRANT SELECT ON file_claims TO fleet_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON file_claims TO fleet_device;
ALTER TABLE file_claims ENABLE ROW LEVEL SECURITY;
CREATE POLICY fleet_admin_all ON file_claims TO fleet_admin USING (true) WITH CHECK (true);
CREATE POLICY fleet_reader_select ON file_claims FOR SELECT TO fleet_reader USING (true);
CREATE POLICY fleet_device_own ON file_claims TO fleet_device
    USING (EXISTS (SELECT 1 FROM sync_sessions s WHERE s.id = session_id));

-- The files of a session held by a claim, either way: rows marked `uploading`, and pending rows in a range.
-- Plain SQL, inlined where it is used.
CREATE FUNCTION fleet_claimed_files(claim_session bigint)
RETURNS TABLE (id bigint, created_at timestamptz, holder text, claimed_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT f.id, f.created_at, f.claimed_by, f.claimed_at FROM file_uploads AS f
    WHERE f.session_id = claim_session AND f.status = 'uploading'
    UNION ALL
    SELECT f.id, f.created_at, k.holder, k.claimed_at
    FROM file_claims AS k JOIN file_uploads AS f
      ON f.session_id = k.session_id AND f.id BETWEEN k.first_id AND k.last_id AND f.status = 'pending'
    WHERE k.session_id = claim_session
$$;
ALTER FUNCTION fleet_claimed_files(bigint) OWNER TO fleet_admin;
REVOKE ALL ON FUNCTION fleet_claimed_files(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fleet_claimed_files(bigint) TO fleet_admin, fleet_device, fleet_reader;

-- Claims up to claim_limit of a session's files in from_status for worker, in id order after after_id, never a
-- file another claim holds. Claims of one session take turns on a transaction-scoped advisory lock, and the
-- statement after it reads the rows with a snapshot taken after the lock was granted: it never picks rows the
-- previous claim took. The lock's first key (1718379372, "flcl") names it among the advisory locks of the
-- database, the second is the session's hash.
--
-- The claim starts at the first free file after the cursor and stops before the session's next range, so that
-- every pending file in the range it records is one it took. Pending files with no limit on attempts (an
-- upload) are held by that range: by the worker's last range, made longer, when nothing lies between it and
-- the new files, so a run keeps one range per session. Any other claim marks its rows `uploading`.
CREATE OR REPLACE FUNCTION fleet_claim_files(claim_session bigint, from_status text, after_id bigint,
                                             claim_limit integer, worker text, max_attempts integer,
                                             unfixable_classes text[])
RETURNS TABLE (id bigint, created_at timestamptz, local_path text, path_bytes bytea, bucket text, s3_key text,
               size_bytes bigint, mtime timestamptz, claimed_from text, codec text, codec_level integer)
LANGUAGE sql VOLATILE SET search_path = public, pg_temp AS $$
    SELECT pg_advisory_xact_lock(1718379372, hashint8(claim_session));
    WITH lo AS (
        SELECT f.id FROM file_uploads AS f
        WHERE f.session_id = claim_session AND f.status = from_status AND f.id > after_id
          AND (f.status <> 'permanent_failure' OR f.error_class IS NULL OR f.error_class <> ALL (unfixable_classes))
          AND (max_attempts IS NULL OR f.attempts < max_attempts)
          AND NOT EXISTS (SELECT 1 FROM file_claims AS k
                          WHERE k.session_id = claim_session AND f.id BETWEEN k.first_id AND k.last_id)
        ORDER BY f.id LIMIT 1
    ), hi AS (
        SELECT coalesce(min(k.first_id), 9223372036854775807) AS id
        FROM file_claims AS k WHERE k.session_id = claim_session AND k.first_id > (SELECT lo.id FROM lo)
    ), c AS (
        -- No range starts between lo and hi, and none that starts before lo reaches it (lo is free).
        SELECT f.* FROM file_uploads AS f
        WHERE f.session_id = claim_session AND f.status = from_status
          AND f.id >= (SELECT lo.id FROM lo) AND f.id < (SELECT hi.id FROM hi)
          AND (f.status <> 'permanent_failure' OR f.error_class IS NULL OR f.error_class <> ALL (unfixable_classes))
          AND (max_attempts IS NULL OR f.attempts < max_attempts)
        ORDER BY f.id LIMIT claim_limit
    ), marked AS (
        UPDATE file_uploads AS f SET status = 'uploading', claimed_by = worker, claimed_at = now(), updated_at = now()
        FROM c
        WHERE NOT (from_status = 'pending' AND max_attempts IS NULL)
          AND f.id = c.id AND f.created_at = c.created_at AND f.status = from_status
        RETURNING f.id, f.created_at, f.local_path, f.path_bytes, f.bucket, f.s3_key, f.size_bytes, f.mtime,
                  from_status, f.codec, f.codec_level
    ), longer AS (
        UPDATE file_claims AS k SET last_id = (SELECT max(c.id) FROM c), claimed_at = now()
        WHERE from_status = 'pending' AND max_attempts IS NULL AND EXISTS (SELECT 1 FROM c)
          AND k.session_id = claim_session AND k.holder = worker AND k.last_id = after_id
          AND NOT EXISTS (SELECT 1 FROM file_claims AS j
                          WHERE j.session_id = claim_session AND j.first_id > after_id
                            AND j.first_id < (SELECT lo.id FROM lo))
        RETURNING k.first_id
    ), added AS (
        INSERT INTO file_claims (session_id, first_id, last_id, holder)
        SELECT claim_session, min(c.id), max(c.id), worker FROM c
        WHERE from_status = 'pending' AND max_attempts IS NULL AND NOT EXISTS (SELECT 1 FROM longer)
        HAVING count(*) > 0
        RETURNING first_id
    )
    SELECT * FROM marked
    UNION ALL
    SELECT c.id, c.created_at, c.local_path, c.path_bytes, c.bucket, c.s3_key, c.size_bytes, c.mtime, from_status,
           c.codec, c.codec_level
    FROM c
    WHERE from_status = 'pending' AND max_attempts IS NULL
      AND (EXISTS (SELECT 1 FROM longer) OR EXISTS (SELECT 1 FROM added))
$$;
