-- name: prune_events
-- Deletes up to $2 events older than the retention that no delivery refers to any more (in
-- pgbus.deliveries, or unfinished in the delivery log), if no other session prunes at the same time.
--
-- $1 retention  float8  seconds
-- $2 limit      int8
-- $3 lock_key   int8    advisory lock that serialises pruners
WITH lock AS (SELECT pg_try_advisory_xact_lock($3) AS got),
old AS (
    SELECT e.id FROM pgbus.events e, lock
    WHERE lock.got
      AND e.created_at < now() - $1 * interval '1 second'
      AND NOT EXISTS (SELECT 1 FROM pgbus.deliveries d WHERE d.event_id = e.id)
      -- The log's rows not finished (read or not): one lane scan each, not per event.
      AND e.id NOT IN (SELECT l.event_id FROM pgbus.log_unfinished() l)
    LIMIT $2
)
DELETE FROM pgbus.events e USING old WHERE e.id = old.id
