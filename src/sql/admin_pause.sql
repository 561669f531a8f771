-- name: admin_pause
-- Pauses a subscription (keeping the time of an earlier pause). Returns its paused_at and
-- whether it was running before; no row if there is no such subscription.
--
-- $1 name  text
UPDATE pgbus.subscriptions s SET paused_at = coalesce(o.paused_at, now())
FROM (SELECT name, paused_at FROM pgbus.subscriptions WHERE name = $1 FOR UPDATE) o
WHERE s.name = o.name
RETURNING s.paused_at, o.paused_at IS NULL AS changed
