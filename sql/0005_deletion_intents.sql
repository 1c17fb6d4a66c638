-- fleet-upload ledger, version 5: a local file's deletion is recorded before the file goes.
--
-- Deleting is three steps: the process records its intent (state 'intended', holder = hostname:pid), unlinks
-- the file, then confirms (state 'deleted', and local_deleted_at on the file's upload rows) or withdraws the
-- intent when the file stayed. A ledger that cannot be written stops the deletion before anything is unlinked.
-- An intent left by a process that died between the steps is settled by the next run on the device: deleted
-- if the file is gone, withdrawn if it is still there. Only 'deleted' rows are deletions.
--
-- file_device and file_inode say which file an upload read (with its size and mtime): a file replaced later by
-- another of the same size and mtime is another inode, and is not deleted as the uploaded one.

ALTER TABLE local_deletions
    ADD COLUMN state text NOT NULL DEFAULT 'deleted',
    ADD COLUMN holder text,                  -- hostname:pid of the process that intends the deletion
    ADD COLUMN local_path_bytes bytea,       -- the exact path, only when it is not valid UTF-8
    ADD COLUMN bucket text,                  -- where the file was (or would be) uploaded, for matching its rows
    ADD COLUMN s3_key text;

ALTER TABLE file_uploads
    ADD COLUMN file_device bigint,           -- st_dev of the file the upload read
    ADD COLUMN file_inode bigint;            -- st_ino, as a signed 64-bit bit pattern

-- Every existing row is 'deleted' (the default): the check need not scan the table to hold.
ALTER TABLE local_deletions
    ADD CONSTRAINT local_deletions_state_check CHECK (state IN ('intended', 'deleted')) NOT VALID;

CREATE INDEX local_deletions_intended ON local_deletions (device_id) WHERE state = 'intended';
