-- fleet-upload ledger, version 17: cheaper checks on every file row.
--
-- Of the PostgreSQL CPU an uploaded file cost (about 90 µs for a small file), more than a third went to checks
-- made on each row rather than to the rows themselves:
--   * two foreign keys, (session_id) and (project_id), each checked by a query of its own for every inserted
--     row. One key, (session_id, project_id) -> sync_sessions (id, project_id), is checked by one query and
--     says more: a row's project is its session's project, which only the device roles' row security checked
--     before;
--   * checksum_sha256's format, checked by a regular expression on every outcome. The same rule as a length
--     and a set of characters is several times cheaper. Every existing row passed the old check, so the new
--     one is not checked against them again (NOT VALID: it holds for every row written from now on);
--   * the counting trigger built its statements as text and planned them again for every statement on
--     file_uploads. The counts' are written out now, planned once per connection.
--
-- Adding the key reads every row of file_uploads once (2.5 s for 10 million rows here, with the table in the
-- page cache; longer from disk). While it does, the ledger can be read but file_uploads and sync_sessions take
-- no writes: uploads and session starts wait. The steps that lock tables outright (dropping the old keys and
-- the old check) come last, when only the commit is left. Apply it when the fleet is quiet.

CREATE UNIQUE INDEX sync_sessions_id_project_id ON sync_sessions (id, project_id);
ALTER TABLE file_uploads
    ADD CONSTRAINT file_uploads_session_project_fkey FOREIGN KEY (session_id, project_id)
        REFERENCES sync_sessions (id, project_id);
ALTER TABLE file_uploads DROP CONSTRAINT file_uploads_session_id_fkey, DROP CONSTRAINT file_uploads_project_id_fkey;
ALTER TABLE file_uploads
    DROP CONSTRAINT file_uploads_checksum_sha256_check,
    ADD CONSTRAINT file_uploads_checksum_sha256_check
        CHECK (octet_length(checksum_sha256) = 64 AND ltrim(checksum_sha256, '0123456789abcdef') = '') NOT VALID;

-- The same counts as before, hour by hour in UTC. A statement of each kind brings its own transition tables:
-- an insert its new rows, a delete its old ones, an update both (the new rows count, the old ones are taken
-- away). The counts' statements are written out: a few groups per statement, planned once per connection. The
-- failure log's are planned anew, and only for a statement that has failures: a plan kept from a first
-- statement of one row would compare every new row with every old one.
CREATE OR REPLACE FUNCTION fleet_count_file_uploads() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
BEGIN
    -- Attached to any other table, this function would let whoever attached it write counts as their owner.
    IF TG_RELID <> 'file_uploads'::regclass THEN
        RAISE EXCEPTION 'fleet_count_file_uploads counts file_uploads only, not %', TG_RELID::regclass;
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

-- Whether a file, by its size and mtime, is the object a record describes (a row of object_records): the same
-- size, and the same mtime, or no recorded mtime (an import from a tool that kept none) and a file no newer than
-- the upload. One definition for every question of the kind "is this file already stored"; plain SQL, inlined
-- into the calling statement.
CREATE FUNCTION fleet_file_is_object(file_size bigint, file_mtime timestamptz, object_size bigint,
                                     object_mtime timestamptz, object_uploaded_at timestamptz) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT object_size = file_size
       AND (object_mtime = file_mtime OR (object_mtime IS NULL AND file_mtime <= object_uploaded_at))
$$;
ALTER FUNCTION fleet_file_is_object(bigint, timestamptz, bigint, timestamptz, timestamptz) OWNER TO fleet_admin;
