-- fleet-upload ledger, version 15: the heartbeat panels read the index alone.
--
-- The panels that chart a few devices' disk and queue over a day (the 10 fullest devices, the 10 longest queues)
-- read each device's heartbeats in the range through the primary key (device_id, at). Heartbeats arrive in time
-- order from every device at once, so one device's day lies on about as many table pages as it has heartbeats:
-- with 1,000 devices, ten devices' day read cold (after a restart) took 3.3 s. With the charted values in the
-- key's leaf pages the same read is an index-only scan of a few dozen pages. The key is rebuilt, which takes
-- time in proportion to the heartbeats kept.
ALTER TABLE device_heartbeats DROP CONSTRAINT device_heartbeats_pkey,
    ADD PRIMARY KEY (device_id, at) INCLUDE (disk_used_percent, queue_files, queue_bytes);
