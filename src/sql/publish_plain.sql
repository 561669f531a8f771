-- name: publish_plain
-- The publish statement for a batch without dedupe keys, the common case: a plain INSERT (no
-- speculative insertion per row, which ON CONFLICT costs even when nothing conflicts),
-- patterns matched once per distinct event type, the fan-out read straight from the arrays.
-- One result row per event type that has subscribers (type, how many), plus a row with a
-- null type when it notified.
--
-- $1 ids          uuid[]
-- $2 types        text[]
-- $3 subjects     text[]
-- $4 keys         text[]
-- $5 datas        jsonb[]
-- $6 headers      jsonb[]        a null element: no headers
-- $7 priorities   int2[]
-- $8 deliver_ats  timestamptz[]  null: due at once
-- $9 source       text
-- $10 notify      bool           whether to NOTIFY the channel $11 (delivered at commit)
-- $11 channel     text
-- $12 scheduled   bool           whether any event has a deliver_at
-- $13 kinds       text[]         the batch's distinct event types
-- $14 uniform     bool           whether every event has the same type and priority and none
--                                has a deliver_at (a batch of one kind: the usual batch)
-- $15 keyed       bool           whether any event has a key
-- A uniform batch's packs are slices of the ids array, 256 a slice, one set per matching
-- subscription (fan_slices), without a row per delivery; the packs of other batches, and of
-- the ordered subscriptions of a keyed one (their keyed deliveries carry a seq and go to lane
-- 0), are built from one row per delivery (due, fan).
-- A uniform batch without keys (the usual publish, one event among them) runs the statement
-- without the CTEs it does not need (PUBLISH_UNIFORM, the lines between the "uniform cut"
-- markers removed), with the same parameters: PostgreSQL sets up every CTE's plan at every
-- call, run or not, and those four were half of a one-event publish's instructions.
-- The events ring's current slot (migration 0014) is read by the same subquery for the
-- events and for their deliveries (event_slot): one snapshot, one value.
-- Parameters are read through scalar subqueries, so that the plan is generic (src/sql.rs).
WITH matched AS (
    SELECT t.type, s.name, s.ordered
    FROM unnest((SELECT $13::text[])) AS t(type)
    JOIN pgbus.subscriptions s ON t.type LIKE ANY (s.like_patterns)
),
ev AS (
    INSERT INTO pgbus.events (id, type, source, subject, key, data, headers, priority, slot)
    SELECT i.id, i.type, (SELECT $9), i.subject, i.key, i.data,
           coalesce(i.headers, '{}'::jsonb), i.priority,
           (SELECT r.slot FROM pgbus.events_ring r ORDER BY r.generation DESC LIMIT 1)
    FROM unnest((SELECT $1::uuid[]), (SELECT $2::text[]), (SELECT $3::text[]),
                (SELECT $4::text[]), (SELECT $5::jsonb[]), (SELECT $6::jsonb[]),
                (SELECT $7::int2[])) AS i(id, type, subject, key, data, headers, priority)
),
-- A uniform batch to the other subscriptions: the ids array cut into packs of 256, each
-- subscription's in batch order (pack ids, the column's default, follow it).
fan_slices AS (
    INSERT INTO pgbus.log_packs (slot, subscription, priority, event_ids, keys, event_slot)
    SELECT (SELECT r.slot FROM pgbus.log_ring r ORDER BY r.generation DESC LIMIT 1),
           m.name, (SELECT ($7::int2[])[1]),
           (SELECT $1::uuid[])[k * 256 + 1 : k * 256 + 256],
           CASE WHEN (SELECT $15) THEN (SELECT $4::text[])[k * 256 + 1 : k * 256 + 256] END,
           (SELECT r.slot FROM pgbus.events_ring r ORDER BY r.generation DESC LIMIT 1)
    FROM matched m
    CROSS JOIN generate_series(0, (cardinality((SELECT $1::uuid[])) - 1) / 256) AS k
    WHERE (SELECT $14) AND NOT (m.ordered AND (SELECT $15))
    ORDER BY m.name, k
)
-- uniform cut: from here to the line that ends it, the CTEs that only a batch that is not
-- uniform, or is keyed, needs ($14 false or $15 true); PUBLISH_UNIFORM (src/sql.rs) is this
-- statement without them.
,
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
                (SELECT $7::int2[]), (SELECT $8::timestamptz[]))
        WITH ORDINALITY AS i(id, type, key, priority, deliver_at, ord)
    JOIN matched m ON m.type = i.type
    WHERE (NOT (SELECT $12) OR i.deliver_at IS NULL OR i.deliver_at <= now())
      AND (NOT (SELECT $14) OR (m.ordered AND (SELECT $15)))
      -- Not run at all for a uniform batch that no ordered subscription takes keyed.
      AND (SELECT NOT $14 OR ($15 AND EXISTS (SELECT 1 FROM matched o WHERE o.ordered)))
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
                (SELECT $7::int2[]), (SELECT $8::timestamptz[]))
        WITH ORDINALITY AS i(id, type, key, priority, deliver_at, ord)
    JOIN matched m ON m.type = i.type
    WHERE (SELECT $12) AND i.deliver_at > now() AND m.ordered AND i.key IS NOT NULL
    ORDER BY i.ord
),
fan_later AS (
    INSERT INTO pgbus.deliveries (event_id, subscription, priority, run_at, key, event_slot)
    SELECT i.id, m.name, i.priority, i.deliver_at, i.key,
           (SELECT r.slot FROM pgbus.events_ring r ORDER BY r.generation DESC LIMIT 1)
    FROM unnest((SELECT $1::uuid[]), (SELECT $2::text[]), (SELECT $4::text[]),
                (SELECT $7::int2[]), (SELECT $8::timestamptz[]))
        WITH ORDINALITY AS i(id, type, key, priority, deliver_at, ord)
    JOIN matched m ON m.type = i.type
    WHERE (SELECT $12) AND i.deliver_at > now() AND NOT (m.ordered AND i.key IS NOT NULL)
    ORDER BY i.ord
)
-- uniform cut: ends here.
SELECT m.type, count(*)::int4 FROM matched m GROUP BY m.type
UNION ALL
SELECT NULL, 0 FROM (SELECT pg_notify((SELECT $11), '') WHERE (SELECT $10)) n
