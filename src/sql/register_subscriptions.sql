-- name: register_subscriptions
-- Creates or updates subscriptions. A subscription whose patterns or ordering differ from
-- the stored ones takes the new ones (the dispatcher started last wins). Returns one row per
-- subscription created or changed: its name, its previous patterns (null when created) and
-- whether it was ordered before.
--
-- A subscription that stops being ordered gives its unfinished ordered deliveries back to
-- the unordered claim (claim.sql). One that becomes ordered orders what is published from
-- then on.
--
-- $1 names        text[]
-- $2 patterns     text[]  each a JSON array of patterns (arrays of arrays must be rectangular)
-- $3 likes        text[]  each a JSON array of the same patterns as SQL LIKE patterns
-- $4 ordered      bool[]  Subscription::ordered
-- $5 dead_blocks  bool[]  the dead-key policy: a dead delivery blocks its key
WITH input AS (
    SELECT n AS name, ARRAY(SELECT jsonb_array_elements_text(p::jsonb)) AS patterns,
           ARRAY(SELECT jsonb_array_elements_text(l::jsonb)) AS like_patterns,
           o AS ordered, b AS dead_blocks_key
    FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::bool[]) AS u(n, p, l, o, b)
),
before AS (
    SELECT s.name, s.patterns, s.ordered FROM pgbus.subscriptions s
    WHERE s.name = ANY ($1::text[])
),
upsert AS (
    INSERT INTO pgbus.subscriptions AS s (name, patterns, like_patterns, ordered,
                                          dead_blocks_key)
    SELECT name, patterns, like_patterns, ordered, dead_blocks_key FROM input
    ON CONFLICT (name) DO UPDATE
        SET patterns = excluded.patterns, like_patterns = excluded.like_patterns,
            ordered = excluded.ordered, dead_blocks_key = excluded.dead_blocks_key,
            updated_at = now()
        WHERE s.patterns IS DISTINCT FROM excluded.patterns
           OR s.ordered IS DISTINCT FROM excluded.ordered
           OR s.dead_blocks_key IS DISTINCT FROM excluded.dead_blocks_key
    RETURNING s.name
),
unordered AS (
    UPDATE pgbus.deliveries d SET ordered = false
    FROM input i
    WHERE NOT i.ordered AND d.subscription = i.name AND d.ordered AND d.state <> 2
    RETURNING d.id
)
SELECT u.name, b.patterns AS previous, b.ordered AS was_ordered,
       (SELECT count(*) FROM unordered) AS unordered
FROM upsert u LEFT JOIN before b ON b.name = u.name
