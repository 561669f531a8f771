-- name: publish
-- Writes a batch of events (an event whose dedupe key is taken in its scope is skipped: its
-- key is claimed first in pgbus.dedupe_keys, and only the events whose key was free or that
-- have none are written) and fans each out
-- to one delivery per matching subscription, in one statement. One result row per written
-- event: its id and how many deliveries it got. Deliveries are inserted in batch order
-- (ORDER BY ord), so their ids follow the publish order whatever join the planner picks.
--
-- $1 ids          uuid[]
-- $2 types        text[]
-- $3 subjects     text[]
-- $4 keys         text[]
-- $5 datas        jsonb[]
-- $6 headers      jsonb[]        a null element: no headers
-- $7 dedupe_keys  text[]
-- $8 priorities   int2[]
-- $9 deliver_ats  timestamptz[]  null: due at once
-- $10 source      text
-- $11 notify      bool           whether to NOTIFY the channel $12 (delivered at commit)
-- $12 channel     text
-- $13 scheduled   bool           whether any event has a deliver_at (else the statement skips
--                                the part that writes scheduled deliveries)
-- $14 dedupe_scopes text[]       each dedupe key's scope (src/dedupe.rs: type:<type>,
--                                source:<source> or *), null without a key
-- Events are written in the events ring's current slot (migration 0014), read once, and
-- their deliveries name that slot (event_slot), so that claims fetch each event by (slot, id).
-- Parameters are read through scalar subqueries, so that the plan is generic (src/sql.rs).
WITH input AS (
    SELECT * FROM unnest((SELECT $1::uuid[]), (SELECT $2::text[]), (SELECT $3::text[]),
                         (SELECT $4::text[]), (SELECT $5::jsonb[]), (SELECT $6::jsonb[]),
                         (SELECT $7::text[]), (SELECT $8::int2[]), (SELECT $9::timestamptz[]),
                         (SELECT $14::text[]))
        WITH ORDINALITY AS i(id, type, subject, key, data, headers, dedupe_key, priority,
                             deliver_at, dedupe_scope, ord)
),
-- The first event of a (scope, key) not taken yet gets it; the others are duplicates.
dedupe AS (
    INSERT INTO pgbus.dedupe_keys (scope, key, event_id)
    SELECT dedupe_scope, dedupe_key, id FROM input WHERE dedupe_key IS NOT NULL ORDER BY ord
    ON CONFLICT (scope, key) DO NOTHING
    RETURNING event_id
),
ev AS (
    INSERT INTO pgbus.events (id, type, source, subject, key, data, headers, dedupe_key, priority,
                              slot)
    SELECT id, type, (SELECT $10), subject, key, data, coalesce(headers, '{}'::jsonb),
           dedupe_key, priority,
           (SELECT r.slot FROM pgbus.events_ring r ORDER BY r.generation DESC LIMIT 1)
    FROM input
    WHERE dedupe_key IS NULL OR id IN (SELECT event_id FROM dedupe)
    RETURNING id, type, key, priority, slot
),
-- Due now: appended to the delivery log's current slot, as packs (migration 0019): one row per
-- lane and 256 events of the batch, its deliveries in batch order. Later (deliver_at in the
-- future): pgbus.deliveries, which the dispatcher reads when they fall due.
-- An ordered subscription's keyed deliveries carry seq, their publish order (migration
-- 0010), due now in the log too (migration 0017: the log's claim holds their keys), all in
-- the lane of priority 0: within a key, publish order wins over priority. Seqs are drawn in
-- batch order (the sort comes before the volatile column), before the rows are packed.
due AS MATERIALIZED (
    SELECT ev.id, ev.key, ev.slot, i.ord, s.name,
           CASE WHEN s.ordered AND ev.key IS NOT NULL THEN 0 ELSE ev.priority END AS lane,
           CASE WHEN s.ordered AND ev.key IS NOT NULL THEN nextval('pgbus.delivery_seq') END AS seq
    FROM ev
    JOIN input i ON i.id = ev.id
    JOIN pgbus.subscriptions s ON ev.type LIKE ANY (s.like_patterns)
    WHERE (NOT (SELECT $13) OR i.deliver_at IS NULL OR i.deliver_at <= now())
    ORDER BY i.ord
),
fan_now AS (
    INSERT INTO pgbus.log_packs (slot, subscription, priority, event_ids, keys, event_slot, seqs)
    SELECT (SELECT r.slot FROM pgbus.log_ring r ORDER BY r.generation DESC LIMIT 1),
           d.name, d.lane, array_agg(d.id ORDER BY d.ord),
           CASE WHEN bool_or(d.key IS NOT NULL) THEN array_agg(d.key ORDER BY d.ord) END,
           min(d.slot),
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
    SELECT ev.id, s.name, ev.priority, i.deliver_at, ev.key,
           true, nextval('pgbus.delivery_seq'), ev.slot
    FROM ev
    JOIN input i ON i.id = ev.id
    JOIN pgbus.subscriptions s ON ev.type LIKE ANY (s.like_patterns)
    WHERE (SELECT $13) AND i.deliver_at > now() AND s.ordered AND ev.key IS NOT NULL
    ORDER BY i.ord
    RETURNING event_id
),
fan_later AS (
    INSERT INTO pgbus.deliveries (event_id, subscription, priority, run_at, key, event_slot)
    SELECT ev.id, s.name, ev.priority, i.deliver_at, ev.key, ev.slot
    FROM ev
    JOIN input i ON i.id = ev.id
    JOIN pgbus.subscriptions s ON ev.type LIKE ANY (s.like_patterns)
    WHERE (SELECT $13) AND i.deliver_at > now() AND NOT (s.ordered AND ev.key IS NOT NULL)
    ORDER BY i.ord
    RETURNING event_id
),
fan AS (SELECT id AS event_id FROM due UNION ALL SELECT event_id FROM fan_later
        UNION ALL SELECT event_id FROM fan_ordered)
SELECT ev.id, coalesce(f.n, 0)::int4 AS deliveries,
       (SELECT true FROM (SELECT pg_notify((SELECT $12), '') WHERE (SELECT $11)) n) AS notified
FROM ev
LEFT JOIN (SELECT event_id, count(*) AS n FROM fan GROUP BY event_id) f ON f.event_id = ev.id
