-- fleet-upload ledger, version 3: what the Grafana dashboards (grafana/dashboards/) read.
--
-- Every panel query is run against a generated fleet by Tests/IntegrationTests/GrafanaPanelTests.swift, which
-- fails when a time-filtered panel reads file_uploads partitions sequentially. The indexes of 0001 already
-- serve most panels: file_uploads_finished_at (uploads and bytes over time), file_uploads_session_status and
-- file_uploads_failures (one session's files), sync_sessions_*_started (sessions by project and device),
-- device_heartbeats' primary key (disk and queue per device), and the created_at / started_at / deleted_at
-- indexes of trigger_events, retry_rounds and local_deletions.

-- Failures over time (transient vs permanent, failures by class, latest failures): failures are a few per cent
-- of the rows finishing in a time range; this index holds only them, so the panels do not visit every
-- finished row of the range to find them.
CREATE INDEX file_uploads_failed_finished ON file_uploads (finished_at)
    WHERE status IN ('failed', 'permanent_failure');
