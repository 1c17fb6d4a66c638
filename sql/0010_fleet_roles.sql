-- fleet-upload ledger, version 10: one ledger for a whole fleet. Every vehicle logs in with a role of its own,
-- and row-level security lets it touch only its own device's rows.
--
-- Three group roles (cluster-wide, so created once however many ledgers the cluster holds; the privileges are
-- granted per database, here):
--   fleet_admin   migrations and everything else: it owns every ledger table (every privilege, every row);
--   fleet_device  what upload, retry, trigger and master once/run need, on its own device's rows only;
--   fleet_reader  Grafana and `master status`: SELECT on every row, nothing else.
-- A vehicle's login role (`master device add`) is a member of fleet_device; device_logins says which device it
-- is (by current_user, never by a session setting, so it holds behind a transaction pooler) and
-- device_projects which projects it may use.
--
-- A device role sees:
--   devices, device_heartbeats, local_deletions       its own device's rows
--   queued_files                                      its own device's rows of projects it is granted
--   sync_sessions                                     its own device's sessions, of projects it is granted
--   file_uploads, retry_rounds, trigger_events,
--   session_workers                                   rows of its own sessions
--   upload_parts                                      parts of its own file rows
--   multipart_aborts                                  its own device's aborts, of projects it is granted
--   projects, config_history, stored_objects          the projects it is granted
--   device_logins, device_projects                    its own login
--   schema_migrations                                 SELECT, to check the schema version (it never migrates)
-- It cannot change the schema. Where it must know about rows it cannot see, a SECURITY DEFINER function
-- answers exactly that question and nothing more: which project owns a key (fleet_key_owners), whether another
-- project wrote a key since (fleet_key_written_since), which open multipart uploads some row owns
-- (fleet_owned_multipart_uploads); and fleet_ensure_file_upload_partitions creates the monthly partitions.

DO $$
BEGIN
    -- Two ledgers of one cluster migrating at once: the second CREATE ROLE waits for the first and then finds
    -- the role taken (unique_violation) rather than existing (duplicate_object). Either way the role is there.
    BEGIN
        CREATE ROLE fleet_admin NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    BEGIN
        CREATE ROLE fleet_device NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    BEGIN
        CREATE ROLE fleet_reader NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
END
$$;

-- Which device a login role is, and which projects it may use (by name: a project is created by the first
-- session that uses it, perhaps after the device was added).
CREATE TABLE device_logins (
    role_name  text PRIMARY KEY,
    device_id  bigint NOT NULL UNIQUE REFERENCES devices (id),
    auth       text NOT NULL CHECK (auth IN ('password', 'certificate')),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE device_projects (
    role_name    text NOT NULL REFERENCES device_logins (role_name) ON DELETE CASCADE,
    project_name text NOT NULL CHECK (project_name <> ''),
    PRIMARY KEY (role_name, project_name)
);

-- The identity of the connected device role; NULL (and no projects) for every other role. Policies call these
-- as (SELECT fleet_device_id()), so each is evaluated once per statement, not once per row.
CREATE FUNCTION fleet_device_id() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT device_id FROM device_logins WHERE role_name = current_user
$$;

CREATE FUNCTION fleet_device_name() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT d.name FROM device_logins l JOIN devices d ON d.id = l.device_id WHERE l.role_name = current_user
$$;

CREATE FUNCTION fleet_device_project_names() RETURNS text[] LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(project_name), '{}') FROM device_projects WHERE role_name = current_user
$$;

CREATE FUNCTION fleet_device_projects() RETURNS bigint[] LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(p.id), '{}')
    FROM device_projects g JOIN projects p ON p.name = g.project_name
    WHERE g.role_name = current_user
$$;

-- Which of these keys another project stores (same endpoint; unless both share their prefix), and the name of
-- that project: a device must be refused such a key without reading the other project's rows.
CREATE FUNCTION fleet_key_owners(me_name text, me_endpoint text, me_shared boolean, key_buckets text[],
                                 key_names text[])
RETURNS TABLE (bucket text, s3_key text, owner text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT k.bucket, k.s3_key, w.name
    FROM (SELECT DISTINCT * FROM unnest(key_buckets, key_names) AS u (bucket, s3_key)) AS k
    JOIN LATERAL (
        SELECT p.name FROM stored_objects x JOIN projects p ON p.id = x.project_id
        WHERE x.bucket = k.bucket AND x.s3_key = k.s3_key AND p.name <> me_name
          AND p.endpoint IS NOT DISTINCT FROM me_endpoint AND NOT (p.shared_prefix AND me_shared)
        ORDER BY x.uploaded_at DESC LIMIT 1
    ) AS w ON true
$$;

-- Whether a project other than `me` stored the key after `since`: the bucket no longer holds me's copy.
CREATE FUNCTION fleet_key_written_since(me bigint, key_bucket text, key_name text, since timestamptz)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT EXISTS (
        SELECT 1 FROM stored_objects x
        WHERE x.bucket = key_bucket AND x.s3_key = key_name AND x.project_id <> me AND x.uploaded_at > since
    )
$$;

-- Of these open multipart uploads, the ids some row of any project or device owns: a file_uploads row that
-- records it, or an upload_parts row that sent a part of it. A device must not abort another device's upload.
CREATE FUNCTION fleet_owned_multipart_uploads(upload_buckets text[], upload_keys text[], upload_ids text[])
RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH u AS (SELECT * FROM unnest(upload_buckets, upload_keys, upload_ids) AS u (bucket, s3_key, upload_id)),
         f AS (SELECT f.id, f.created_at, f.multipart_upload_id, u.upload_id
               FROM u JOIN projects AS p ON true
               JOIN file_uploads AS f ON f.project_id = p.id AND f.s3_key = u.s3_key AND f.bucket = u.bucket)
    SELECT upload_id FROM f WHERE multipart_upload_id = upload_id
    UNION
    SELECT f.upload_id FROM f
    WHERE EXISTS (SELECT 1 FROM upload_parts AS p
                  WHERE p.file_upload_id = f.id AND p.file_created_at = f.created_at
                    AND p.multipart_upload_id = f.upload_id)
$$;

-- A session's opener creates the coming months' partitions; a device may not create tables itself.
ALTER FUNCTION fleet_ensure_file_upload_partitions(timestamptz, integer)
    SECURITY DEFINER SET search_path = public, pg_temp;

REVOKE ALL ON FUNCTION fleet_ensure_file_upload_partitions(timestamptz, integer), fleet_device_id(),
    fleet_device_name(), fleet_device_project_names(), fleet_device_projects(),
    fleet_key_owners(text, text, boolean, text[], text[]), fleet_key_written_since(bigint, text, text, timestamptz),
    fleet_owned_multipart_uploads(text[], text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fleet_ensure_file_upload_partitions(timestamptz, integer), fleet_device_id(),
    fleet_device_name(), fleet_device_project_names(), fleet_device_projects(),
    fleet_key_owners(text, text, boolean, text[], text[]), fleet_key_written_since(bigint, text, text, timestamptz),
    fleet_owned_multipart_uploads(text[], text[], text[]) TO fleet_admin, fleet_device;
GRANT EXECUTE ON FUNCTION fleet_device_id(), fleet_device_name(), fleet_device_project_names(),
    fleet_device_projects() TO fleet_reader;

-- Nobody but the schema's owner creates tables in it (the default since PostgreSQL 15; older databases let
-- every role). A role that may not revoke it gets a warning, not an error.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO fleet_admin, fleet_device, fleet_reader;
GRANT CREATE ON SCHEMA public TO fleet_admin;

GRANT ALL ON ALL TABLES IN SCHEMA public TO fleet_admin;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO fleet_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO fleet_reader;

GRANT SELECT ON schema_migrations, device_logins, device_projects TO fleet_device;
GRANT SELECT, INSERT, UPDATE ON projects, devices, config_history, sync_sessions, file_uploads, stored_objects,
    retry_rounds, session_workers TO fleet_device;
GRANT SELECT, INSERT, UPDATE, DELETE ON upload_parts, local_deletions TO fleet_device;
GRANT SELECT, DELETE ON queued_files TO fleet_device;
GRANT SELECT, INSERT ON trigger_events, device_heartbeats, multipart_aborts TO fleet_device;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO fleet_device;

-- The staging tables of a run are temporary tables.
DO $$
BEGIN
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO fleet_device', current_database());
END
$$;

-- fleet_admin owns the tables, so every member may migrate them. The role that migrates becomes a member (a
-- superuser needs no membership) and so keeps its rights; the partition function stays its own.
DO $$
DECLARE
    t regclass;
BEGIN
    IF NOT pg_has_role(current_user, 'fleet_admin', 'MEMBER') THEN
        BEGIN
            EXECUTE format('GRANT fleet_admin TO %I', current_user);
        EXCEPTION WHEN unique_violation THEN NULL;  -- granted by this role's migration of another ledger
        END;
    END IF;
    FOR t IN SELECT c.oid FROM pg_class c
             WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
               AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO fleet_admin', t);
    END LOOP;
END
$$;

-- Row-level security on every table that holds fleet data. The tables' owner, fleet_admin, and its members are
-- not subject to it; fleet_reader sees every row.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['projects', 'devices', 'config_history', 'sync_sessions', 'file_uploads',
                             'upload_parts', 'stored_objects', 'retry_rounds', 'trigger_events', 'device_heartbeats',
                             'local_deletions', 'session_workers', 'multipart_aborts', 'queued_files',
                             'device_logins', 'device_projects'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY fleet_admin_all ON %I TO fleet_admin USING (true) WITH CHECK (true)', t);
        EXECUTE format('CREATE POLICY fleet_reader_select ON %I FOR SELECT TO fleet_reader USING (true)', t);
    END LOOP;
END
$$;

CREATE POLICY fleet_device_own ON device_logins FOR SELECT TO fleet_device USING (role_name = current_user);
CREATE POLICY fleet_device_own ON device_projects FOR SELECT TO fleet_device USING (role_name = current_user);

CREATE POLICY fleet_device_own ON projects TO fleet_device
    USING (name = ANY ((SELECT fleet_device_project_names())::text[]));

-- The device's row already exists (`master device add` creates it); an upsert proposes a row by name first.
CREATE POLICY fleet_device_own ON devices TO fleet_device
    USING (id = (SELECT fleet_device_id()))
    WITH CHECK (name = (SELECT fleet_device_name()));

CREATE POLICY fleet_device_own ON device_heartbeats TO fleet_device
    USING (device_id = (SELECT fleet_device_id()));

CREATE POLICY fleet_device_own ON local_deletions TO fleet_device
    USING (device_id = (SELECT fleet_device_id()));

CREATE POLICY fleet_device_own ON config_history TO fleet_device
    USING (project_id = ANY ((SELECT fleet_device_projects())::bigint[]));

CREATE POLICY fleet_device_own ON stored_objects TO fleet_device
    USING (project_id = ANY ((SELECT fleet_device_projects())::bigint[]));

CREATE POLICY fleet_device_own ON sync_sessions TO fleet_device
    USING (device_id = (SELECT fleet_device_id()))
    WITH CHECK (device_id = (SELECT fleet_device_id()) AND project_id = ANY ((SELECT fleet_device_projects())::bigint[]));

-- Rows of a session: the session must be visible, which sync_sessions' own policy decides.
CREATE POLICY fleet_device_own ON file_uploads TO fleet_device
    USING (EXISTS (SELECT 1 FROM sync_sessions s WHERE s.id = session_id))
    WITH CHECK (EXISTS (SELECT 1 FROM sync_sessions s WHERE s.id = session_id AND s.project_id = file_uploads.project_id));

CREATE POLICY fleet_device_own ON retry_rounds TO fleet_device
    USING (EXISTS (SELECT 1 FROM sync_sessions s WHERE s.id = session_id));

CREATE POLICY fleet_device_own ON trigger_events TO fleet_device
    USING (EXISTS (SELECT 1 FROM sync_sessions s WHERE s.id = session_id));

CREATE POLICY fleet_device_own ON session_workers TO fleet_device
    USING (EXISTS (SELECT 1 FROM sync_sessions s WHERE s.id = session_id));

CREATE POLICY fleet_device_own ON upload_parts TO fleet_device
    USING (EXISTS (SELECT 1 FROM file_uploads f WHERE f.id = file_upload_id AND f.created_at = file_created_at));

CREATE POLICY fleet_device_own ON multipart_aborts TO fleet_device
    USING (device_id = (SELECT fleet_device_id()) AND project_id = ANY ((SELECT fleet_device_projects())::bigint[]));

-- What an import queued for the device's agent: it reads its rows and forgets each once settled.
CREATE POLICY fleet_device_own ON queued_files TO fleet_device
    USING (device_id = (SELECT fleet_device_id()) AND project_id = ANY ((SELECT fleet_device_projects())::bigint[]));
