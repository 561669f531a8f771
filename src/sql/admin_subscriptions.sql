-- name: admin_subscriptions
-- The registered subscriptions (all, or the one named), by name.
--
-- $1 name  text  null: every subscription
SELECT s.name, s.patterns, s.paused_at, s.created_at, s.updated_at
FROM pgbus.subscriptions s
WHERE $1::text IS NULL OR s.name = $1
ORDER BY s.name
