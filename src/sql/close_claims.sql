-- name: close_claims
-- Closes held batches whose rows are all done and need no row of pgbus.deliveries (the common
-- case: every handler succeeded, done rows not retained): the batch's closing is their
-- completion. Fenced like complete_log.sql: open, under one of the given lease ids. Returns
-- the batches closed (the others were no longer held: their lease had passed to another
-- dispatcher).
--
-- Open batches whose first rows are all done start after them ($3..$5, as in
-- complete_log.sql), so that a takeover runs only the rest again.
--
-- $1 batches     int8[]
-- $2 leases      int8[]  the distinct lease ids of $1 and $3
-- $3 advanced    int8[]
-- $4 from_txids  int8[]
-- $5 from_ids    int8[]
-- Parameters are read through scalar subqueries, so that the plan is generic (src/sql.rs);
-- the casts keep `= ANY (...)` an array comparison rather than a subquery's.
WITH closed AS (
    UPDATE pgbus.claims c SET closed_at = now()
    WHERE c.id = ANY ((SELECT $1::int8[])::int8[])
      AND c.lease_id = ANY ((SELECT $2::int8[])::int8[]) AND c.closed_at IS NULL
    RETURNING c.id
),
shrunk AS (
    UPDATE pgbus.claims c
    SET from_txid = (((SELECT $4::int8[]))[array_position((SELECT $3::int8[]), c.id)])::text::xid8,
        from_id = ((SELECT $5::int8[]))[array_position((SELECT $3::int8[]), c.id)]
    WHERE c.id = ANY ((SELECT $3::int8[])::int8[])
      AND c.lease_id = ANY ((SELECT $2::int8[])::int8[]) AND c.closed_at IS NULL
    RETURNING c.id
)
SELECT id FROM closed
