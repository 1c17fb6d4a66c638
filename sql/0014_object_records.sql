-- fleet-upload ledger, version 14: an upload writes its file row and nothing else.
--
-- Until this version every upload also wrote what the bucket now holds for its key into stored_objects: a second
-- row and a second index entry per file, about a third of the WAL an upload wrote. The file row already says it
-- all (key, size, mtime, checksum, ETag, codec, when it finished), so now:
--   * object_records lists every record of an object: the file rows that put it in the bucket (`uploaded`), or
--     found it there (`skipped` because the bucket listing had the key with the file's size), and the rows of
--     stored_objects, which keeps what the ledger learned without sending it (`master import-state`) and the
--     records written before this version. The file rows a Data Uploader import brings have no mtime (the old
--     tool kept none) and are not records: their import wrote a stored_objects row for each uploaded key. What
--     the bucket holds for a key is its latest record (fleet_latest_object);
--   * file_uploads finds a key's rows through an index on s3_key instead of (project_id, s3_key): one probe per
--     month finds the key's rows of every project (who else owns a key asks just that), where the old index took
--     one per project. (An index of the key's hash would write shorter entries, but spread a session's inserts
--     over the whole index, and after every checkpoint the first change to a page writes the whole page: keys
--     in order keep a session's entries on a few pages.)
--
-- A device role reads the records of the projects it is granted, as it read stored_objects: object_records runs
-- with its owner's rights (a device may not read other devices' file rows) and filters by the caller's projects.

-- Built in this migration's transaction: writes to file_uploads wait until it is done, which takes time in
-- proportion to the ledger's file rows.
CREATE INDEX file_uploads_key ON file_uploads (s3_key);
DROP INDEX file_uploads_project_key;

-- Whether the current role reads every project's records: anybody but a device role (an administrator is one
-- even when it is also a device).
CREATE FUNCTION fleet_sees_every_project() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT pg_has_role('fleet_admin', 'MEMBER') OR NOT pg_has_role('fleet_device', 'MEMBER')
$$;

-- Whether a file row is a record of its object: it put the object in the bucket (`uploaded`) or found it there
-- (`skipped`, reason `bucket`), and it has an mtime (a Data Uploader import's rows have none: that import recorded
-- its objects in stored_objects). The one definition every reader below uses; plain SQL, inlined where it is used.
CREATE FUNCTION fleet_records_object(status text, skip_reason text, mtime timestamptz) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT (status = 'uploaded' OR (status = 'skipped' AND skip_reason = 'bucket')) AND mtime IS NOT NULL
$$;

-- When the ledger learned of an upload, by the server's clock (a vehicle's clock may be off): set with the
-- outcome, and for a key the bucket listing found. Rows recorded before this version have their records in
-- stored_objects, and finished_at stands in for it.
ALTER TABLE file_uploads ADD COLUMN recorded_at timestamptz;

-- The union sits in a subquery under the filter: a view whose top level is a UNION ALL is merged into the
-- caller's query, and a caller's function in WHERE could see the rows before the filter does.
CREATE VIEW object_records WITH (security_barrier) AS
    SELECT * FROM (
        SELECT o.project_id, o.bucket, o.s3_key, o.size_bytes, o.mtime, o.checksum_sha256, o.etag, o.session_id,
               o.uploaded_at, o.imported_from, o.codec, o.sent_bytes
        FROM stored_objects AS o
        UNION ALL
        SELECT f.project_id, f.bucket, f.s3_key, f.size_bytes, f.mtime,
               CASE WHEN f.status = 'uploaded' THEN f.checksum_sha256 END,
               CASE WHEN f.status = 'uploaded' THEN f.etag END, f.session_id, coalesce(f.recorded_at, f.finished_at),
               NULL::text, f.codec, coalesce(f.sent_bytes, f.size_bytes)
        FROM file_uploads AS f
        WHERE fleet_records_object(f.status, f.skip_reason, f.mtime)
    ) AS r
    WHERE (SELECT fleet_sees_every_project()) OR r.project_id = ANY ((SELECT fleet_device_projects())::bigint[]);

-- What the bucket holds for a key, as far as the ledger knows: the key's latest record, if any. Inlined into the
-- caller's query (plain SQL, not SECURITY DEFINER), so a lateral join probes the key's index once per month.
CREATE FUNCTION fleet_latest_object(project bigint, key_bucket text, key_name text)
RETURNS SETOF object_records LANGUAGE sql STABLE AS $$
    SELECT * FROM object_records AS o
    WHERE o.s3_key = key_name AND o.bucket = key_bucket
      AND o.project_id = project
    ORDER BY o.uploaded_at DESC NULLS LAST, o.session_id DESC NULLS LAST
    LIMIT 1
$$;

-- Who owns a key, and whether another project wrote it since, from the records of every project.
CREATE OR REPLACE FUNCTION fleet_key_owners(me_name text, me_endpoint text, me_shared boolean, key_buckets text[],
                                            key_names text[])
RETURNS TABLE (bucket text, s3_key text, owner text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT k.bucket, k.s3_key, w.name
    FROM (SELECT DISTINCT * FROM unnest(key_buckets, key_names) AS u (bucket, s3_key)) AS k
    JOIN LATERAL (
        SELECT r.name FROM (
            SELECT p.name, x.uploaded_at FROM projects p JOIN stored_objects x
              ON x.project_id = p.id AND x.bucket = k.bucket AND x.s3_key = k.s3_key
            WHERE p.name <> me_name AND p.endpoint IS NOT DISTINCT FROM me_endpoint
              AND NOT (p.shared_prefix AND me_shared)
            UNION ALL
            SELECT p.name, coalesce(f.recorded_at, f.finished_at) FROM file_uploads f JOIN projects p ON p.id = f.project_id
            WHERE f.s3_key = k.s3_key AND f.bucket = k.bucket
              AND fleet_records_object(f.status, f.skip_reason, f.mtime)
              AND p.name <> me_name AND p.endpoint IS NOT DISTINCT FROM me_endpoint
              AND NOT (p.shared_prefix AND me_shared)
        ) AS r
        ORDER BY r.uploaded_at DESC NULLS LAST LIMIT 1
    ) AS w ON true
$$;

CREATE OR REPLACE FUNCTION fleet_key_written_since(me bigint, key_bucket text, key_name text, since timestamptz)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT EXISTS (
        SELECT 1 FROM projects p JOIN stored_objects x
          ON x.project_id = p.id AND x.bucket = key_bucket AND x.s3_key = key_name
        WHERE p.id <> me AND x.uploaded_at > since
    ) OR EXISTS (
        SELECT 1 FROM file_uploads f
        WHERE f.s3_key = key_name AND f.bucket = key_bucket AND f.project_id <> me
          AND coalesce(f.recorded_at, f.finished_at) > since
          AND fleet_records_object(f.status, f.skip_reason, f.mtime)
    )
$$;

CREATE OR REPLACE FUNCTION fleet_owned_multipart_uploads(upload_buckets text[], upload_keys text[], upload_ids text[])
RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH u AS (SELECT * FROM unnest(upload_buckets, upload_keys, upload_ids) AS u (bucket, s3_key, upload_id)),
         f AS (SELECT f.id, f.created_at, f.multipart_upload_id, u.upload_id
               FROM u JOIN file_uploads AS f ON f.s3_key = u.s3_key AND f.bucket = u.bucket)
    SELECT upload_id FROM f WHERE multipart_upload_id = upload_id
    UNION
    SELECT f.upload_id FROM f
    WHERE EXISTS (SELECT 1 FROM upload_parts AS p
                  WHERE p.file_upload_id = f.id AND p.file_created_at = f.created_at
                    AND p.multipart_upload_id = f.upload_id)
$$;

ALTER VIEW object_records OWNER TO fleet_admin;
ALTER FUNCTION fleet_sees_every_project() OWNER TO fleet_admin;
ALTER FUNCTION fleet_records_object(text, text, timestamptz) OWNER TO fleet_admin;
ALTER FUNCTION fleet_latest_object(bigint, text, text) OWNER TO fleet_admin;
REVOKE ALL ON object_records FROM PUBLIC;
GRANT SELECT ON object_records TO fleet_admin, fleet_device, fleet_reader;
GRANT EXECUTE ON FUNCTION fleet_sees_every_project(), fleet_latest_object(bigint, text, text)
    TO fleet_admin, fleet_device, fleet_reader;

-- Claims up to claim_limit of a session's files in from_status for worker, in id order after after_id. Claims of
-- one session take turns on a transaction-scoped advisory lock, and the update, a statement of its own in this
-- VOLATILE function, reads the rows with a snapshot taken after the lock was granted: it never picks rows the
-- previous claim took, so no row has to be locked first (FOR UPDATE SKIP LOCKED wrote a WAL record per file).
-- A row is still taken only if it has the status it was chosen with. The lock's first key (1718379372, "flcl")
-- names it among the advisory locks of the database, the second is the session's hash.
CREATE FUNCTION fleet_claim_files(claim_session bigint, from_status text, after_id bigint, claim_limit integer,
                                  worker text, max_attempts integer, unfixable_classes text[])
RETURNS TABLE (id bigint, created_at timestamptz, local_path text, path_bytes bytea, bucket text, s3_key text,
               size_bytes bigint, mtime timestamptz, claimed_from text, codec text, codec_level integer)
LANGUAGE sql VOLATILE SET search_path = public, pg_temp AS $$
    SELECT pg_advisory_xact_lock(1718379372, hashint8(claim_session));
    WITH c AS (
        SELECT f.id, f.created_at FROM file_uploads AS f
        WHERE f.session_id = claim_session AND f.status = from_status AND f.id > after_id
          AND (f.status <> 'permanent_failure' OR f.error_class IS NULL OR f.error_class <> ALL (unfixable_classes))
          AND (max_attempts IS NULL OR f.attempts < max_attempts)
        ORDER BY f.id LIMIT claim_limit
    )
    UPDATE file_uploads AS f SET status = 'uploading', claimed_by = worker, claimed_at = now(), updated_at = now()
    FROM c
    WHERE f.id = c.id AND f.created_at = c.created_at AND f.status = from_status
    RETURNING f.id, f.created_at, f.local_path, f.path_bytes, f.bucket, f.s3_key, f.size_bytes, f.mtime, from_status,
              f.codec, f.codec_level
$$;

ALTER FUNCTION fleet_claim_files(bigint, text, bigint, integer, text, integer, text[]) OWNER TO fleet_admin;
REVOKE ALL ON FUNCTION fleet_claim_files(bigint, text, bigint, integer, text, integer, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fleet_claim_files(bigint, text, bigint, integer, text, integer, text[])
    TO fleet_admin, fleet_device;

-- Before a month of file_uploads is dropped or detached (retention), its records of objects move to
-- stored_objects, so that what the bucket holds stays known: files still on a vehicle are not sent again, and
-- the deletion policies still find them uploaded. Each key's latest record in the month replaces an older
-- row of stored_objects and never a newer one. The month is locked against writes until the end of the caller's
-- transaction (a retry or a settle may still change an old month's rows): detach it in the same transaction.
-- Returns how many keys were written.
CREATE FUNCTION fleet_keep_object_records(month_partition regclass) RETURNS bigint
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    kept bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = month_partition
                   AND inhparent = 'file_uploads'::regclass) THEN
        RAISE EXCEPTION '% is not a partition of file_uploads', month_partition;
    END IF;
    EXECUTE format('LOCK TABLE %s IN SHARE MODE', month_partition);
    EXECUTE format($q$
        INSERT INTO stored_objects AS o (project_id, bucket, s3_key, size_bytes, mtime, checksum_sha256, etag,
                                         session_id, uploaded_at, codec, sent_bytes)
        SELECT DISTINCT ON (f.project_id, f.bucket, f.s3_key) f.project_id, f.bucket, f.s3_key, f.size_bytes, f.mtime,
               CASE WHEN f.status = 'uploaded' THEN f.checksum_sha256 END,
               CASE WHEN f.status = 'uploaded' THEN f.etag END, f.session_id, coalesce(f.recorded_at, f.finished_at),
               f.codec, coalesce(f.sent_bytes, f.size_bytes)
        FROM %s AS f
        WHERE fleet_records_object(f.status, f.skip_reason, f.mtime)
          AND coalesce(f.recorded_at, f.finished_at) IS NOT NULL
        ORDER BY f.project_id, f.bucket, f.s3_key, coalesce(f.recorded_at, f.finished_at) DESC
        ON CONFLICT (project_id, bucket, s3_key) DO UPDATE
        SET size_bytes = EXCLUDED.size_bytes, mtime = EXCLUDED.mtime, checksum_sha256 = EXCLUDED.checksum_sha256,
            etag = EXCLUDED.etag, session_id = EXCLUDED.session_id, uploaded_at = EXCLUDED.uploaded_at,
            imported_from = NULL, codec = EXCLUDED.codec, sent_bytes = EXCLUDED.sent_bytes
        WHERE o.uploaded_at < EXCLUDED.uploaded_at
    $q$, month_partition);
    GET DIAGNOSTICS kept = ROW_COUNT;
    RETURN kept;
END
$$;

ALTER FUNCTION fleet_keep_object_records(regclass) OWNER TO fleet_admin;
REVOKE ALL ON FUNCTION fleet_keep_object_records(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fleet_keep_object_records(regclass) TO fleet_admin;
