-- name: admin_subscriptions
-- The registered subscriptions (all, or the one named), by name, with when each was last
-- claimed: the newest of its lanes' claimed_at in pgbus.claims (a lane's newest row, its
-- cursor, is never pruned and carries the time of its last claim: migration 0013), of its
-- unfinished rows of pgbus.deliveries (claimed_at, stamped by claim.sql), and of the time
-- recorded in pgbus.subscriptions before migration 0013.
--
-- $1 name  text  null: every subscription
SELECT s.name, s.patterns, s.paused_at, s.created_at, s.updated_at,
       greatest(s.last_claimed_at,
                (SELECT max(c.claimed_at) FROM pgbus.claims c WHERE c.subscription = s.name),
                (SELECT max(d.claimed_at) FROM pgbus.deliveries d
                 WHERE d.subscription = s.name AND d.state < 2)) AS last_claimed_at
FROM pgbus.subscriptions s
WHERE $1::text IS NULL OR s.name = $1
ORDER BY s.name
