-- name: stale_dispatchers
-- Dispatchers other than this one whose heartbeat is older than the grace period.
--
-- $1 grace  float8  seconds
-- $2 self   int4
SELECT id FROM pgbus.dispatchers
WHERE heartbeat_at < now() - $1 * interval '1 second' AND id <> $2
