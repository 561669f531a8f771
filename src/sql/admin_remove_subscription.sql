-- name: admin_remove_subscription
-- Removes a subscription and its deliveries that are not running, in one statement.
-- Running deliveries are left to finish under their lease (a row is never written without
-- it) and counted. Publishing stops fanning out to it at once; a dispatcher that still
-- serves it registers it again when it starts. Pending deliveries are deleted here: when
-- they live elsewhere too (a delivery log), this is where they are removed.
--
-- $1 name  text
WITH sub AS (
    DELETE FROM pgbus.subscriptions WHERE name = $1 RETURNING name
),
del AS (
    DELETE FROM pgbus.deliveries d
    WHERE d.subscription = $1 AND d.state <> 1 /* running */ AND EXISTS (SELECT 1 FROM sub)
    RETURNING d.state
),
served AS (
    DELETE FROM pgbus.dispatcher_subscriptions s
    WHERE s.subscription = $1 AND EXISTS (SELECT 1 FROM sub)
)
SELECT EXISTS (SELECT 1 FROM sub) AS removed,
       (SELECT count(*) FROM del WHERE state = 0 /* pending */) AS pending,
       (SELECT count(*) FROM del WHERE state = 3 /* dead */) AS dead,
       (SELECT count(*) FROM del WHERE state = 2 /* done */) AS done,
       (SELECT count(*) FROM pgbus.deliveries d
        WHERE d.subscription = $1 AND d.state = 1 /* running */) AS running
