-- name: detach_claims
-- Closes held batches that stay open too long (a slow handler), so that one slow delivery
-- neither keeps a slot of the log from being truncated nor makes a crash run the whole
-- batch again: the rows still without an outcome become running rows of pgbus.deliveries
-- under the same lease id and owner, with a lease of their own (run_at = lease expiry),
-- extended and completed per row from then on (src/sql/extend_leases.sql, complete.sql).
-- Fenced like outcomes. Returns the batches detached.
--
-- $1 batches  int8[]    batches to detach
-- $2 leases   int8[]    their distinct lease ids
-- $3 ids      int8[]    the rows still without an outcome
-- $4 lengths  float8[]  each row's lease length in seconds, by its position in $3
-- $5 owner    int4
WITH fence AS (
    SELECT c.* FROM pgbus.claims c
    -- Open, tested as in close_claims.sql: found by claims_id, not claims_open.
    WHERE c.id = ANY ($1::int8[]) AND c.lease_id = ANY ($2::int8[])
      AND (c.closed_at IS NULL) IS NOT FALSE
    FOR UPDATE
),
closed AS (
    UPDATE pgbus.claims c SET closed_at = now() FROM fence f WHERE c.id = f.id RETURNING c.id
),
moved AS (
    INSERT INTO pgbus.deliveries (id, event_id, subscription, state, priority, run_at, attempts,
                                  key, lease_id, owner, event_slot, ordered, seq)
    OVERRIDING SYSTEM VALUE
    SELECT q.id, q.event_id, q.subscription, 1 /* running */, q.priority,
           now() + ($4::float8[])[array_position($3::int8[], q.id)] * interval '1 second',
           1, q.key, b.lease_id, $5, q.event_slot, q.seq IS NOT NULL, q.seq
    FROM fence b
    -- The log's deliveries (a view of its packs, migration 0019); the txid bounds bound the
    -- index scan, the ids being computed.
    JOIN pgbus.delivery_log q
      ON q.subscription = b.subscription AND q.priority = b.priority
     AND q.txid >= b.from_txid AND q.txid <= b.last_txid
     AND (q.txid, q.id) > (b.from_txid, b.from_id) AND (q.txid, q.id) <= (b.last_txid, b.last_id)
     AND pg_visible_in_snapshot(q.txid, b.cur_snap)
     AND NOT pg_visible_in_snapshot(q.txid, b.prev_snap)
    WHERE q.id = ANY ($3::int8[])
    ON CONFLICT (id) DO NOTHING
    RETURNING 1
)
SELECT ARRAY(SELECT id FROM closed) AS detached, (SELECT count(*) FROM moved) AS rows
