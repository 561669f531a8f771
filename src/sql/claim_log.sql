-- name: claim_log
-- Takes a batch of log rows for every local subscription at once, in one round trip: one
-- pgbus.claim_log_batch call per want (migration 0023), each writing one pgbus.claims row per
-- lane it read (the batch's lease, fenced by the claim's transaction id). Log rows are always
-- first attempts; each comes with its position in its lane (txid, id), in the order the batch
-- is read, and its seq when it is a keyed row of an ordered subscription (migration 0017: the
-- rows a claim parks behind their key are not returned).
-- Each lane's events come back after its deliveries as rows of their own (id null), read by
-- the function from the events ring's partition of their slot. Windows end at this
-- statement's snapshot (passed to the function), so every claimed row's event is visible
-- there, although the function's own statements see later commits than this one.
--
-- $1 sub      text[]    subscription names, one per want
-- $2 idx      int4[]    each subscription's position in the dispatcher (returned per row)
-- $3 n        int4[]    how many to take for each subscription
-- $4 lease    float8[]  each subscription's lease, in seconds
-- $5 owner    int4      the claiming dispatcher's id (pgbus.dispatchers)
-- Parameters are read through scalar subqueries, so that the plan is generic (src/sql.rs).
-- A paused subscription (pgbus.subscriptions.paused_at set, by the admin API) is skipped by
-- the function (migration 0020).
SELECT c.id, w.idx, c.attempts, c.taken_back, c.lease_id, c.event_id, c.priority, c.due,
       c.claim_id, c.txid, c.event_type, c.source, c.subject, c.key, c.data, c.headers,
       c.created_at, c.event_slot, c.seq
FROM unnest((SELECT $1::text[]), (SELECT $2::int4[]), (SELECT $3::int4[]),
            (SELECT $4::float8[])) AS w(sub, idx, n, lease)
CROSS JOIN LATERAL pgbus.claim_log_batch(w.sub, w.n, w.lease, (SELECT $5), pg_current_snapshot()) c
