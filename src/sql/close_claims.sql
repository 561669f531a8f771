-- name: close_claims
-- Closes held batches whose rows are all done and need no row of pgbus.deliveries (the common
-- case: every handler succeeded, done rows not retained): the batch's closing is their
-- completion. Fenced like complete_log.sql: open, under one of the given lease ids. Returns
-- the batches closed (the others were no longer held: their lease had passed to another
-- dispatcher).
--
-- $1 batches  int8[]
-- $2 leases   int8[]  their distinct lease ids
UPDATE pgbus.claims c SET closed_at = now()
WHERE c.id = ANY ($1::int8[]) AND c.lease_id = ANY ($2::int8[]) AND c.closed_at IS NULL
RETURNING c.id
