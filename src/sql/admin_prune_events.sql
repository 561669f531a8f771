-- name: admin_prune_events
-- Retention on demand: deletes up to $2 events older than the retention that no delivery
-- refers to any more, row by row, after admin_prune_lock.sql in the same transaction. (The
-- dispatchers' retention truncates whole slots of the events ring instead, events_rotate.sql;
-- this is for an age shorter than the ring's, e.g. right after lowering the retention.)
-- Which deliveries exist is checked here, in pgbus.deliveries and in the delivery log.
--
-- $1 retention  float8  seconds
-- $2 limit      int8
WITH old AS (
    SELECT e.id, e.slot FROM pgbus.events e
    WHERE e.created_at < now() - $1 * interval '1 second'
      AND NOT EXISTS (SELECT 1 FROM pgbus.deliveries d WHERE d.event_id = e.id)
      -- The log's rows not finished (read or not): one lane scan each, not per event.
      AND e.id NOT IN (SELECT l.event_id FROM pgbus.log_unfinished() l)
    LIMIT $2
)
DELETE FROM pgbus.events e USING old WHERE e.id = old.id AND e.slot = old.slot
