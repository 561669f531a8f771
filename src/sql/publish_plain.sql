-- name: publish_plain
-- The publish statement for a batch without dedupe keys, the common case: a plain INSERT (no
-- speculative insertion per row, which ON CONFLICT costs even when nothing conflicts),
-- patterns matched once per distinct event type, the fan-out read straight from the arrays.
-- One result row per event type that has subscribers (type, how many), plus a row with a
-- null type when it notified.
--
-- Same parameters as publish.sql; $7 and $14 (the dedupe keys and scopes, all null) are
-- unused.
-- The events ring's current slot (migration 0014) is read by the same subquery for the
-- events and for their deliveries (event_slot): one snapshot, one value.
-- Parameters are read through scalar subqueries, so that the plan is generic (src/sql.rs).
WITH matched AS (
    SELECT t.type, s.name, s.ordered
    FROM (SELECT DISTINCT type FROM unnest((SELECT $2::text[])) AS u(type)) t
    JOIN pgbus.subscriptions s ON t.type LIKE ANY (s.like_patterns)
),
ev AS (
    INSERT INTO pgbus.events (id, type, source, subject, key, data, headers, priority, slot)
    SELECT i.id, i.type, (SELECT $10), i.subject, i.key, i.data, i.headers, i.priority,
           (SELECT r.slot FROM pgbus.events_ring r ORDER BY r.generation DESC LIMIT 1)
    FROM unnest((SELECT $1::uuid[]), (SELECT $2::text[]), (SELECT $3::text[]),
                (SELECT $4::text[]), (SELECT $5::jsonb[]), (SELECT $6::jsonb[]),
                (SELECT $8::int2[])) AS i(id, type, subject, key, data, headers, priority)
),
-- Due now: appended to the delivery log's current slot, as packs (migration 0019): one row per
-- lane and 256 events of the batch, its deliveries in batch order. Later (deliver_at in the
-- future): pgbus.deliveries, which the dispatcher reads when they fall due.
-- An ordered subscription's keyed deliveries carry seq, their publish order (migration
-- 0010), due now in the log too (migration 0017: the log's claim holds their keys), all in
-- the lane of priority 0: within a key, publish order wins over priority. Seqs are drawn in
-- batch order (the sort comes before the volatile column), before the rows are packed.
due AS MATERIALIZED (
    SELECT i.id, i.key, i.ord, m.name,
           CASE WHEN m.ordered AND i.key IS NOT NULL THEN 0 ELSE i.priority END AS lane,
           CASE WHEN m.ordered AND i.key IS NOT NULL THEN nextval('pgbus.delivery_seq') END AS seq
    FROM unnest((SELECT $1::uuid[]), (SELECT $2::text[]), (SELECT $4::text[]),
                (SELECT $8::int2[]), (SELECT $9::timestamptz[]))
        WITH ORDINALITY AS i(id, type, key, priority, deliver_at, ord)
    JOIN matched m ON m.type = i.type
    WHERE (NOT (SELECT $13) OR i.deliver_at IS NULL OR i.deliver_at <= now())
    ORDER BY i.ord
),
fan AS (
    INSERT INTO pgbus.log_packs (slot, subscription, priority, event_ids, keys, event_slot, seqs)
    SELECT (SELECT r.slot FROM pgbus.log_ring r ORDER BY r.generation DESC LIMIT 1),
           d.name, d.lane, array_agg(d.id ORDER BY d.ord),
           CASE WHEN bool_or(d.key IS NOT NULL) THEN array_agg(d.key ORDER BY d.ord) END,
           (SELECT r.slot FROM pgbus.events_ring r ORDER BY r.generation DESC LIMIT 1),
           CASE WHEN bool_or(d.seq IS NOT NULL) THEN array_agg(d.seq ORDER BY d.ord) END
    FROM due d
    GROUP BY d.name, d.lane, (d.ord - 1) / 256
    -- Pack ids (the column's default) follow the batch order within a lane.
    ORDER BY min(d.ord)
),
-- Ordered subscriptions' keyed deliveries scheduled for later: pgbus.deliveries, where
-- claim_ordered.sql takes each key's oldest when due.
fan_ordered AS (
    INSERT INTO pgbus.deliveries (event_id, subscription, priority, run_at, key, ordered, seq,
                                  event_slot)
    SELECT i.id, m.name, i.priority, i.deliver_at, i.key, true,
           nextval('pgbus.delivery_seq'),
           (SELECT r.slot FROM pgbus.events_ring r ORDER BY r.generation DESC LIMIT 1)
    FROM unnest((SELECT $1::uuid[]), (SELECT $2::text[]), (SELECT $4::text[]),
                (SELECT $8::int2[]), (SELECT $9::timestamptz[]))
        WITH ORDINALITY AS i(id, type, key, priority, deliver_at, ord)
    JOIN matched m ON m.type = i.type
    WHERE (SELECT $13) AND i.deliver_at > now() AND m.ordered AND i.key IS NOT NULL
    ORDER BY i.ord
),
fan_later AS (
    INSERT INTO pgbus.deliveries (event_id, subscription, priority, run_at, key, event_slot)
    SELECT i.id, m.name, i.priority, i.deliver_at, i.key,
           (SELECT r.slot FROM pgbus.events_ring r ORDER BY r.generation DESC LIMIT 1)
    FROM unnest((SELECT $1::uuid[]), (SELECT $2::text[]), (SELECT $4::text[]),
                (SELECT $8::int2[]), (SELECT $9::timestamptz[]))
        WITH ORDINALITY AS i(id, type, key, priority, deliver_at, ord)
    JOIN matched m ON m.type = i.type
    WHERE (SELECT $13) AND i.deliver_at > now() AND NOT (m.ordered AND i.key IS NOT NULL)
    ORDER BY i.ord
)
SELECT m.type, count(*)::int4 FROM matched m GROUP BY m.type
UNION ALL
SELECT NULL, 0 FROM (SELECT pg_notify((SELECT $12), '') WHERE (SELECT $11)) n
