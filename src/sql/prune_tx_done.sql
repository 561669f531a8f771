-- name: prune_tx_done
-- Deletes up to $1 done markers of transactional handlers (complete_tx.sql) whose batch is
-- closed: once closed (by its completion, a detach or the takeover sweep), nothing acts on
-- the batch's rows any more, so the marker is no longer needed.
--
-- $1 limit  int8
WITH old AS (
    SELECT d.id FROM pgbus.deliveries d
    WHERE d.tx_batch IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM pgbus.claims c
                      WHERE c.id = d.tx_batch AND c.closed_at IS NULL)
    LIMIT $1
)
DELETE FROM pgbus.deliveries d USING old WHERE d.id = old.id
