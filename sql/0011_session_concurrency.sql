-- fleet-upload ledger, version 11: how many files a session kept in flight.
--
-- With upload.workers set to auto, each run grows the number of files in flight while throughput grows and
-- backs off on throttling, timeouts and resets; the level it settled on (or where it had got to when the run
-- ended) is recorded here. With a fixed upload.workers, that number. NULL for sessions before this version.

ALTER TABLE sync_sessions ADD COLUMN concurrency integer;
