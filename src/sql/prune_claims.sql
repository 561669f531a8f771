-- name: prune_claims
-- Deletes up to $2 closed batches older than $1 seconds, keeping each lane's newest row
-- (its cursor).
--
-- $1 age    float8  seconds
-- $2 limit  int8
WITH old AS (
    SELECT c.id FROM pgbus.claims c
    WHERE c.closed_at < now() - $1 * interval '1 second'
      AND EXISTS (SELECT 1 FROM pgbus.claims n
                  WHERE n.subscription = c.subscription AND n.priority = c.priority
                    AND n.id > c.id)
    LIMIT $2
)
DELETE FROM pgbus.claims c USING old WHERE c.id = old.id
