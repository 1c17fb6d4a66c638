-- fleet-upload ledger, version 19: less of the server's CPU per file.
--
-- * A scan batch asks its questions about keys only of the keys the ledger knows. Recording a batch asks three
--   questions of every file's key: did an earlier batch of this session take it (a duplicate), is the key's
--   latest record of this project the file (skip it), and does another project store it (refuse it). Until this
--   version each was a probe of the key's index in every monthly partition, per file: about 11 µs of the
--   server's CPU per file, more than the insert itself. All three need a record of the key, and a scan mostly
--   finds new files, whose keys have none. fleet_known_keys finds the batch's keys that have a record with one
--   scan of each partition's key index for the whole batch; the three questions are then asked only of those.
--   stored_objects is written only by imports since version 14, so an index on its keys (at the end of this
--   migration, so that imports wait for it only briefly) costs an upload nothing.
-- * Autovacuum's ANALYZE of the month being written skips the columns no query filters on (below).

-- The keys among key_names, in one of key_buckets, that have a row which can matter to a scan batch of session
-- in_session of project me: a record (a row of object_records: a file row that put the object in the bucket or
-- found it there, or a row of stored_objects) of me or of a project that could own the key (same endpoint, and not
-- both sharing their prefix), or a row of the session itself, in any status (an earlier batch's key). Each with the
-- project that owns it, if another does: fleet_key_owners names it, asked only of these keys, and not at all when
-- the batch has none (a scan's new files).
--
-- SECURITY DEFINER, like fleet_key_owners, so that a device learns who owns a key without reading that project's
-- rows; and, like it, it tells of records only. The records of me count only when the login that called it may
-- read them as object_records does (a device: its granted projects), and a session's other rows only when it may
-- read them as its row security does (a device: its own device's sessions; a role that is not a device, or is also
-- an administrator or a reader: every session). The login is session_user (current_user is the function's owner
-- here); a pooler's server connection is logged in as the client's role. A login that reaches a device role only
-- through SET ROLE is not that device here: its earlier batches' rows go unseen, and a second file with their key
-- is recorded `pending`, not refused.
--
-- A key is matched with any of the buckets (a batch has one but for the layout whose first directory names it): a
-- pair the batch does not have costs an owner probe and matches no file, where matching the pairs would be a join
-- the planner may turn into a nested loop over the batch for every record.
CREATE FUNCTION fleet_known_keys(me bigint, in_session bigint, key_buckets text[], key_names text[])
RETURNS TABLE (bucket text, s3_key text, owner text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH caller AS (
        SELECT pg_has_role(session_user, 'fleet_admin', 'MEMBER')
                   OR NOT pg_has_role(session_user, 'fleet_device', 'MEMBER') AS every_project,
               pg_has_role(session_user, 'fleet_admin', 'MEMBER') OR pg_has_role(session_user, 'fleet_reader', 'MEMBER')
                   OR NOT pg_has_role(session_user, 'fleet_device', 'MEMBER') AS every_session
    ),
    m AS (
        SELECT p.name, p.endpoint, p.shared_prefix,
               c.every_project OR EXISTS (SELECT 1 FROM device_projects AS g
                                          WHERE g.role_name = session_user AND g.project_name = p.name) AS granted
        FROM projects AS p CROSS JOIN caller AS c WHERE p.id = me
    ),
    readable AS (
        SELECT s.id FROM sync_sessions AS s CROSS JOIN caller AS c
        WHERE s.id = in_session AND s.project_id = me
          AND (c.every_session
               OR s.device_id = (SELECT l.device_id FROM device_logins AS l WHERE l.role_name = session_user))
    ),
    known AS (
        SELECT DISTINCT r.bucket, r.s3_key
        FROM (SELECT f.project_id, f.bucket, f.s3_key FROM file_uploads AS f
              WHERE f.s3_key = ANY (key_names)
                AND (fleet_records_object(f.status, f.skip_reason, f.mtime)
                     OR f.session_id = (SELECT readable.id FROM readable))
              UNION ALL
              SELECT x.project_id, x.bucket, x.s3_key FROM stored_objects AS x WHERE x.s3_key = ANY (key_names)
             ) AS r
        JOIN projects AS p ON p.id = r.project_id
        CROSS JOIN m
        WHERE r.bucket = ANY (key_buckets)
          AND ((p.id = me AND m.granted)
               OR (p.id <> me AND p.endpoint IS NOT DISTINCT FROM m.endpoint
                   AND NOT (p.shared_prefix AND m.shared_prefix)))
    )
    SELECT k.bucket, k.s3_key, w.owner
    FROM known AS k
    LEFT JOIN (
        SELECT w.* FROM m CROSS JOIN LATERAL fleet_key_owners(m.name, m.endpoint, m.shared_prefix,
                                                              (SELECT array_agg(k.bucket) FROM known AS k),
                                                              (SELECT array_agg(k.s3_key) FROM known AS k)) AS w
        WHERE EXISTS (SELECT 1 FROM known)
    ) AS w ON w.bucket = k.bucket AND w.s3_key = k.s3_key
$$;
ALTER FUNCTION fleet_known_keys(bigint, bigint, text[], text[]) OWNER TO fleet_admin;
REVOKE ALL ON FUNCTION fleet_known_keys(bigint, bigint, text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fleet_known_keys(bigint, bigint, text[], text[]) TO fleet_admin, fleet_device;

-- Autovacuum's ANALYZE of a month that is being written is part of what every file costs the server: it runs
-- each time a tenth of the month has changed (an upload inserts and updates each row), and it sorts a sample of
-- up to 30,000 rows for every column (120 ms for a month of 20,000 rows). Columns that no query filters, joins,
-- groups or sorts on need no statistics; the planner never asks for them. Without them an ANALYZE takes about
-- 45 % less. SET STATISTICS on the partitioned table reaches the partitions it has; a new partition does not
-- inherit it, so fleet_ensure_file_upload_partitions gives it the table's targets.
ALTER TABLE file_uploads
    ALTER COLUMN source SET STATISTICS 0, ALTER COLUMN rel_path SET STATISTICS 0,
    ALTER COLUMN path_bytes SET STATISTICS 0, ALTER COLUMN next_attempt_at SET STATISTICS 0,
    ALTER COLUMN error_message SET STATISTICS 0, ALTER COLUMN http_status SET STATISTICS 0,
    ALTER COLUMN etag SET STATISTICS 0, ALTER COLUMN version_id SET STATISTICS 0,
    ALTER COLUMN part_size_bytes SET STATISTICS 0, ALTER COLUMN claimed_at SET STATISTICS 0,
    ALTER COLUMN started_at SET STATISTICS 0, ALTER COLUMN file_device SET STATISTICS 0,
    ALTER COLUMN file_inode SET STATISTICS 0, ALTER COLUMN codec_level SET STATISTICS 0,
    ALTER COLUMN sent_bytes SET STATISTICS 0;

CREATE OR REPLACE FUNCTION fleet_ensure_file_upload_partitions(from_time timestamptz, months integer)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    month_start timestamptz;
    partition_name text;
    target record;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        month_start := date_trunc('month', from_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                       + make_interval(months => i);
        partition_name := 'file_uploads_' || to_char(month_start AT TIME ZONE 'UTC', 'YYYY_MM');
        IF to_regclass(partition_name) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF file_uploads FOR VALUES FROM (%L) TO (%L) '
                           'WITH (fillfactor = 35)', partition_name, month_start, month_start + interval '1 month');
            FOR target IN
                SELECT a.attname, a.attstattarget FROM pg_attribute AS a
                WHERE a.attrelid = 'file_uploads'::regclass AND a.attnum > 0 AND NOT a.attisdropped
                  AND a.attstattarget >= 0
            LOOP
                EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET STATISTICS %s', partition_name, target.attname,
                               target.attstattarget);
            END LOOP;
        END IF;
    END LOOP;
END
$$;

-- Whether the session has a file in the status, from the counts the trigger keeps (a group's count is exactly its
-- rows): a statement that would read every row of a session to find a few in one status asks this first. Its
-- arguments are the statement's parameters, so the planner makes it a one-time condition: evaluated once, before
-- any row is read.
CREATE FUNCTION fleet_session_has_files(counted_session bigint, counted_status text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM file_upload_counts AS c
                   WHERE c.session_id = counted_session AND c.status = counted_status AND c.files > 0)
$$;
ALTER FUNCTION fleet_session_has_files(bigint, text) OWNER TO fleet_admin;
REVOKE ALL ON FUNCTION fleet_session_has_files(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fleet_session_has_files(bigint, text) TO fleet_admin, fleet_device, fleet_reader;

-- The files a session's claims hold, as in version 18, without reading the session's rows when none can be held:
-- the counts the trigger keeps (file_upload_counts, exact in every transaction) say whether the session has a
-- row `uploading` at all, and a pending one for its ranges. At the end of a run every file has its outcome, and
-- the question cost a read of every row of the session (16 ms for 20,000 files).
CREATE OR REPLACE FUNCTION fleet_claimed_files(claim_session bigint)
RETURNS TABLE (id bigint, created_at timestamptz, holder text, claimed_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT f.id, f.created_at, f.claimed_by, f.claimed_at FROM file_uploads AS f
    WHERE f.session_id = claim_session AND f.status = 'uploading'
      AND fleet_session_has_files(claim_session, 'uploading')
    UNION ALL
    SELECT f.id, f.created_at, k.holder, k.claimed_at
    FROM file_claims AS k
    CROSS JOIN LATERAL (
        SELECT g.id, g.created_at FROM file_uploads AS g
        WHERE g.session_id = claim_session AND g.id BETWEEN k.first_id AND k.last_id AND g.status = 'pending'
    ) AS f
    WHERE k.session_id = claim_session AND fleet_session_has_files(claim_session, 'pending')
$$;

-- Last, so that imports (the only writers of stored_objects) wait for it no longer than it takes.
CREATE INDEX stored_objects_key ON stored_objects (s3_key, bucket);
