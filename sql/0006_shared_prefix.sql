-- fleet-upload ledger: a key belongs to the project that stored it.
--
-- Two projects writing the same bucket and key would overwrite each other's objects, and a project that had
-- deleted its local copy would lose its only one. A file whose key another project's stored_objects holds (same
-- bucket, same endpoint) is refused when the session records it, unless both projects set shared_prefix (the
-- configuration's s3.shared_prefix): then the last upload of the key wins, as S3 itself does.
--
-- The refusal looks keys up by (bucket, s3_key) across projects; the primary key starts with project_id, so
-- it gets an index of its own.

ALTER TABLE projects ADD COLUMN shared_prefix boolean NOT NULL DEFAULT false;

CREATE INDEX stored_objects_bucket_key ON stored_objects (bucket, s3_key);
