-- name: log_evacuate
-- Moves the unread rows of stuck lanes out of the delivery log when they keep the ring from
-- turning (pgbus.log_evacuate, migration 0009). Only one session at a time (a second one gets
-- null at once). Returns the rows moved to pgbus.deliveries.
--
-- $1 period    float8  seconds a slot takes inserts before the next one
-- $2 idle      float8  seconds without a claim after which a lane counts as stuck
-- $3 lock_key  int8    advisory lock that serialises rotations
-- Committed without waiting for its WAL flush (synchronous_commit off for this transaction):
-- the locks it took (a TRUNCATEd partition's, which every claim waits for) go at once rather
-- than after the flush. A crash can lose only this step, never what depends on it: a later
-- commit that saw it flushes the WAL up to and past it.
SELECT pgbus.log_evacuate($1 * interval '1 second', $2 * interval '1 second')
WHERE pg_try_advisory_xact_lock($3)
  AND set_config('synchronous_commit', 'off', true) IS NOT NULL
