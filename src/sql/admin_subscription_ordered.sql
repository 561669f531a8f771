-- name: admin_subscription_ordered
-- Whether a subscription is ordered; no row when it does not exist.
--
-- $1 name  text
SELECT ordered FROM pgbus.subscriptions WHERE name = $1
