-- name: prune_dedupe_keys
-- Deletes up to $2 dedupe keys older than the dedupe retention: the same key publishes a new
-- event from then on.
--
-- $1 retention  float8  seconds
-- $2 limit      int8
WITH old AS (
    SELECT scope, key FROM pgbus.dedupe_keys
    WHERE created_at < now() - $1 * interval '1 second'
    LIMIT $2
)
DELETE FROM pgbus.dedupe_keys d USING old WHERE d.scope = old.scope AND d.key = old.key
