-- name: log_rotate
-- One step of the delivery log's ring (pgbus.log_rotate, migration 0005): truncate the slots
-- no lane needs, switch to the next slot when the current one is old enough. Only one
-- session at a time (a second one gets null at once).
--
-- $1 period        float8  seconds a slot takes inserts before the next one
-- $2 lock_timeout  float8  seconds to wait for a slot's lock before leaving it for next time
-- $3 lock_key      int8    advisory lock that serialises rotations
-- Committed without waiting for its WAL flush (synchronous_commit off for this transaction):
-- the locks it took (a TRUNCATEd partition's, which every claim waits for) go at once rather
-- than after the flush. A crash can lose only this step, never what depends on it: a later
-- commit that saw it flushes the WAL up to and past it.
SELECT pgbus.log_rotate($1 * interval '1 second', $2 * interval '1 second')
WHERE pg_try_advisory_xact_lock($3)
  AND set_config('synchronous_commit', 'off', true) IS NOT NULL
