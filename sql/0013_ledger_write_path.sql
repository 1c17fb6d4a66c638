-- fleet-upload ledger, version 13: fewer bytes written per uploaded file.
--
-- A file row is written three times: inserted 'pending' by the scan, claimed ('uploading'), and given its
-- outcome. PostgreSQL writes an update as a heap-only tuple (HOT: the new version on the same page, no index
-- touched, only the changed bytes in the WAL) when no indexed column changes — a column in an index's
-- predicate counts too — and the page has room. Before this version status, claimed_at and finished_at were
-- in five indexes, so both updates wrote the whole row to another page plus an entry in every index of the
-- table (about 3.3 KiB of WAL per small file). Now:
--   * file_uploads keeps three indexes, none on a column an update changes: the primary key, (project_id,
--     s3_key), and (session_id, id), from which claims read a session's rows in id order after a cursor;
--   * its partitions fill pages to 35 % on insert (fillfactor 35), so both updates, which make the row about a
--     third longer, stay on the row's page;
--   * what the dropped indexes served comes from two tables a trigger keeps, whoever writes file_uploads
--     (upload, retry, import-state, a bulk INSERT): file_upload_counts (files and bytes of each session by
--     state, error class and the hour they finished: the Grafana panels over time, session totals) and
--     file_failures (one row for every failure an outcome recorded: the failure panels' lists);
--   * stored_objects loses its (bucket, s3_key) index: the questions across projects (who owns a key, did
--     another project write it since) probe the primary key once per project instead.

DROP INDEX file_uploads_session_status, file_uploads_finished_at, file_uploads_failures, file_uploads_claimed,
    file_uploads_failed_finished;
CREATE INDEX file_uploads_session_id ON file_uploads (session_id, id);

-- Existing partitions keep room on the pages they fill from now on; new months are created with it.
DO $$
DECLARE
    p regclass;
BEGIN
    FOR p IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'file_uploads'::regclass LOOP
        EXECUTE format('ALTER TABLE %s SET (fillfactor = 35)', p);
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION fleet_ensure_file_upload_partitions(from_time timestamptz, months integer)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    month_start timestamptz;
    partition_name text;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        month_start := date_trunc('month', from_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                       + make_interval(months => i);
        partition_name := 'file_uploads_' || to_char(month_start AT TIME ZONE 'UTC', 'YYYY_MM');
        IF to_regclass(partition_name) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF file_uploads FOR VALUES FROM (%L) TO (%L) '
                           'WITH (fillfactor = 35)', partition_name, month_start, month_start + interval '1 month');
        END IF;
    END LOOP;
END
$$;

-- Files and bytes (as read, and as sent: a compressed file sends fewer) of each session by state and error
-- class ('' for none), and by the hour (UTC) they finished; '-infinity' for rows not finished (pending,
-- uploading). Kept exact by fleet_count_file_uploads: every statement on file_uploads adds its new rows and
-- takes away its old ones. A count that drops to zero stays as a row of zeros.
CREATE TABLE file_upload_counts (
    session_id  bigint NOT NULL,
    hour        timestamptz NOT NULL,
    status      text NOT NULL,
    error_class text NOT NULL,
    project_id  bigint NOT NULL,
    device_id   bigint,
    files       bigint NOT NULL,
    bytes       bigint NOT NULL,
    sent_bytes  bigint NOT NULL,
    PRIMARY KEY (session_id, hour, status, error_class)
);
CREATE INDEX file_upload_counts_hour ON file_upload_counts (hour);

-- Every failure an outcome recorded, as it was then: a retry that later uploads the file leaves it here.
CREATE TABLE file_failures (
    failed_at       timestamptz NOT NULL,
    session_id      bigint NOT NULL,
    project_id      bigint NOT NULL,
    device_id       bigint,
    file_upload_id  bigint NOT NULL,
    file_created_at timestamptz NOT NULL,
    local_path      text NOT NULL,
    s3_key          text NOT NULL,
    status          text NOT NULL CHECK (status IN ('failed', 'permanent_failure')),
    error_class     text,
    error_message   text,
    http_status     integer,
    attempts        integer NOT NULL
);
CREATE INDEX file_failures_failed_at ON file_failures (failed_at);
CREATE INDEX file_failures_session ON file_failures (session_id, failed_at);

-- One statement-level trigger per kind of statement (a trigger with transition tables has one event), all on
-- this function; it runs as the tables' owner, so a device role's statements count even though the device
-- cannot write these tables itself. The counts are written in key order, so two statements never wait for
-- each other's rows in opposite orders.
CREATE FUNCTION fleet_count_file_uploads() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
DECLARE
    changes text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT n.*, 1 AS sign FROM new_rows AS n'
        WHEN 'DELETE' THEN 'SELECT o.*, -1 AS sign FROM old_rows AS o'
        ELSE 'SELECT n.*, 1 AS sign FROM new_rows AS n UNION ALL SELECT o.*, -1 FROM old_rows AS o'
    END;
BEGIN
    -- Attached to any other table, this function would let whoever attached it write counts as their owner.
    IF TG_RELID <> 'file_uploads'::regclass THEN
        RAISE EXCEPTION 'fleet_count_file_uploads counts file_uploads only, not %', TG_RELID::regclass;
    END IF;
    EXECUTE format($q$
        WITH c AS (%s), d AS (
            SELECT session_id,
                   coalesce(date_trunc('hour', finished_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', '-infinity') AS hour,
                   status, coalesce(error_class, '') AS error_class, min(project_id) AS project_id,
                   sum(sign) AS files, sum(sign * size_bytes) AS bytes,
                   sum(sign * coalesce(sent_bytes, size_bytes)) AS sent_bytes
            FROM c GROUP BY 1, 2, 3, 4
            HAVING sum(sign) <> 0 OR sum(sign * size_bytes) <> 0 OR sum(sign * coalesce(sent_bytes, size_bytes)) <> 0
        )
        INSERT INTO file_upload_counts AS t (session_id, hour, status, error_class, project_id, device_id, files, bytes,
                                             sent_bytes)
        SELECT d.session_id, d.hour, d.status, d.error_class, d.project_id, s.device_id, d.files, d.bytes,
               d.sent_bytes
        FROM d LEFT JOIN sync_sessions AS s ON s.id = d.session_id
        ORDER BY 1, 2, 3, 4
        ON CONFLICT (session_id, hour, status, error_class)
        DO UPDATE SET files = t.files + EXCLUDED.files, bytes = t.bytes + EXCLUDED.bytes,
                      sent_bytes = t.sent_bytes + EXCLUDED.sent_bytes
    $q$, changes);
    -- A failure is new when the row reaches a failed state with a finish time it did not have: a file put back
    -- untried returns to its earlier failure, finish time and all, and is not logged twice.
    IF TG_OP <> 'DELETE' THEN
        EXECUTE format($q$
            INSERT INTO file_failures (failed_at, session_id, project_id, device_id, file_upload_id, file_created_at,
                                       local_path, s3_key, status, error_class, error_message, http_status, attempts)
            SELECT coalesce(n.finished_at, now()), n.session_id, n.project_id, s.device_id, n.id, n.created_at,
                   n.local_path, n.s3_key, n.status, n.error_class, n.error_message, n.http_status, n.attempts
            FROM new_rows AS n LEFT JOIN sync_sessions AS s ON s.id = n.session_id
            WHERE n.status IN ('failed', 'permanent_failure') %s
        $q$, CASE WHEN TG_OP = 'UPDATE' THEN
            'AND NOT EXISTS (SELECT 1 FROM old_rows AS o WHERE o.id = n.id AND o.created_at = n.created_at
                             AND o.finished_at IS NOT DISTINCT FROM n.finished_at)' ELSE '' END);
    END IF;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER file_uploads_count_insert AFTER INSERT ON file_uploads
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION fleet_count_file_uploads();
CREATE TRIGGER file_uploads_count_update AFTER UPDATE ON file_uploads
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION fleet_count_file_uploads();
CREATE TRIGGER file_uploads_count_delete AFTER DELETE ON file_uploads
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION fleet_count_file_uploads();
-- Also for a writer that switches ordinary triggers off (session_replication_role = replica, as a bulk loader
-- does to skip the foreign-key checks): the counts must hold for every row that reaches the table.
ALTER TABLE file_uploads ENABLE ALWAYS TRIGGER file_uploads_count_insert;
ALTER TABLE file_uploads ENABLE ALWAYS TRIGGER file_uploads_count_update;
ALTER TABLE file_uploads ENABLE ALWAYS TRIGGER file_uploads_count_delete;

-- The ledger as it stands: its counts, and each failed row's last failure.
INSERT INTO file_upload_counts (session_id, hour, status, error_class, project_id, device_id, files, bytes,
                                sent_bytes)
SELECT f.session_id,
       coalesce(date_trunc('hour', f.finished_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', '-infinity'),
       f.status, coalesce(f.error_class, ''), min(f.project_id), min(s.device_id), count(*), sum(f.size_bytes),
       sum(coalesce(f.sent_bytes, f.size_bytes))
FROM file_uploads AS f LEFT JOIN sync_sessions AS s ON s.id = f.session_id
GROUP BY 1, 2, 3, 4;

INSERT INTO file_failures (failed_at, session_id, project_id, device_id, file_upload_id, file_created_at, local_path,
                           s3_key, status, error_class, error_message, http_status, attempts)
SELECT coalesce(f.finished_at, f.updated_at), f.session_id, f.project_id, s.device_id, f.id, f.created_at,
       f.local_path, f.s3_key, f.status, f.error_class, f.error_message, f.http_status, f.attempts
FROM file_uploads AS f LEFT JOIN sync_sessions AS s ON s.id = f.session_id
WHERE f.status IN ('failed', 'permanent_failure');

-- Who owns a key, and whether another project wrote it since: one probe of stored_objects' primary key per
-- project, so the table needs no second index that every upload would write.
DROP INDEX stored_objects_bucket_key;

CREATE OR REPLACE FUNCTION fleet_key_owners(me_name text, me_endpoint text, me_shared boolean, key_buckets text[],
                                            key_names text[])
RETURNS TABLE (bucket text, s3_key text, owner text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT k.bucket, k.s3_key, w.name
    FROM (SELECT DISTINCT * FROM unnest(key_buckets, key_names) AS u (bucket, s3_key)) AS k
    JOIN LATERAL (
        SELECT p.name FROM projects p JOIN stored_objects x
          ON x.project_id = p.id AND x.bucket = k.bucket AND x.s3_key = k.s3_key
        WHERE p.name <> me_name AND p.endpoint IS NOT DISTINCT FROM me_endpoint AND NOT (p.shared_prefix AND me_shared)
        ORDER BY x.uploaded_at DESC LIMIT 1
    ) AS w ON true
$$;

CREATE OR REPLACE FUNCTION fleet_key_written_since(me bigint, key_bucket text, key_name text, since timestamptz)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT EXISTS (
        SELECT 1 FROM projects p JOIN stored_objects x
          ON x.project_id = p.id AND x.bucket = key_bucket AND x.s3_key = key_name
        WHERE p.id <> me AND x.uploaded_at > since
    )
$$;

-- Owned by the owner of every ledger table; fleet_reader reads both tables, a device role its own sessions'
-- counts (an upload totals its session from them), and nobody writes them but the trigger.
ALTER TABLE file_upload_counts OWNER TO fleet_admin;
ALTER TABLE file_failures OWNER TO fleet_admin;
ALTER FUNCTION fleet_count_file_uploads() OWNER TO fleet_admin;
-- Nobody attaches it to a table of their own (a trigger needs EXECUTE when it is created, not when it fires).
REVOKE ALL ON FUNCTION fleet_count_file_uploads() FROM PUBLIC;
GRANT ALL ON file_upload_counts, file_failures TO fleet_admin;
GRANT SELECT ON file_upload_counts, file_failures TO fleet_reader;
GRANT SELECT ON file_upload_counts TO fleet_device;

ALTER TABLE file_upload_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE file_failures ENABLE ROW LEVEL SECURITY;
CREATE POLICY fleet_admin_all ON file_upload_counts TO fleet_admin USING (true) WITH CHECK (true);
CREATE POLICY fleet_admin_all ON file_failures TO fleet_admin USING (true) WITH CHECK (true);
CREATE POLICY fleet_reader_select ON file_upload_counts FOR SELECT TO fleet_reader USING (true);
CREATE POLICY fleet_reader_select ON file_failures FOR SELECT TO fleet_reader USING (true);
CREATE POLICY fleet_device_own ON file_upload_counts FOR SELECT TO fleet_device
    USING (EXISTS (SELECT 1 FROM sync_sessions s WHERE s.id = session_id));
