-- pgbus schema, version 12: what operating a bus needs beyond version 6 (src/admin/), at no
-- extra statement on the hot paths.

-- The handler's duration of a delivery's last completed attempt, written by the completer in
-- the statement that writes the outcome (complete.sql, complete_log.sql), and copied into the
-- failure history by its triggers. Null when the attempt did not run a handler (given back
-- unstarted, taken back after a lost lease).
ALTER TABLE pgbus.deliveries ADD COLUMN attempt_duration interval;

CREATE OR REPLACE FUNCTION pgbus.record_delivery_failure() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pgbus.delivery_failures (delivery_id, attempt, duration, error)
    VALUES (NEW.id, NEW.attempts, NEW.attempt_duration, NEW.last_error);
    DELETE FROM pgbus.delivery_failures f
    WHERE f.delivery_id = NEW.id
      AND f.id <= (SELECT k.id FROM pgbus.delivery_failures k WHERE k.delivery_id = NEW.id
                   ORDER BY k.id DESC OFFSET 10 LIMIT 1);
    RETURN NULL;
END
$$;

-- "Last claimed at" per subscription without a write per claim. A claim of the delivery log
-- stamps its batch's row (opened_at, the column's default: no statement changes) and a claim
-- of pgbus.deliveries stamps its rows (claimed_at, in the claim's own UPDATE). pgbus.claims
-- keeps a batch for a minute or so (the ring, 0009; copied lane cursors have n = 0 and do not
-- count), so each dispatcher's maintenance carries the newest batch time of the subscriptions
-- it serves into pgbus.subscriptions.last_claimed_at every few seconds
-- (record_last_claimed.sql). The admin reads the newest of the three (admin_subscriptions.sql).
-- Existing rows get the migration's time.
ALTER TABLE pgbus.claims ADD COLUMN opened_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE pgbus.deliveries ADD COLUMN claimed_at timestamptz;
ALTER TABLE pgbus.subscriptions ADD COLUMN last_claimed_at timestamptz;
