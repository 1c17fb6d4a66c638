-- fleet-upload ledger, version 20: work once per statement that was done once per row, or per batch.
--
-- * A file row's session is checked once per statement. The foreign key (session_id, project_id) ->
--   sync_sessions (id, project_id) ran a query of its own for every inserted row: it started an executor, locked
--   the session's row (FOR KEY SHARE) and looked it up, 2,000 times for a scan batch of 2,000 files of one
--   session: about 4.5 µs of the server's CPU per file. The counting trigger already reads every statement's new
--   rows once; it now checks there that each distinct (session, project) among them is a session of that project,
--   and locks those sessions as the key did, once each. Triggers on sync_sessions refuse what the key refused on
--   that side: deleting a session, or changing its id or project, while file rows name it. The rule is as before,
--   and it holds now also for a writer that switches ordinary triggers off (session_replication_role = replica),
--   as the counts do; like the counts, it holds for statements on the partitioned table, not on a monthly
--   partition itself (nothing writes one). Dropping the key takes a brief lock on the tables; nothing is read.
-- * A scan batch and an outcome batch are planned once per server connection, as PL/pgSQL functions
--   (fleet_record_files, fleet_record_outcomes; below).
-- * An upload's claim reads the session's rows in id order and stops after the files it takes (below).

ALTER TABLE file_uploads DROP CONSTRAINT file_uploads_session_project_fkey;

-- The counts as in version 17. Before them, an insert's new rows are checked: every (session_id, project_id) among
-- them must be a session of that project. The sessions are locked FOR KEY SHARE until the transaction ends, as a
-- foreign key's check locks them: a session being deleted meanwhile is waited for, and then missing; one deleted
-- after waits for this transaction and then finds its rows (fleet_keep_session_files). An update's new rows are
-- checked only for the pairs none of its old rows had, as the key checked an update only when it changed the key:
-- a session an old row names cannot be deleted meanwhile (its deleter finds that row), and for an outcome batch,
-- which changes neither, the check locks nothing.
CREATE OR REPLACE FUNCTION fleet_count_file_uploads() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
DECLARE
    new_sessions bigint[];
    new_projects bigint[];
    missing_session bigint;
    missing_project bigint;
BEGIN
    -- Attached to any other table, this function would let whoever attached it write counts as their owner.
    IF TG_RELID <> 'file_uploads'::regclass THEN
        RAISE EXCEPTION 'fleet_count_file_uploads counts file_uploads only, not %', TG_RELID::regclass;
    END IF;
    -- The (session, project) pairs to check: an insert's, and those of an update that none of its old rows had
    -- (old_rows exists only in an update's trigger).
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(d.session_id), array_agg(d.project_id) INTO new_sessions, new_projects
        FROM (SELECT DISTINCT n.session_id, n.project_id FROM new_rows AS n) AS d;
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT array_agg(d.session_id), array_agg(d.project_id) INTO new_sessions, new_projects
        FROM (SELECT n.session_id, n.project_id FROM new_rows AS n
              EXCEPT
              SELECT o.session_id, o.project_id FROM old_rows AS o) AS d;
    END IF;
    SELECT d.session_id, d.project_id INTO missing_session, missing_project
    FROM unnest(new_sessions, new_projects) AS d (session_id, project_id)
    LEFT JOIN LATERAL (
        SELECT true AS found FROM sync_sessions AS s
        WHERE s.id = d.session_id AND s.project_id = d.project_id
        FOR KEY SHARE OF s
    ) AS s ON true
    WHERE s.found IS NULL
    LIMIT 1;
    IF missing_session IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
            MESSAGE = format('file_uploads: session %s of project %s does not exist (sync_sessions has no such '
                             'id and project)', missing_session, missing_project);
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO file_upload_counts AS t (session_id, hour, status, error_class, project_id, device_id, files,
                                             bytes, sent_bytes)
        SELECT d.session_id, d.hour, d.status, d.error_class, d.project_id, s.device_id, d.files, d.bytes,
               d.sent_bytes
        FROM (
            SELECT n.session_id, coalesce(date_trunc('hour', n.finished_at, 'UTC'), '-infinity') AS hour, n.status,
                   coalesce(n.error_class, '') AS error_class, min(n.project_id) AS project_id, count(*) AS files,
                   sum(n.size_bytes) AS bytes, sum(coalesce(n.sent_bytes, n.size_bytes)) AS sent_bytes
            FROM new_rows AS n GROUP BY 1, 2, 3, 4
        ) AS d LEFT JOIN sync_sessions AS s ON s.id = d.session_id
        ORDER BY 1, 2, 3, 4
        ON CONFLICT (session_id, hour, status, error_class)
        DO UPDATE SET files = t.files + EXCLUDED.files, bytes = t.bytes + EXCLUDED.bytes,
                      sent_bytes = t.sent_bytes + EXCLUDED.sent_bytes;
        IF EXISTS (SELECT 1 FROM new_rows AS n WHERE n.status IN ('failed', 'permanent_failure')) THEN
            EXECUTE $q$
                INSERT INTO file_failures (failed_at, session_id, project_id, device_id, file_upload_id,
                                           file_created_at, local_path, s3_key, status, error_class, error_message,
                                           http_status, attempts)
                SELECT coalesce(n.finished_at, now()), n.session_id, n.project_id, s.device_id, n.id, n.created_at,
                       n.local_path, n.s3_key, n.status, n.error_class, n.error_message, n.http_status, n.attempts
                FROM new_rows AS n LEFT JOIN sync_sessions AS s ON s.id = n.session_id
                WHERE n.status IN ('failed', 'permanent_failure')
            $q$;
        END IF;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO file_upload_counts AS t (session_id, hour, status, error_class, project_id, device_id, files,
                                             bytes, sent_bytes)
        SELECT d.session_id, d.hour, d.status, d.error_class, d.project_id, s.device_id, d.files, d.bytes,
               d.sent_bytes
        FROM (
            SELECT c.session_id, coalesce(date_trunc('hour', c.finished_at, 'UTC'), '-infinity') AS hour, c.status,
                   coalesce(c.error_class, '') AS error_class, min(c.project_id) AS project_id,
                   sum(c.sign) AS files, sum(c.sign * c.size_bytes) AS bytes,
                   sum(c.sign * coalesce(c.sent_bytes, c.size_bytes)) AS sent_bytes
            FROM (
                SELECT n.session_id, n.finished_at, n.status, n.error_class, n.project_id, n.size_bytes,
                       n.sent_bytes, 1 AS sign
                FROM new_rows AS n
                UNION ALL
                SELECT o.session_id, o.finished_at, o.status, o.error_class, o.project_id, o.size_bytes,
                       o.sent_bytes, -1
                FROM old_rows AS o
            ) AS c
            GROUP BY 1, 2, 3, 4
            HAVING sum(c.sign) <> 0 OR sum(c.sign * c.size_bytes) <> 0
                OR sum(c.sign * coalesce(c.sent_bytes, c.size_bytes)) <> 0
        ) AS d LEFT JOIN sync_sessions AS s ON s.id = d.session_id
        ORDER BY 1, 2, 3, 4
        ON CONFLICT (session_id, hour, status, error_class)
        DO UPDATE SET files = t.files + EXCLUDED.files, bytes = t.bytes + EXCLUDED.bytes,
                      sent_bytes = t.sent_bytes + EXCLUDED.sent_bytes;
        -- A failure is new when the row reaches a failed state with a finish time it did not have: a file put
        -- back untried returns to its earlier failure, finish time and all, and is not logged twice.
        IF EXISTS (SELECT 1 FROM new_rows AS n WHERE n.status IN ('failed', 'permanent_failure')) THEN
            EXECUTE $q$
                INSERT INTO file_failures (failed_at, session_id, project_id, device_id, file_upload_id,
                                           file_created_at, local_path, s3_key, status, error_class, error_message,
                                           http_status, attempts)
                SELECT coalesce(n.finished_at, now()), n.session_id, n.project_id, s.device_id, n.id, n.created_at,
                       n.local_path, n.s3_key, n.status, n.error_class, n.error_message, n.http_status, n.attempts
                FROM new_rows AS n LEFT JOIN sync_sessions AS s ON s.id = n.session_id
                WHERE n.status IN ('failed', 'permanent_failure')
                  AND NOT EXISTS (SELECT 1 FROM old_rows AS o WHERE o.id = n.id AND o.created_at = n.created_at
                                                                AND o.finished_at IS NOT DISTINCT FROM n.finished_at)
            $q$;
        END IF;
    ELSE
        INSERT INTO file_upload_counts AS t (session_id, hour, status, error_class, project_id, device_id, files,
                                             bytes, sent_bytes)
        SELECT d.session_id, d.hour, d.status, d.error_class, d.project_id, s.device_id, d.files, d.bytes,
               d.sent_bytes
        FROM (
            SELECT o.session_id, coalesce(date_trunc('hour', o.finished_at, 'UTC'), '-infinity') AS hour, o.status,
                   coalesce(o.error_class, '') AS error_class, min(o.project_id) AS project_id, -count(*) AS files,
                   -sum(o.size_bytes) AS bytes, -sum(coalesce(o.sent_bytes, o.size_bytes)) AS sent_bytes
            FROM old_rows AS o GROUP BY 1, 2, 3, 4
        ) AS d LEFT JOIN sync_sessions AS s ON s.id = d.session_id
        ORDER BY 1, 2, 3, 4
        ON CONFLICT (session_id, hour, status, error_class)
        DO UPDATE SET files = t.files + EXCLUDED.files, bytes = t.bytes + EXCLUDED.bytes,
                      sent_bytes = t.sent_bytes + EXCLUDED.sent_bytes;
    END IF;
    RETURN NULL;
END
$fn$;

-- The other side of the rule: a session with file rows (any row naming its id) is not deleted, and keeps its id and
-- project. The session's row is locked before this runs (the delete or update takes it), so a writer of its file
-- rows has committed or waits; the check then reads with a snapshot taken after the lock (READ COMMITTED). A
-- transaction of a stricter isolation would read with its own older snapshot and could miss rows committed since,
-- so it may not delete or truncate sessions or change those columns at all. TRUNCATE of sync_sessions is refused
-- while file_uploads has rows, also with CASCADE and also together with file_uploads (the trigger runs before
-- either is emptied): empty file_uploads first. SECURITY DEFINER: the check sees every file row, whatever row
-- security would show the caller.
CREATE FUNCTION fleet_keep_session_files() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
BEGIN
    IF TG_RELID <> 'sync_sessions'::regclass THEN
        RAISE EXCEPTION 'fleet_keep_session_files guards sync_sessions only, not %', TG_RELID::regclass;
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('sync_sessions: sessions are deleted or truncated, or given another id or project, only '
                             'in a READ COMMITTED transaction (this one is %s)',
                             current_setting('transaction_isolation'));
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        IF EXISTS (SELECT 1 FROM file_uploads) THEN
            RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
                MESSAGE = 'sync_sessions: not truncated, file_uploads has rows of its sessions';
        END IF;
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM file_uploads AS f WHERE f.session_id = OLD.id) THEN
        RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
            MESSAGE = format('sync_sessions: session %s of project %s still has rows in file_uploads', OLD.id,
                             OLD.project_id);
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$fn$;
ALTER FUNCTION fleet_keep_session_files() OWNER TO fleet_admin;
REVOKE ALL ON FUNCTION fleet_keep_session_files() FROM PUBLIC;

CREATE TRIGGER sync_sessions_keep_files_delete BEFORE DELETE ON sync_sessions
    FOR EACH ROW EXECUTE FUNCTION fleet_keep_session_files();
CREATE TRIGGER sync_sessions_keep_files_update BEFORE UPDATE OF id, project_id ON sync_sessions
    FOR EACH ROW WHEN (OLD.id <> NEW.id OR OLD.project_id <> NEW.project_id)
    EXECUTE FUNCTION fleet_keep_session_files();
CREATE TRIGGER sync_sessions_keep_files_truncate BEFORE TRUNCATE ON sync_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION fleet_keep_session_files();
ALTER TABLE sync_sessions ENABLE ALWAYS TRIGGER sync_sessions_keep_files_delete;
ALTER TABLE sync_sessions ENABLE ALWAYS TRIGGER sync_sessions_keep_files_update;
ALTER TABLE sync_sessions ENABLE ALWAYS TRIGGER sync_sessions_keep_files_truncate;

-- A scan batch and an outcome batch are each one statement, and the server planned it anew for every batch: about
-- 3.5 ms for a scan batch of 2,000 files (1.8 µs per file), 0.1 to 0.6 ms for an outcome batch. A statement of a
-- PL/pgSQL function is planned once per server connection and kept; a pooler in transaction mode keeps nothing of
-- the client's between transactions, so a prepared statement would not do. The two statements are these functions
-- now, with a generic plan from the first call (the plan does not depend on the batch: the arrays are parameters).
-- They run with the caller's rights, as the statements did: row security and privileges apply as before.

-- Records one scan batch of session batch_session of project batch_project, one file per array element, and
-- returns how many of them were skipped. A file whose project, bucket, key, size and mtime match the key's latest
-- record (fleet_latest_object, fleet_file_is_object) goes in as `skipped` (an object imported without an mtime
-- matches on key and size); a second file with a key taken in this session (repeated_keys marks one taken earlier
-- in the batch: compared by bytes in the client), a file whose key another project stores (same bucket and
-- endpoint; unless both projects share their prefix) and a file that came with an error, as
-- `permanent_failure`; the rest as `pending`, ready to be claimed. Another project's key is refused even when this
-- project stores it too: the object may be the other project's by now.
--
-- Each question about a key needs a row of the key, and most files of a scan are new: fleet_known_keys finds the
-- batch's keys that have a record which can matter, or a row of this session, in one scan of each month's key
-- index, and only those are asked whether an earlier batch took the key and whether its latest record is the
-- file. An earlier batch's row is found by one probe of the key's index: a lateral subquery with a limit, which
-- the planner cannot turn into a hash of every row of the session (as it did with EXISTS while the month's
-- statistics were older than the session); `session_id + 0` keeps it off the (session_id, id) index, which would
-- read the whole session for every file. Only the months from the session's start on are probed (from the start of
-- that month, so that a server clock set back a little between two batches changes nothing).
CREATE FUNCTION fleet_record_files(
    batch_session bigint, batch_project bigint, sources text[], local_paths text[], rel_paths text[],
    paths_bytes bytea[], buckets text[], keys text[], sizes bigint[], mtimes timestamptz[], error_classes text[],
    error_messages text[], codecs text[], codec_levels integer[], repeated_keys boolean[]
) RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = public, pg_temp SET plan_cache_mode = force_generic_plan AS $fn$
DECLARE
    skipped integer;
BEGIN
    WITH staged AS (
        SELECT * FROM unnest(sources, local_paths, rel_paths, paths_bytes, buckets, keys, sizes, mtimes,
                             error_classes, error_messages, codecs, codec_levels, repeated_keys)
            WITH ORDINALITY AS s (source, local_path, rel_path, path_bytes, bucket, s3_key, size_bytes, mtime,
                                  error_class, error_message, codec, codec_level, repeated, seq)
    ), known AS MATERIALIZED (
        SELECT * FROM fleet_known_keys(batch_project, batch_session,
                                       ARRAY(SELECT DISTINCT b FROM unnest(buckets) AS b), keys)
    ), judged AS (
        SELECT r.*, CASE WHEN r.error_class IS NOT NULL THEN r.error_class
                         WHEN r.repeated THEN 'duplicate_key' END AS problem,
               NULL::text AS owner, false AS stored
        FROM staged AS r
        WHERE NOT EXISTS (SELECT 1 FROM known AS k WHERE k.bucket = r.bucket AND k.s3_key = r.s3_key)
        UNION ALL
        SELECT r.*,
            CASE WHEN r.error_class IS NOT NULL THEN r.error_class
                 WHEN r.repeated OR d.taken THEN 'duplicate_key'
                 WHEN k.owner IS NOT NULL THEN 'key_owned_by_other_project'
            END,
            k.owner,
            o.s3_key IS NOT NULL
        FROM staged AS r
        JOIN known AS k ON k.bucket = r.bucket AND k.s3_key = r.s3_key
        LEFT JOIN LATERAL (
            SELECT true AS taken FROM file_uploads AS e
            WHERE e.s3_key = r.s3_key AND e.bucket = r.bucket AND e.project_id = batch_project
              AND e.session_id + 0 = batch_session
              AND e.created_at >= (SELECT date_trunc('month', s.started_at, 'UTC') FROM sync_sessions AS s
                                   WHERE s.id = batch_session)
            LIMIT 1
        ) AS d ON true
        LEFT JOIN LATERAL fleet_latest_object(batch_project, r.bucket, r.s3_key) AS o
          ON fleet_file_is_object(r.size_bytes, r.mtime, o.size_bytes, o.mtime, o.uploaded_at)
    ), inserted AS (
        INSERT INTO file_uploads (session_id, project_id, source, local_path, rel_path, path_bytes, bucket, s3_key,
                                  size_bytes, mtime, status, skip_reason, error_class, error_message, finished_at,
                                  codec, codec_level)
        SELECT batch_session, batch_project, j.source, j.local_path, j.rel_path, j.path_bytes, j.bucket, j.s3_key,
               j.size_bytes, j.mtime,
               CASE WHEN j.problem IS NOT NULL THEN 'permanent_failure' WHEN j.stored THEN 'skipped'
                    ELSE 'pending' END,
               CASE WHEN j.problem IS NULL AND j.stored THEN 'ledger' END,
               j.problem,
               CASE WHEN j.problem = 'duplicate_key' THEN 'another file in this session has the same key'
                    WHEN j.problem = 'key_owned_by_other_project' THEN
                        format('s3://%s/%s holds an object of project %L; two projects share keys only '
                               'when both set s3.shared_prefix: true', j.bucket, j.s3_key, j.owner)
                    ELSE j.error_message END,
               CASE WHEN j.problem IS NOT NULL OR j.stored THEN now() END, j.codec, j.codec_level
        FROM judged AS j ORDER BY j.seq
        RETURNING file_uploads.status
    )
    SELECT count(*) FILTER (WHERE i.status = 'skipped') INTO skipped FROM inserted AS i;
    RETURN skipped;
END
$fn$;
ALTER FUNCTION fleet_record_files(bigint, bigint, text[], text[], text[], bytea[], text[], text[], bigint[],
                                  timestamptz[], text[], text[], text[], integer[], boolean[]) OWNER TO fleet_admin;
REVOKE ALL ON FUNCTION fleet_record_files(bigint, bigint, text[], text[], text[], bytea[], text[], text[], bigint[],
                                          timestamptz[], text[], text[], text[], integer[], boolean[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fleet_record_files(bigint, bigint, text[], text[], text[], bytea[], text[], text[], bigint[],
                                             timestamptz[], text[], text[], text[], integer[], boolean[])
    TO fleet_admin, fleet_device;

-- Writes one batch of outcomes of session outcome_session, one per array element, each into its file row (by id
-- and created_at), and the session's heartbeat. `put_back` (not tried: the run stopped first) returns the row to
-- the status it was claimed from, with its earlier outcome kept; any other status is the file's outcome, and a row
-- no claim marked gets claimed_by = holder. Attempts add up.
CREATE FUNCTION fleet_record_outcomes(
    outcome_session bigint, holder text, ids bigint[], created timestamptz[], statuses text[],
    attempts_made integer[], etags text[], checksums text[], version_ids text[], upload_ids text[],
    error_classes text[], error_messages text[], http_statuses integer[], started timestamptz[],
    finished timestamptz[], sizes bigint[], mtimes timestamptz[], claimed_from text[], devices bigint[],
    inodes bigint[], sent bigint[]
) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = public, pg_temp SET plan_cache_mode = force_generic_plan AS $fn$
BEGIN
    WITH r AS (
        SELECT u.*, u.status = 'put_back' AS put_back
        FROM unnest(ids, created, statuses, attempts_made, etags, checksums, version_ids, upload_ids, error_classes,
                    error_messages, http_statuses, started, finished, sizes, mtimes, claimed_from, devices, inodes,
                    sent)
            AS u (id, created_at, status, attempts, etag, checksum, version_id, upload_id, error_class,
                  error_message, http_status, started_at, finished_at, size_bytes, mtime, claimed_from, file_device,
                  file_inode, sent_bytes)
    ), files AS (
        UPDATE file_uploads AS f SET attempts = f.attempts + r.attempts, updated_at = now(),
            status = CASE WHEN r.put_back THEN r.claimed_from ELSE r.status END,
            etag = CASE WHEN r.put_back THEN f.etag ELSE r.etag END,
            checksum_sha256 = CASE WHEN r.put_back THEN f.checksum_sha256 ELSE r.checksum END,
            version_id = CASE WHEN r.put_back THEN f.version_id ELSE r.version_id END,
            multipart_upload_id = CASE WHEN r.put_back THEN f.multipart_upload_id
                                       ELSE coalesce(r.upload_id, f.multipart_upload_id) END,
            error_class = CASE WHEN r.put_back THEN f.error_class ELSE r.error_class END,
            error_message = CASE WHEN r.put_back THEN f.error_message ELSE r.error_message END,
            http_status = CASE WHEN r.put_back THEN f.http_status ELSE r.http_status END,
            started_at = CASE WHEN r.put_back THEN f.started_at ELSE r.started_at END,
            finished_at = CASE WHEN r.put_back THEN f.finished_at ELSE r.finished_at END,
            size_bytes = CASE WHEN r.put_back THEN f.size_bytes ELSE r.size_bytes END,
            mtime = CASE WHEN r.put_back THEN f.mtime ELSE r.mtime END,
            file_device = CASE WHEN r.put_back THEN f.file_device ELSE r.file_device END,
            file_inode = CASE WHEN r.put_back THEN f.file_inode ELSE r.file_inode END,
            sent_bytes = CASE WHEN r.put_back THEN f.sent_bytes ELSE r.sent_bytes END,
            claimed_by = CASE WHEN r.put_back THEN NULL ELSE coalesce(f.claimed_by, holder) END,
            recorded_at = CASE WHEN r.put_back THEN f.recorded_at ELSE now() END
        FROM r
        WHERE f.id = r.id AND f.created_at = r.created_at
    )
    UPDATE sync_sessions AS s SET heartbeat_at = now() WHERE s.id = outcome_session;
END
$fn$;
ALTER FUNCTION fleet_record_outcomes(bigint, text, bigint[], timestamptz[], text[], integer[], text[], text[], text[],
                                     text[], text[], text[], integer[], timestamptz[], timestamptz[], bigint[],
                                     timestamptz[], text[], bigint[], bigint[], bigint[]) OWNER TO fleet_admin;
REVOKE ALL ON FUNCTION fleet_record_outcomes(bigint, text, bigint[], timestamptz[], text[], integer[], text[], text[],
                                             text[], text[], text[], text[], integer[], timestamptz[], timestamptz[],
                                             bigint[], timestamptz[], text[], bigint[], bigint[], bigint[])
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fleet_record_outcomes(bigint, text, bigint[], timestamptz[], text[], integer[], text[],
                                                text[], text[], text[], text[], text[], integer[], timestamptz[],
                                                timestamptz[], bigint[], timestamptz[], text[], bigint[], bigint[],
                                                bigint[])
    TO fleet_admin, fleet_device;

-- An upload's claim (fleet_claim_range, version 18) takes the first claim_limit pending files of the session in id
-- order. The statistics of the month being written are older than the session (autovacuum analyzes a month after a
-- tenth of it changed), so the planner took the session for a row or two and planned to read all of its rows and
-- sort them: each claim read every pending file left in the session, and an upload's claims together read its
-- files about as many times over as it made claims (14,000 files, claims of 700: 3.2 µs per file, against 1.2 read
-- in order). Without sorts the planner reads each month's (session_id, id) index in order, merges the months, and
-- stops after claim_limit rows; no other statement of the function sorts more than a session's few ranges.
ALTER FUNCTION fleet_claim_range(bigint, bigint, integer, text) SET enable_sort = off;
