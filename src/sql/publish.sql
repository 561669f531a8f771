-- name: publish
-- Writes a batch of events (an event whose dedupe key is taken is skipped) and fans each out
-- to one delivery per matching subscription, in one statement. One result row per written
-- event: its id and how many deliveries it got. Deliveries are inserted in batch order
-- (ORDER BY ord), so their ids follow the publish order whatever join the planner picks.
--
-- $1 ids          uuid[]
-- $2 types        text[]
-- $3 subjects     text[]
-- $4 keys         text[]
-- $5 datas        jsonb[]
-- $6 headers      jsonb[]
-- $7 dedupe_keys  text[]
-- $8 priorities   int2[]
-- $9 deliver_ats  timestamptz[]  null: due at once
-- $10 source      text
-- $11 notify      bool           whether to NOTIFY the channel $12 (delivered at commit)
-- $12 channel     text
-- $13 scheduled   bool           whether any event has a deliver_at (else the statement skips
--                                the part that writes scheduled deliveries)
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[],
                         $7::text[], $8::int2[], $9::timestamptz[])
        WITH ORDINALITY AS i(id, type, subject, key, data, headers, dedupe_key, priority, deliver_at,
                             ord)
),
ev AS (
    INSERT INTO pgbus.events (id, type, source, subject, key, data, headers, dedupe_key, priority)
    SELECT id, type, $10, subject, key, data, headers, dedupe_key, priority FROM input
    ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
    RETURNING id, type, key, priority
),
-- Due now: appended to the delivery log's current slot. Later (deliver_at in the future):
-- pgbus.deliveries, which the dispatcher reads when they fall due.
fan_now AS (
    INSERT INTO pgbus.delivery_log (slot, subscription, priority, event_id, key)
    SELECT (SELECT r.slot FROM pgbus.log_ring r ORDER BY r.generation DESC LIMIT 1),
           s.name, ev.priority, ev.id, ev.key
    FROM ev
    JOIN input i ON i.id = ev.id
    JOIN pgbus.subscriptions s ON ev.type LIKE ANY (s.like_patterns)
    WHERE NOT $13 OR i.deliver_at IS NULL OR i.deliver_at <= now()
    ORDER BY i.ord
    RETURNING event_id
),
fan_later AS (
    INSERT INTO pgbus.deliveries (event_id, subscription, priority, run_at, key)
    SELECT ev.id, s.name, ev.priority, i.deliver_at, ev.key
    FROM ev
    JOIN input i ON i.id = ev.id
    JOIN pgbus.subscriptions s ON ev.type LIKE ANY (s.like_patterns)
    WHERE $13 AND i.deliver_at > now()
    ORDER BY i.ord
    RETURNING event_id
),
fan AS (SELECT event_id FROM fan_now UNION ALL SELECT event_id FROM fan_later)
SELECT ev.id, coalesce(f.n, 0)::int4 AS deliveries,
       (SELECT true FROM (SELECT pg_notify($12, '') WHERE $11) n) AS notified
FROM ev
LEFT JOIN (SELECT event_id, count(*) AS n FROM fan GROUP BY event_id) f ON f.event_id = ev.id
