-- name: presence_lock
-- Takes the dispatcher's session-level presence lock (held until its connection closes).
--
-- $1 namespace  int4
-- $2 id         int4
SELECT pg_try_advisory_lock($1, $2)
