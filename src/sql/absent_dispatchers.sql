-- name: absent_dispatchers
-- Dispatchers other than this one whose presence lock is free right now: their process or
-- connection is gone. The lock is taken only for this statement's transaction (it writes
-- nothing) and released at once.
--
-- $1 namespace  int4
-- $2 self       int4
SELECT id FROM pgbus.dispatchers WHERE id <> $2 AND pg_try_advisory_xact_lock($1, id)
