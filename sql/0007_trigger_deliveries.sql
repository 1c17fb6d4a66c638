-- fleet-upload ledger: trigger requests are grouped into deliveries.
--
-- A delivery is one announcement of a session: its requests (attempt 1, 2, … after network errors, 5xx and
-- 429) all carry the same Idempotency-Key, '<session id>-<delivery>', so the endpoint can tell a retried
-- request from a new announcement. A delivery that failed is tried again by a later run as the next delivery
-- of the same session, with a new key. Rows recorded before this version are numbered here: every attempt 1
-- started a delivery.

ALTER TABLE trigger_events ADD COLUMN delivery integer;

UPDATE trigger_events AS e
SET delivery = GREATEST(numbered.delivery, 1)
FROM (
    SELECT id, sum(CASE WHEN attempt = 1 THEN 1 ELSE 0 END) OVER (PARTITION BY session_id ORDER BY id) AS delivery
    FROM trigger_events
) AS numbered
WHERE e.id = numbered.id;

ALTER TABLE trigger_events
    ALTER COLUMN delivery SET NOT NULL,
    ADD CONSTRAINT trigger_events_delivery_check CHECK (delivery >= 1);
