-- fleet-upload ledger, version 1.
--
-- Applied by the migrator inside one transaction while it holds the migration advisory lock; recorded in
-- schema_migrations. States are CHECK constraints on text columns so Grafana reads them as plain strings.
--
-- Shape:
--   projects 1─N sync_sessions 1─N file_uploads 1─N upload_parts
--   devices  1─N sync_sessions, device_heartbeats, local_deletions
--   config_history 1─N sync_sessions;  sync_sessions 1─N retry_rounds, trigger_events
--   stored_objects: what the ledger knows to be in the bucket, one row per (project, bucket, key); the
--   "already uploaded?" question is one index probe here, however long the file history grows.

CREATE TABLE projects (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL UNIQUE CHECK (name <> ''),
    bucket        text,                       -- NULL when the first directory names the bucket
    prefix        text NOT NULL DEFAULT '',
    region        text NOT NULL,
    endpoint      text,                       -- NULL for AWS's own endpoints
    key_template  text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                text NOT NULL UNIQUE CHECK (name <> ''),
    hostname            text,
    agent_version       text,
    first_seen_at       timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at   timestamptz,
    disk_total_bytes    bigint,
    disk_used_bytes     bigint,
    disk_used_percent   numeric(5, 2) CHECK (disk_used_percent BETWEEN 0 AND 100),
    queue_files         bigint,               -- ready but not yet uploaded
    queue_bytes         bigint,
    last_upload_at      timestamptz
);

-- Every distinct effective configuration, by SHA-256 of its canonical JSON. Secrets never reach it:
-- database URLs and credentials are not part of the configuration schema.
CREATE TABLE config_history (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id    bigint NOT NULL REFERENCES projects (id),
    config_hash   text NOT NULL CHECK (config_hash ~ '^[0-9a-f]{64}$'),
    config        jsonb NOT NULL,
    source_path   text,
    first_used_at timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, config_hash)
);

CREATE TABLE sync_sessions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id      bigint NOT NULL REFERENCES projects (id),
    device_id       bigint REFERENCES devices (id),
    config_id       bigint REFERENCES config_history (id),
    kind            text NOT NULL CHECK (kind IN ('upload', 'once', 'immediate', 'scheduled', 'startup')),
    status          text NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'completed', 'completed_with_errors', 'failed', 'interrupted')),
    hostname        text NOT NULL,
    pid             integer NOT NULL,
    local_directory text NOT NULL,            -- the source root (several sources: joined with ', ')
    bucket          text,                     -- NULL when the first directory names the bucket
    s3_prefix       text NOT NULL DEFAULT '',
    started_at      timestamptz NOT NULL DEFAULT now(),
    heartbeat_at    timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    total_files     bigint NOT NULL DEFAULT 0,
    total_bytes     bigint NOT NULL DEFAULT 0,
    files_uploaded  bigint NOT NULL DEFAULT 0,
    bytes_uploaded  bigint NOT NULL DEFAULT 0,
    files_skipped   bigint NOT NULL DEFAULT 0,
    bytes_skipped   bigint NOT NULL DEFAULT 0,
    files_failed    bigint NOT NULL DEFAULT 0,
    error_message   text,
    CHECK ((status = 'running') = (finished_at IS NULL))
);
CREATE INDEX sync_sessions_started_at ON sync_sessions (started_at);
CREATE INDEX sync_sessions_project_started ON sync_sessions (project_id, started_at);
CREATE INDEX sync_sessions_device_started ON sync_sessions (device_id, started_at);
CREATE INDEX sync_sessions_running ON sync_sessions (heartbeat_at) WHERE status = 'running';

-- One row per file per session, partitioned by month of created_at so history can grow to fleet scale
-- and old months can be detached. fleet_ensure_file_upload_partitions() creates months ahead of use; the
-- default partition only catches rows outside every created month.
CREATE TABLE file_uploads (
    id                  bigserial NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    session_id          bigint NOT NULL REFERENCES sync_sessions (id),
    project_id          bigint NOT NULL REFERENCES projects (id),
    source              text,                 -- the configured source's name (terminal, ros, ...)
    local_path          text NOT NULL,        -- display form: invalid UTF-8 bytes appear as %XX
    rel_path            text NOT NULL,
    path_bytes          bytea,                -- the exact local path, only when it is not valid UTF-8
    bucket              text NOT NULL,
    s3_key              text NOT NULL,
    size_bytes          bigint NOT NULL CHECK (size_bytes >= 0),
    mtime               timestamptz NOT NULL,
    checksum_sha256     text CHECK (checksum_sha256 ~ '^[0-9a-f]{64}$'),
    status              text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'uploading', 'uploaded', 'failed', 'permanent_failure', 'skipped')),
    skip_reason         text CHECK (skip_reason IN ('ledger', 'bucket')),
    attempts            integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at     timestamptz,
    error_class         text,
    error_message       text,
    http_status         integer,
    etag                text,
    version_id          text,
    multipart_upload_id text,
    part_size_bytes     bigint,
    claimed_by          text,                 -- host:pid of the process that holds the row while uploading
    claimed_at          timestamptz,
    started_at          timestamptz,
    finished_at         timestamptz,
    local_deleted_at    timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, created_at),
    CHECK ((status = 'skipped') = (skip_reason IS NOT NULL)),
    CHECK (status <> 'uploading' OR claimed_by IS NOT NULL)
) PARTITION BY RANGE (created_at);
CREATE TABLE file_uploads_default PARTITION OF file_uploads DEFAULT;
CREATE INDEX file_uploads_session_status ON file_uploads (session_id, status);
CREATE INDEX file_uploads_project_key ON file_uploads (project_id, s3_key);
CREATE INDEX file_uploads_finished_at ON file_uploads (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX file_uploads_failures ON file_uploads (session_id, error_class)
    WHERE status IN ('failed', 'permanent_failure');
CREATE INDEX file_uploads_claimed ON file_uploads (claimed_at) WHERE status = 'uploading';

CREATE FUNCTION fleet_ensure_file_upload_partitions(from_time timestamptz, months integer)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    month_start timestamptz;
    partition_name text;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        month_start := date_trunc('month', from_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                       + make_interval(months => i);
        partition_name := 'file_uploads_' || to_char(month_start AT TIME ZONE 'UTC', 'YYYY_MM');
        IF to_regclass(partition_name) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF file_uploads FOR VALUES FROM (%L) TO (%L)',
                           partition_name, month_start, month_start + interval '1 month');
        END IF;
    END LOOP;
END
$$;
SELECT fleet_ensure_file_upload_partitions(now() - interval '1 month', 4);

-- Multipart progress: each finished part as S3 acknowledged it, so a killed upload resumes from here.
CREATE TABLE upload_parts (
    file_upload_id      bigint NOT NULL,
    file_created_at     timestamptz NOT NULL,
    multipart_upload_id text NOT NULL,
    part_number         integer NOT NULL CHECK (part_number BETWEEN 1 AND 10000),
    size_bytes          bigint NOT NULL CHECK (size_bytes >= 0),
    etag                text NOT NULL,
    checksum_sha256     text,
    uploaded_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (file_upload_id, multipart_upload_id, part_number),
    FOREIGN KEY (file_upload_id, file_created_at) REFERENCES file_uploads (id, created_at) ON DELETE CASCADE
);

-- What the ledger knows to be stored: the last verified upload of each key.
CREATE TABLE stored_objects (
    project_id       bigint NOT NULL REFERENCES projects (id),
    bucket           text NOT NULL,
    s3_key           text NOT NULL,
    size_bytes       bigint NOT NULL,
    mtime            timestamptz NOT NULL,
    checksum_sha256  text,
    etag             text,
    session_id       bigint REFERENCES sync_sessions (id),
    uploaded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, bucket, s3_key)
);

CREATE TABLE retry_rounds (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id      bigint NOT NULL REFERENCES sync_sessions (id),
    round           integer NOT NULL CHECK (round >= 1),
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    files_attempted bigint NOT NULL DEFAULT 0,
    files_uploaded  bigint NOT NULL DEFAULT 0,
    files_failed    bigint NOT NULL DEFAULT 0,
    UNIQUE (session_id, round)
);
CREATE INDEX retry_rounds_started_at ON retry_rounds (started_at);

CREATE TABLE trigger_events (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id       bigint NOT NULL REFERENCES sync_sessions (id),
    url              text NOT NULL,
    attempt          integer NOT NULL CHECK (attempt >= 1),
    http_status      integer,
    latency_ms       integer,
    succeeded        boolean NOT NULL,
    error_message    text,
    response_excerpt text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX trigger_events_session ON trigger_events (session_id);
CREATE INDEX trigger_events_created_at ON trigger_events (created_at);

CREATE TABLE device_heartbeats (
    device_id         bigint NOT NULL REFERENCES devices (id),
    at                timestamptz NOT NULL DEFAULT now(),
    disk_used_percent numeric(5, 2),
    queue_files       bigint,
    queue_bytes       bigint,
    PRIMARY KEY (device_id, at)
);
CREATE INDEX device_heartbeats_at ON device_heartbeats (at);

-- Every local file the tool deleted, and why.
CREATE TABLE local_deletions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id       bigint REFERENCES devices (id),
    session_id      bigint REFERENCES sync_sessions (id),
    local_path      text NOT NULL,
    size_bytes      bigint NOT NULL,
    mtime           timestamptz NOT NULL,
    reason          text NOT NULL CHECK (reason IN ('after_upload', 'age', 'emergency')),
    was_uploaded    boolean NOT NULL,
    deleted_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX local_deletions_deleted_at ON local_deletions (deleted_at);
