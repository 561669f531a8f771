-- name: admin_subscription_counts
-- Delivery counts per subscription, for the admin's subscription list and health. The one
-- statement that counts pending, running and finished deliveries by subscription, wherever
-- they live (pgbus.all_deliveries: pgbus.deliveries and the delivery log's unfinished rows).
--
-- Done deliveries are counted only while retained (retain_done); without it they are
-- deleted when they finish, so finished_* counts dead ones only.
--
-- $1 names  text[]  null: every subscription with deliveries
SELECT d.subscription,
       count(*) FILTER (WHERE d.state = 0 /* pending */) AS pending,
       count(*) FILTER (WHERE d.state = 0 /* pending */ AND d.run_at <= now()) AS due,
       count(*) FILTER (WHERE d.state = 1 /* running */) AS running,
       count(*) FILTER (WHERE d.state = 3 /* dead */) AS dead,
       count(*) FILTER (WHERE d.state = 2 /* done */) AS done,
       min(d.run_at) FILTER (WHERE d.state = 0 /* pending */ AND d.run_at <= now()) AS oldest_due,
       count(*) FILTER (WHERE d.state >= 2 AND d.finished_at > now() - interval '1 minute')
           AS finished_last_minute,
       count(*) FILTER (WHERE d.state >= 2 AND d.finished_at > now() - interval '1 hour')
           AS finished_last_hour,
       max(d.finished_at) AS last_finished_at
FROM pgbus.all_deliveries d
WHERE $1::text[] IS NULL OR d.subscription = ANY ($1)
GROUP BY d.subscription
