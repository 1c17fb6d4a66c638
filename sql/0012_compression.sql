-- fleet-upload ledger, version 12: files sent compressed (sources[].compress).
--
-- A compressed file's row keeps the original file's size, mtime and SHA-256: its identity, which skipping on a
-- rerun, retry and deleting after upload check. codec and codec_level say how it is sent (NULL: as it is, the
-- level of the codec otherwise), decided when the file is recorded, so a retry sends it the same way whatever the
-- configuration says by then; sent_bytes is the size of the object in the bucket (the compressed size), recorded
-- for every upload. stored_objects remembers the codec and the object's size beside the original's identity.

ALTER TABLE file_uploads
    ADD COLUMN codec text,
    ADD COLUMN codec_level integer,
    ADD COLUMN sent_bytes bigint;

ALTER TABLE stored_objects
    ADD COLUMN codec text,
    ADD COLUMN sent_bytes bigint;
