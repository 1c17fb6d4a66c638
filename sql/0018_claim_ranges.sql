-- fleet-upload ledger, version 18: an upload's claim of pending files writes one row per claim, not one per file.
--
-- Until this version a claim rewrote every file it took (`uploading`, who, when): about 120 bytes of WAL and a
-- row version per file, a tenth of all an upload wrote, and a third of the versions pruning cleans up. An
-- upload claims its session's pending files in id order, so what it holds is a range of ids: file_claims keeps
-- one row per range, and a pending file of the session whose id lies in a range is held by the range's holder.
-- A file leaves the range's hold when its outcome is written (it leaves `pending`) or when the range is
-- deleted. Ranges of one session never overlap, and every pending file in a range is one its holder took (or
-- put back): a range is recorded, or made longer, only over rows no other claim marks `uploading` (the one
-- status a row goes back to `pending` from), and no other claim marks a row inside a range.
--
-- A row `uploading` with claimed_by still means what it meant, and the two ways of holding a file live side
-- by side:
--   * a retry's claims (fleet_claim_files, as before, and as processes started before this version call it)
--     mark each row: they take failed files too, which are not consecutive with the pending ones. They never
--     take a row inside a range;
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

-- The files of a session held by a claim, either way: rows marked `uploading`, and pending rows in a range (one
-- scan of the session's index per range). Plain SQL, inlined where it is used.
CREATE FUNCTION fleet_claimed_files(claim_session bigint)
RETURNS TABLE (id bigint, created_at timestamptz, holder text, claimed_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT f.id, f.created_at, f.claimed_by, f.claimed_at FROM file_uploads AS f
    WHERE f.session_id = claim_session AND f.status = 'uploading'
    UNION ALL
    SELECT f.id, f.created_at, k.holder, k.claimed_at
    FROM file_claims AS k
    CROSS JOIN LATERAL (
        SELECT g.id, g.created_at FROM file_uploads AS g
        WHERE g.session_id = claim_session AND g.id BETWEEN k.first_id AND k.last_id AND g.status = 'pending'
    ) AS f
    WHERE k.session_id = claim_session
$$;
ALTER FUNCTION fleet_claimed_files(bigint) OWNER TO fleet_admin;
REVOKE ALL ON FUNCTION fleet_claimed_files(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fleet_claimed_files(bigint) TO fleet_admin, fleet_device, fleet_reader;

-- The holder of the range that holds a pending file, if one does: the session's nearest range starting at or
-- before the file, one probe of file_claims' primary key. Plain SQL, called for each row it is asked about (a
-- function whose body is a subquery is not inlined); the paths that ask it are rare (a retry, giving up).
CREATE FUNCTION fleet_range_holder(claim_session bigint, file_id bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT (SELECT CASE WHEN k.last_id >= file_id THEN k.holder END FROM file_claims AS k
            WHERE k.session_id = claim_session AND k.first_id <= file_id
            ORDER BY k.first_id DESC LIMIT 1)
$$;
ALTER FUNCTION fleet_range_holder(bigint, bigint) OWNER TO fleet_admin;
REVOKE ALL ON FUNCTION fleet_range_holder(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fleet_range_holder(bigint, bigint) TO fleet_admin, fleet_device, fleet_reader;

-- A session's turn among the statements that decide which of its files are free: its claims, and what skips or
-- gives up on pending files. A transaction-scoped advisory lock (first key 1718379372, "flcl", names it among the
-- advisory locks of the database; the second is the session's hash), so nothing outlives the transaction and a
-- pooler in transaction mode is fine. A statement after it in the same transaction sees what the turns before it
-- committed.
CREATE FUNCTION fleet_claim_turn(claim_session bigint) RETURNS void LANGUAGE sql VOLATILE AS $$
    SELECT pg_advisory_xact_lock(1718379372, hashint8(claim_session))
$$;
ALTER FUNCTION fleet_claim_turn(bigint) OWNER TO fleet_admin;
REVOKE ALL ON FUNCTION fleet_claim_turn(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fleet_claim_turn(bigint) TO fleet_admin, fleet_device;

-- A retry's claim, as in version 14, that never takes a row inside a range (a failed file in it, marked and
-- then put back to `pending`, would turn up held by a holder that never took it). It takes the session's turn
-- (fleet_claim_turn), and the update, a statement of its own in this VOLATILE function, reads the rows with a
-- snapshot taken after the turn was granted: it never picks rows the previous claim took. A row is taken only if
-- it still has the status it was chosen with.
CREATE OR REPLACE FUNCTION fleet_claim_files(claim_session bigint, from_status text, after_id bigint,
                                             claim_limit integer, worker text, max_attempts integer,
                                             unfixable_classes text[])
RETURNS TABLE (id bigint, created_at timestamptz, local_path text, path_bytes bytea, bucket text, s3_key text,
               size_bytes bigint, mtime timestamptz, claimed_from text, codec text, codec_level integer)
LANGUAGE sql VOLATILE SET search_path = public, pg_temp AS $$
    SELECT fleet_claim_turn(claim_session);
    WITH c AS (
        SELECT f.id, f.created_at FROM file_uploads AS f
        WHERE f.session_id = claim_session AND f.status = from_status AND f.id > after_id
          AND (f.status <> 'permanent_failure' OR f.error_class IS NULL OR f.error_class <> ALL (unfixable_classes))
          AND (max_attempts IS NULL OR f.attempts < max_attempts)
          AND fleet_range_holder(claim_session, f.id) IS NULL
        ORDER BY f.id LIMIT claim_limit
    )
    UPDATE file_uploads AS f SET status = 'uploading', claimed_by = worker, claimed_at = now(), updated_at = now()
    FROM c
    WHERE f.id = c.id AND f.created_at = c.created_at AND f.status = from_status
    RETURNING f.id, f.created_at, f.local_path, f.path_bytes, f.bucket, f.s3_key, f.size_bytes, f.mtime, from_status,
              f.codec, f.codec_level
$$;

-- An upload's claim: up to claim_limit of the session's pending files for worker, in id order after after_id,
-- held by a range instead of a mark on each row. It takes the session's turn (fleet_claim_turn), so each
-- statement after it sees every range the claims before it recorded.
--
--   * lo, the first free pending file after the cursor: a pending file in a range is passed by going on after
--     that range's end (a probe of the session's index and one of file_claims per range passed, never one per
--     file);
--   * the claim takes the pending files from lo on, up to the session's next range, and up to the first row
--     `uploading` after lo: such a row can go back to `pending` (a settled claim put back), and must never turn
--     up inside another holder's range;
--   * the worker's range that ends at the cursor is made longer when nothing lies between it and lo but files
--     done with (no range, no row pending or `uploading`, whatever happened since lo was found), so a run
--     usually keeps one range per session. Otherwise a new range is recorded, and the worker's earlier ranges
--     that hold no pending file are deleted.
-- Only the months from the session's start on are read (its rows were written after it started; from the start
-- of that month, a margin for a server clock set back), so a ledger's history adds nothing to a claim. PL/pgSQL,
-- so that a connection plans these statements once, not at every claim.
CREATE FUNCTION fleet_claim_range(claim_session bigint, after_id bigint, claim_limit integer, worker text)
RETURNS TABLE (id bigint, created_at timestamptz, local_path text, path_bytes bytea, bucket text, s3_key text,
               size_bytes bigint, mtime timestamptz, codec text, codec_level integer)
LANGUAGE plpgsql VOLATILE SET search_path = public, pg_temp AS $fn$
DECLARE
    since timestamptz;
    lo bigint;
    hi bigint;
    last_taken bigint;
    stop bigint;
    range_end bigint;
BEGIN
    PERFORM fleet_claim_turn(claim_session);
    SELECT date_trunc('month', s.started_at, 'UTC') INTO since FROM sync_sessions AS s WHERE s.id = claim_session;
    SELECT f.id INTO lo FROM file_uploads AS f
    WHERE f.session_id = claim_session AND f.created_at >= since AND f.status = 'pending' AND f.id > after_id
    ORDER BY f.id LIMIT 1;
    LOOP
        EXIT WHEN lo IS NULL;
        range_end := NULL;
        SELECT k.last_id INTO range_end FROM file_claims AS k
        WHERE k.session_id = claim_session AND k.first_id <= lo ORDER BY k.first_id DESC LIMIT 1;
        EXIT WHEN range_end IS NULL OR range_end < lo;
        lo := NULL;
        SELECT f.id INTO lo FROM file_uploads AS f
        WHERE f.session_id = claim_session AND f.created_at >= since AND f.status = 'pending' AND f.id > range_end
        ORDER BY f.id LIMIT 1;
    END LOOP;
    IF lo IS NULL THEN
        RETURN;
    END IF;
    SELECT coalesce(min(k.first_id), 9223372036854775807) INTO hi FROM file_claims AS k
    WHERE k.session_id = claim_session AND k.first_id > lo;
    SELECT max(t.id) INTO last_taken FROM (
        SELECT f.id FROM file_uploads AS f
        WHERE f.session_id = claim_session AND f.created_at >= since AND f.status = 'pending'
          AND f.id >= lo AND f.id < hi
        ORDER BY f.id LIMIT claim_limit
    ) AS t;
    SELECT min(f.id) INTO stop FROM file_uploads AS f
    WHERE f.session_id = claim_session AND f.created_at >= since AND f.status = 'uploading'
      AND f.id > lo AND f.id < last_taken;
    IF stop IS NOT NULL THEN
        SELECT max(f.id) INTO last_taken FROM file_uploads AS f
        WHERE f.session_id = claim_session AND f.created_at >= since AND f.status = 'pending'
          AND f.id >= lo AND f.id < stop;
    END IF;

    UPDATE file_claims AS k SET last_id = last_taken, claimed_at = now()
    WHERE k.session_id = claim_session AND k.holder = worker AND k.last_id = after_id
      AND NOT EXISTS (SELECT 1 FROM file_claims AS j
                      WHERE j.session_id = claim_session AND j.first_id > after_id AND j.first_id < lo)
      AND NOT EXISTS (SELECT 1 FROM file_uploads AS f
                      WHERE f.session_id = claim_session AND f.created_at >= since
                        AND f.status IN ('pending', 'uploading') AND f.id > after_id AND f.id < lo);
    IF NOT FOUND THEN
        INSERT INTO file_claims (session_id, first_id, last_id, holder) VALUES (claim_session, lo, last_taken, worker);
        DELETE FROM file_claims AS k
        WHERE k.session_id = claim_session AND k.holder = worker AND k.last_id < lo
          AND NOT EXISTS (SELECT 1 FROM file_uploads AS f
                          WHERE f.session_id = claim_session AND f.created_at >= since
                            AND f.id BETWEEN k.first_id AND k.last_id AND f.status = 'pending');
    END IF;

    RETURN QUERY
        SELECT f.id, f.created_at, f.local_path, f.path_bytes, f.bucket, f.s3_key, f.size_bytes, f.mtime, f.codec,
               f.codec_level
        FROM file_uploads AS f
        WHERE f.session_id = claim_session AND f.created_at >= since AND f.status = 'pending'
          AND f.id BETWEEN lo AND last_taken
        ORDER BY f.id;
END
$fn$;
ALTER FUNCTION fleet_claim_range(bigint, bigint, integer, text) OWNER TO fleet_admin;
REVOKE ALL ON FUNCTION fleet_claim_range(bigint, bigint, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fleet_claim_range(bigint, bigint, integer, text) TO fleet_admin, fleet_device;
