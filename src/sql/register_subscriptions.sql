-- name: register_subscriptions
-- Creates or updates subscriptions. A subscription whose patterns differ from the stored
-- ones takes the new patterns (the dispatcher started last wins). Returns one row per
-- subscription created or changed: its name and its previous patterns (null when created).
--
-- $1 names     text[]
-- $2 patterns  text[]  each a JSON array of patterns (arrays of arrays must be rectangular)
-- $3 likes     text[]  each a JSON array of the same patterns as SQL LIKE patterns
WITH input AS (
    SELECT n AS name, ARRAY(SELECT jsonb_array_elements_text(p::jsonb)) AS patterns,
           ARRAY(SELECT jsonb_array_elements_text(l::jsonb)) AS like_patterns
    FROM unnest($1::text[], $2::text[], $3::text[]) AS u(n, p, l)
),
before AS (
    SELECT s.name, s.patterns FROM pgbus.subscriptions s WHERE s.name = ANY ($1::text[])
),
upsert AS (
    INSERT INTO pgbus.subscriptions AS s (name, patterns, like_patterns)
    SELECT name, patterns, like_patterns FROM input
    ON CONFLICT (name) DO UPDATE
        SET patterns = excluded.patterns, like_patterns = excluded.like_patterns,
            updated_at = now()
        WHERE s.patterns IS DISTINCT FROM excluded.patterns
    RETURNING s.name
)
SELECT u.name, b.patterns AS previous FROM upsert u LEFT JOIN before b ON b.name = u.name
