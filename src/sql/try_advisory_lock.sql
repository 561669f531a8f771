-- name: try_advisory_lock
-- $1 key  int8
SELECT pg_try_advisory_lock($1)
