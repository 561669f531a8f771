-- name: migrate_lock
-- Serialises migrators until the migration transaction ends.
--
-- $1 key  int8
SELECT pg_advisory_xact_lock($1)
