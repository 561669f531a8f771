-- name: claim_ordered
-- Takes the heads of keys of ordered subscriptions (Subscription::ordered, migration 0010),
-- in one round trip: for each wanted subscription, it walks the keys that have an unfinished
-- ordered delivery, in C order, starting after the key where its previous walk stopped
-- (round robin, so no key waits more than one round of the walk), and wraps around once.
-- A key gives at most one delivery, its head, read from the first entry of the key in the
-- index deliveries_ordered (subscription, key, state <> 1, seq), where a running delivery
-- sorts first:
--
-- - its running delivery, when that one's lease expired (taken back, as claim.sql does);
-- - else its oldest unfinished delivery (lowest seq: the publish order), when it is
--   pending and due;
-- - if that one is dead: nothing under the blocking dead-key policy
--   (pgbus.subscriptions.dead_blocks_key), else the key's oldest pending delivery.
--
-- So a key with a delivery running, retrying (pending, not due yet) or dead (blocking)
-- gives nothing, and the walk moves on to the next key: one key never holds back another.
-- The walk stops when it found $3 heads or went round; a key costs one probe of the index
-- (two past a dead delivery under the moving-on policy).
--
-- Crash suspects ($6) are found through deliveries_due instead of the walk, and taken when
-- they are their key's head (they are, unless an older delivery of the key committed late).
--
-- A key that a batch of the delivery log still open holds (pgbus.claims.keys, migration
-- 0017) gives nothing either: its head here was parked behind the batch's row of the key.
--
-- Two claimers may find the same head; FOR UPDATE SKIP LOCKED gives it to one of them,
-- and the re-check of the locked row (still due, same state) drops it from a claimer whose
-- snapshot is older than the other's claim. Successors are never candidates while their
-- head is unfinished, so two claimers never take two deliveries of one key.
--
-- $1 sub      text[]    ordered subscription names, one per want
-- $2 idx      int4[]    each subscription's position in the dispatcher (returned per row)
-- $3 n        int4[]    how many to take for each subscription
-- $4 lease    float8[]  each subscription's lease, in seconds
-- $5 after    text[]    each subscription's walk starts after this key; null: at the first
-- $6 solo     bool      true: crash suspects (solo) only; false: ordinary work only
-- $7 owner    int4      the claiming dispatcher's id (pgbus.dispatchers)
--
-- Returns the rows of claim.sql (claimed deliveries, then their events), then one row per
-- subscription walked with id and event_id null: idx and, in `key`, where its walk stopped.
-- A paused subscription is skipped.
WITH RECURSIVE want AS (
    SELECT w.sub, w.idx, w.n, w.lease, w.after, s.dead_blocks_key AS block
    FROM unnest($1::text[], $2::int4[], $3::int4[], $4::float8[], $5::text[])
        AS w(sub, idx, n, lease, after)
    JOIN pgbus.subscriptions s ON s.name = w.sub
    WHERE s.paused_at IS NULL
),
walk (sub, idx, n, block, start, pos, wrapped, found, pick, step) AS (
    SELECT w.sub, w.idx, w.n, w.block, w.after COLLATE "C", w.after COLLATE "C",
           w.after IS NULL, 0, NULL::int8, 0
    FROM want w
    WHERE NOT $6
    UNION ALL
    SELECT k.sub, k.idx, k.n, k.block, k.start, nx.key, nx.wrapped,
           k.found + (h.id IS NOT NULL)::int4, h.id, k.step + 1
    FROM walk k
    -- The first index entry after the position (at the end, once, the first entry): the
    -- next key's running delivery if it has one, else its oldest pending or dead one.
    CROSS JOIN LATERAL (
        SELECT f.key, f.id, f.state, f.solo, f.run_at, k.wrapped OR f.again AS wrapped
        FROM (
            (SELECT false AS again, (d.key COLLATE "C") AS key, d.id, d.state, d.solo,
                    d.run_at
             FROM pgbus.deliveries d
             WHERE d.subscription = k.sub AND d.ordered AND d.state <> 2
               AND (d.key COLLATE "C") > coalesce(k.pos, '')
             ORDER BY (d.key COLLATE "C"), (d.state <> 1), d.seq
             LIMIT 1)
            UNION ALL
            (SELECT true, (d.key COLLATE "C"), d.id, d.state, d.solo, d.run_at
             FROM pgbus.deliveries d
             WHERE NOT k.wrapped
               AND d.subscription = k.sub AND d.ordered AND d.state <> 2
               AND (d.key COLLATE "C") > ''
             ORDER BY (d.key COLLATE "C"), (d.state <> 1), d.seq
             LIMIT 1)
        ) f
        LIMIT 1
    ) nx
    -- The key's head, if it can run now: a running one whose lease expired (taken back); a
    -- pending one, due; past a dead one only when dead deliveries do not block (its oldest
    -- pending one, if due). One expression: the subquery past a dead delivery runs only in
    -- that branch, and the common case costs no join.
    CROSS JOIN LATERAL (
        SELECT CASE
                 WHEN nx.state = 3 /* dead */ THEN
                   CASE WHEN NOT k.block THEN (
                       SELECT CASE WHEN p.solo = $6 AND p.run_at <= now() THEN p.id END
                       FROM (SELECT d.id, d.solo, d.run_at FROM pgbus.deliveries d
                             WHERE d.subscription = k.sub AND d.ordered AND d.state <> 2
                               AND (d.key COLLATE "C") = nx.key AND (d.state <> 1)
                               AND d.state = 0 /* pending */
                             ORDER BY (d.state <> 1), d.seq
                             LIMIT 1) p)
                   END
                 WHEN nx.solo = $6 AND nx.run_at <= now() THEN nx.id
               END AS id
    ) h
    WHERE k.found < k.n AND nx.key IS NOT NULL
      AND NOT (nx.wrapped AND k.start IS NOT NULL AND nx.key > k.start)
),
-- Crash suspects ($6): found through their own index (deliveries_due keeps the ordered
-- ones), not by walking every key, and taken only when they are their key's head.
suspects AS (
    SELECT w.idx, c.id
    FROM want w
    CROSS JOIN LATERAL (
        SELECT d.id, d.key FROM pgbus.deliveries d
        WHERE $6 AND d.subscription = w.sub AND d.state < 2 /* pending or running */
          AND d.solo AND d.run_at <= now() AND d.ordered
        ORDER BY d.priority, d.run_at, d.id
        LIMIT 16
    ) c
    CROSS JOIN LATERAL (
        SELECT f.id, f.state FROM pgbus.deliveries f
        WHERE f.subscription = w.sub AND f.ordered AND f.state <> 2
          AND (f.key COLLATE "C") = (c.key COLLATE "C")
        ORDER BY (f.key COLLATE "C"), (f.state <> 1), f.seq
        LIMIT 1
    ) f
    LEFT JOIN LATERAL (
        SELECT g.id FROM pgbus.deliveries g
        WHERE f.state = 3 /* dead */ AND NOT w.block
          AND g.subscription = w.sub AND g.ordered AND g.state <> 2
          AND (g.key COLLATE "C") = (c.key COLLATE "C") AND (g.state <> 1)
          AND g.state = 0 /* pending */
        ORDER BY (g.state <> 1), g.seq
        LIMIT 1
    ) g ON true
    WHERE f.id = c.id OR g.id = c.id
),
-- The keys that batches of the delivery log still open hold (migration 0017): their heads
-- in pgbus.deliveries wait until the batch is closed.
held AS MATERIALIZED (
    SELECT w.idx, h.k COLLATE "C" AS k
    FROM want w
    JOIN pgbus.claims oc ON oc.subscription = w.sub AND oc.closed_at IS NULL
    CROSS JOIN LATERAL unnest(oc.keys) AS h(k)
),
candidates AS (
    SELECT k.idx, k.pick AS id FROM walk k WHERE k.pick IS NOT NULL
    UNION ALL
    SELECT x.idx, x.id
    FROM (SELECT s.idx, s.id, row_number() OVER (PARTITION BY s.idx) AS nth FROM suspects s) x
    JOIN want w ON w.idx = x.idx
    WHERE x.nth <= w.n
),
picked AS (
    SELECT d.id, d.state AS old_state, d.priority, d.run_at AS due, w.idx, w.lease
    FROM candidates k
    JOIN want w ON w.idx = k.idx
    JOIN pgbus.deliveries d ON d.id = k.id
    WHERE d.state < 2 /* pending or running */ AND d.solo = $6 AND d.run_at <= now()
      AND NOT EXISTS (SELECT 1 FROM held h WHERE h.idx = k.idx AND h.k = (d.key COLLATE "C"))
    FOR UPDATE OF d SKIP LOCKED
),
upd AS (
    UPDATE pgbus.deliveries d SET
        state = 1 /* running */,
        attempts = d.attempts + (p.old_state = 0)::int4,
        run_at = now() + p.lease * interval '1 second',
        lease_id = l.id,
        owner = $7
    FROM picked p, (SELECT pg_current_xact_id()::text::int8 AS id) l
    -- By primary key, one row per picked row (with claim.sql's `id = ANY(...)` as well, the
    -- planner scanned the whole array once per picked row).
    WHERE d.id = p.id
    RETURNING d.id, d.event_id, p.idx, d.attempts, p.old_state = 1 AS taken_back, d.lease_id,
              p.priority, p.due, d.event_slot
)
SELECT u.id, u.idx, u.attempts, u.taken_back, u.lease_id, u.event_id, u.priority, u.due,
       NULL::int8 AS claim_id, NULL::int8 AS txid, NULL::text AS event_type, NULL::text AS source, NULL::text AS subject, NULL::text AS key,
       NULL::text AS data, NULL::text AS headers, NULL::timestamptz AS created_at,
       u.event_slot
FROM upd u
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, e.id, NULL, NULL, NULL, NULL,
       e.type, e.source, e.subject, e.key, e.data::text, e.headers::text, e.created_at,
       e.slot
-- Each distinct event slot of the batch (nearly always one) reads the ids of that slot from
-- its own partition, in pgbus.events_in_slot (migration 0021): no partition of pgbus.events
-- is opened by a claim that finds nothing.
FROM (SELECT DISTINCT u.event_slot FROM upd u WHERE NOT u.taken_back) s
CROSS JOIN LATERAL pgbus.events_in_slot(
    s.event_slot, ARRAY(SELECT u.event_id FROM upd u
                        WHERE NOT u.taken_back AND u.event_slot = s.event_slot)) e
UNION ALL
SELECT NULL, s.idx, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, s.pos, NULL, NULL, NULL, NULL
FROM (SELECT DISTINCT ON (k.idx) k.idx, k.pos FROM walk k ORDER BY k.idx, k.step DESC) s
