-- name: admin_delivery_failures
-- The failure history of one delivery (its last attempts that failed), oldest first.
--
-- $1 delivery_id  int8
SELECT f.attempt, f.failed_at, extract(epoch FROM f.duration)::float8 AS duration_secs, f.error
FROM pgbus.delivery_failures f
WHERE f.delivery_id = $1
ORDER BY f.id
