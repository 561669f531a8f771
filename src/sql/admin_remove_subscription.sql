-- name: admin_remove_subscription
-- Removes a subscription and its deliveries that are not running, in one statement.
-- Running deliveries are left to finish under their lease (a row is never written without
-- it) and counted. Publishing stops fanning out to it at once; a dispatcher that still
-- serves it registers it again when it starts. Pending deliveries are deleted here; those
-- in the delivery log are skipped by moving each of the subscription's lanes past
-- everything committed (a closed pgbus.claims row whose window ends at this snapshot), so a
-- subscription registered again later under the same name starts from now (and was never
-- claimed: the rows' claimed_at is null).
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
log AS (
    SELECT l.state FROM pgbus.log_unfinished() l
    WHERE l.subscription = $1 AND EXISTS (SELECT 1 FROM sub)
),
cut AS (
    INSERT INTO pgbus.claims (subscription, priority, prev_snap, cur_snap, from_txid, from_id,
                              last_txid, last_id, n, exhausted, lease_id, lease_until, closed_at,
                              claimed_at)
    SELECT $1, l, pg_current_snapshot(), pg_current_snapshot(), '0', 0, '0', 0, 0, true, 0, now(),
           now(), NULL
    FROM pgbus.log_lanes($1) l
    WHERE EXISTS (SELECT 1 FROM sub)
    RETURNING 1
),
served AS (
    DELETE FROM pgbus.dispatcher_subscriptions s
    WHERE s.subscription = $1 AND EXISTS (SELECT 1 FROM sub)
)
SELECT EXISTS (SELECT 1 FROM sub) AS removed,
       (SELECT count(*) FROM del WHERE state = 0 /* pending */)
           + (SELECT count(*) FROM log WHERE state = 0 /* pending */) AS pending,
       (SELECT count(*) FROM del WHERE state = 3 /* dead */) AS dead,
       (SELECT count(*) FROM del WHERE state = 2 /* done */) AS done,
       (SELECT count(*) FROM pgbus.deliveries d
        WHERE d.subscription = $1 AND d.state = 1 /* running */)
           + (SELECT count(*) FROM log WHERE state = 1 /* running */) AS running
