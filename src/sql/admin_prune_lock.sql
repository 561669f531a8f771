-- name: admin_prune_lock
-- Taken first in each admin prune transaction, before the statement that reads which
-- events still have deliveries, so that statement sees every delivery a replay batch
-- (which holds this lock shared, admin_replay_lock.sql) committed. Waits for a dispatcher's
-- prune batch or a replay batch to finish.
--
-- $1 lock_key  int8  the pruning lock
SELECT pg_advisory_xact_lock($1)
