-- fleet-upload ledger, version 9: state brought in from the tools fleet-upload replaces (`master import-state`).
--
-- * The vehicle daemon's registry of uploaded files becomes stored_objects rows (imported_from 'tvm_registry'):
--   the registry kept each file's size and mtime but no checksum, so such a row stands for an upload although
--   no SHA-256 verifies it. The agent's scan and every session skip a file whose key, size and mtime it holds.
-- * The Data Uploader's database becomes projects, sessions (kind 'imported', import_key naming the old session
--   so a second import takes nothing twice), file_uploads and config_history rows, and stored_objects for its
--   uploaded files (imported_from 'data_uploader'). It recorded no mtime: those rows have none (NULL), and an
--   object without an mtime matches a file on key and size alone.
-- * The daemon's queue of files waiting for upload becomes queued_files: the agent takes them into its queue
--   when it starts, whatever their age, and forgets each row once the file is settled (uploaded or stored).
--
-- No imported object carries a checksum, so none of them ever lets a deletion policy delete a local file: only
-- an upload this tool verified does.

ALTER TABLE sync_sessions DROP CONSTRAINT sync_sessions_kind_check;
ALTER TABLE sync_sessions ADD CONSTRAINT sync_sessions_kind_check
    CHECK (kind IN ('upload', 'once', 'immediate', 'scheduled', 'startup', 'imported'));
ALTER TABLE sync_sessions ADD COLUMN import_key text UNIQUE;   -- 'data-uploader:<project>:<old session id>'

ALTER TABLE file_uploads ALTER COLUMN mtime DROP NOT NULL;        -- NULL only in imported sessions

ALTER TABLE stored_objects ALTER COLUMN mtime DROP NOT NULL;      -- NULL only for imported objects
ALTER TABLE stored_objects ADD COLUMN imported_from text
    CHECK (imported_from IN ('tvm_registry', 'data_uploader'));

CREATE TABLE queued_files (
    device_id     bigint NOT NULL REFERENCES devices (id),
    project_id    bigint NOT NULL REFERENCES projects (id),
    local_path    text NOT NULL,
    size_bytes    bigint NOT NULL CHECK (size_bytes >= 0),
    mtime         timestamptz NOT NULL,        -- as the file was when it was imported
    detected_at   timestamptz,                 -- when the old daemon queued it
    attempts      integer NOT NULL DEFAULT 0,  -- the old daemon's failed attempts
    imported_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, local_path)
);
