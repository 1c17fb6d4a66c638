-- fleet-upload ledger, version 8: the multipart uploads a run found open in the bucket, owned by no row, and
-- aborted.
--
-- A process killed between S3 creating a multipart upload and the ledger recording its id leaves an upload
-- that nothing resumes: its parts cost storage until someone aborts it. Each run lists the open uploads under
-- the project's prefix; one that no file_uploads row (multipart_upload_id) and no upload_parts row names, and
-- that is older than upload.abandoned_multipart_hours, is aborted and recorded here.

CREATE TABLE multipart_aborts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id    bigint NOT NULL REFERENCES projects (id),
    device_id     bigint REFERENCES devices (id),
    bucket        text NOT NULL,
    s3_key        text NOT NULL,
    upload_id     text NOT NULL,
    initiated_at  timestamptz,              -- as ListMultipartUploads reports it; NULL when it reports none
    aborted_by    text NOT NULL,            -- hostname:pid of the process that aborted it
    aborted_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, bucket, upload_id)
);
CREATE INDEX multipart_aborts_aborted_at ON multipart_aborts (aborted_at);
