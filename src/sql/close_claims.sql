-- name: close_claims
-- Closes held batches whose rows are all done and need no row of pgbus.deliveries (the common
-- case: every handler succeeded, done rows not retained): the batch's closing is their
-- completion. Fenced like complete_log.sql: open, under one of the given lease ids. Returns
-- the batches closed (the others were no longer held: their lease had passed to another
-- dispatcher).
--
-- Open batches whose first rows are all done start after them ($3..$5, as in
-- complete_log.sql), so that a takeover runs only the rest again. A batch is closed or
-- shrunk, never both (src/dispatcher/batch.rs), so one UPDATE writes both kinds.
--
-- $1 batches     int8[]
-- $2 leases      int8[]  the distinct lease ids of $1 and $3
-- $3 advanced    int8[]
-- $4 from_txids  int8[]
-- $5 from_ids    int8[]
-- Parameters are read through scalar subqueries, so that the plan is generic (src/sql.rs);
-- the casts keep `= ANY (...)` an array comparison rather than a subquery's.
--
-- The open test is written `(closed_at IS NULL) IS NOT FALSE` so that the planner does not
-- match it to the partial index claims_open: that index keeps an entry for every batch ever
-- closed in the partition (not vacuumed: partitions are truncated), which a bitmap scan over
-- it reads at every call (20,000 entries after 10 s at 2,000 batches/s). The batches are
-- found by claims_id instead.
WITH written AS (
    UPDATE pgbus.claims c
    SET closed_at = CASE WHEN c.id = ANY ((SELECT $1::int8[])::int8[]) THEN now() END,
        from_txid = coalesce(
            (((SELECT $4::int8[]))[array_position((SELECT $3::int8[]), c.id)])::text::xid8,
            c.from_txid),
        from_id = coalesce(((SELECT $5::int8[]))[array_position((SELECT $3::int8[]), c.id)],
                           c.from_id)
    WHERE c.id = ANY ((SELECT $1::int8[] || $3::int8[])::int8[])
      AND c.lease_id = ANY ((SELECT $2::int8[])::int8[]) AND (c.closed_at IS NULL) IS NOT FALSE
    RETURNING c.id, c.closed_at
)
SELECT id FROM written WHERE closed_at IS NOT NULL
