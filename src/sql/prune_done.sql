-- name: prune_done
-- Deletes up to $2 retained done deliveries older than the retention.
--
-- $1 retention  float8  seconds
-- $2 limit      int8
WITH old AS (
    SELECT id FROM pgbus.deliveries
    WHERE state = 2 /* done */ AND finished_at < now() - $1 * interval '1 second'
    LIMIT $2
)
DELETE FROM pgbus.deliveries d USING old WHERE d.id = old.id
