-- name: claim_log
-- Takes a batch of log rows for every local subscription at once, in one round trip: one
-- pgbus.claim_log call per want, each writing one pgbus.claims row per lane it read (the
-- batch's lease, fenced by the claim's transaction id). Log rows are always first attempts;
-- each comes with its position in its lane (txid, id), in the order the batch is read, and
-- its seq when it is a keyed row of an ordered subscription (migration 0017: the rows a
-- claim parks behind their key are not returned).
-- The events come back as separate rows, as in claim.sql, fetched by primary key (slot, id),
-- each slot's ids from its own partition. Windows end
-- at this statement's snapshot (passed to the function), so every claimed row's event is
-- visible here, although the function's own statements see later commits than this one.
--
-- $1 sub      text[]    subscription names, one per want
-- $2 idx      int4[]    each subscription's position in the dispatcher (returned per row)
-- $3 n        int4[]    how many to take for each subscription
-- $4 lease    float8[]  each subscription's lease, in seconds
-- $5 owner    int4      the claiming dispatcher's id (pgbus.dispatchers)
-- Parameters are read through scalar subqueries, so that the plan is generic (src/sql.rs).
WITH got AS MATERIALIZED (
    SELECT w.idx, c.*
    FROM unnest((SELECT $1::text[]), (SELECT $2::int4[]), (SELECT $3::int4[]),
                (SELECT $4::float8[])) AS w(sub, idx, n, lease)
    -- A paused subscription (pgbus.subscriptions.paused_at set, by the admin API) is skipped
    -- by the function (migration 0020).
    CROSS JOIN LATERAL pgbus.claim_log(w.sub, w.n, w.lease, (SELECT $5), pg_current_snapshot()) c
)
SELECT g.id, g.idx, 1::int4 AS attempts, false AS taken_back, g.lease_id, g.event_id,
       g.priority, NULL::timestamptz AS due, g.claim_id, g.txid::text::int8 AS txid,
       NULL::text AS event_type, NULL::text AS source, NULL::text AS subject, NULL::text AS key,
       NULL::text AS data, NULL::text AS headers, NULL::timestamptz AS created_at,
       g.event_slot, g.seq
FROM got g
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, e.id, NULL, NULL, NULL, NULL,
       e.type, e.source, e.subject, e.key, e.data::text, e.headers::text, e.created_at,
       e.slot, NULL
-- Each distinct event slot of the batch (nearly always one) reads the ids of that slot from
-- its own partition, in pgbus.events_in_slot (migration 0021): no partition of pgbus.events
-- is opened by a claim that finds nothing.
FROM (SELECT DISTINCT g.event_slot FROM got g) s
CROSS JOIN LATERAL pgbus.events_in_slot(
    s.event_slot, ARRAY(SELECT g.event_id FROM got g WHERE g.event_slot = s.event_slot)) e
