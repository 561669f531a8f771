-- name: claims_rotate
-- One step of the claims' ring (pgbus.claims_rotate, migration 0009): copy lane cursors out of
-- the partitions publishing has left, truncate one that no longer holds anything needed (its
-- lock taken only when free at once). Only one session at a time (a second one gets null at
-- once).
--
-- $1 lock_key  int8  advisory lock that serialises rotations
-- Committed without waiting for its WAL flush (synchronous_commit off for this transaction):
-- the locks it took (a TRUNCATEd partition's, which every claim waits for) go at once rather
-- than after the flush. A crash can lose only this step, never what depends on it: a later
-- commit that saw it flushes the WAL up to and past it.
SELECT pgbus.claims_rotate()
WHERE pg_try_advisory_xact_lock($1)
  AND set_config('synchronous_commit', 'off', true) IS NOT NULL
