-- name: advisory_unlock
-- $1 key  int8
SELECT pg_advisory_unlock($1)
