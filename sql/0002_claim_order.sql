-- Claims take a session's pending files in id order. With the id in the index they read the next rows
-- straight from it; (session_id, status) alone made every claim fetch and sort all pending rows of the
-- session, which grows with the square of the session's size.
DROP INDEX file_uploads_session_status;
CREATE INDEX file_uploads_session_status ON file_uploads (session_id, status, id);
