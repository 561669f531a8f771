-- name: sweep_claims
-- Takes back batches whose lease expired (their dispatcher died, or lost the database for
-- longer than the lease): each is closed as taken back, and its rows not yet written become
-- running rows of pgbus.deliveries with an already expired lease, which the next claim
-- takes back like any expired lease (src/sql/claim.sql): the attempt is counted, the row
-- runs alone as a crash suspect. Rows whose outcome was written already are kept as they
-- are. Any dispatcher may sweep; SKIP LOCKED keeps two sweepers off the same batch.
--
-- $1 limit  int4  batches per sweep
WITH expired AS (
    SELECT c.* FROM pgbus.claims c
    WHERE c.closed_at IS NULL AND c.lease_until < now()
    ORDER BY c.lease_until
    LIMIT $1
    FOR UPDATE SKIP LOCKED
),
closed AS (
    UPDATE pgbus.claims c SET closed_at = now(), taken_back = true
    FROM expired e WHERE c.id = e.id
    RETURNING c.*
),
moved AS (
    INSERT INTO pgbus.deliveries (id, event_id, subscription, state, priority, run_at, attempts,
                                  key, owner, event_slot, ordered, seq)
    OVERRIDING SYSTEM VALUE
    SELECT q.id, q.event_id, q.subscription, 1 /* running */, q.priority, now(), 1, q.key, b.owner,
           q.event_slot, q.seq IS NOT NULL, q.seq
    FROM closed b
    -- The log's deliveries (a view of its packs, migration 0019); the txid bounds bound the
    -- index scan, the ids being computed.
    JOIN pgbus.delivery_log q
      ON q.subscription = b.subscription AND q.priority = b.priority
     AND q.txid >= b.from_txid AND q.txid <= b.last_txid
     AND (q.txid, q.id) > (b.from_txid, b.from_id) AND (q.txid, q.id) <= (b.last_txid, b.last_id)
     AND pg_visible_in_snapshot(q.txid, b.cur_snap)
     AND NOT pg_visible_in_snapshot(q.txid, b.prev_snap)
    ON CONFLICT (id) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM closed) AS batches, (SELECT count(*) FROM moved) AS rows
