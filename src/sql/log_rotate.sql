-- name: log_rotate
-- One step of the delivery log's ring (pgbus.log_rotate, migration 0005): truncate the slots
-- no lane needs, switch to the next slot when the current one is old enough. Only one
-- session at a time (a second one gets null at once).
--
-- $1 period        float8  seconds a slot takes inserts before the next one
-- $2 lock_timeout  float8  seconds to wait for a slot's lock before leaving it for next time
-- $3 lock_key      int8    advisory lock that serialises rotations
SELECT pgbus.log_rotate($1 * interval '1 second', $2 * interval '1 second')
WHERE pg_try_advisory_xact_lock($3)
