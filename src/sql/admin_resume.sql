-- name: admin_resume
-- Resumes a paused subscription. Returns whether it was paused; no row if there is no such
-- subscription.
--
-- $1 name  text
UPDATE pgbus.subscriptions s SET paused_at = NULL
FROM (SELECT name, paused_at FROM pgbus.subscriptions WHERE name = $1 FOR UPDATE) o
WHERE s.name = o.name
RETURNING o.paused_at IS NOT NULL AS changed
