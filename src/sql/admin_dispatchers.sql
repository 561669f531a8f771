-- name: admin_dispatchers
-- The registered dispatchers, with whether each is alive (holds its presence lock: trying it
-- here fails; the try writes nothing and holds the lock only for this statement) and the
-- subscriptions it serves.
--
-- $1 namespace  int4  the presence locks' namespace
SELECT d.id, d.host, d.pid, d.started_at,
       NOT pg_try_advisory_xact_lock($1, d.id) AS alive,
       ARRAY(SELECT s.subscription FROM pgbus.dispatcher_subscriptions s
             WHERE s.dispatcher = d.id ORDER BY s.subscription) AS subscriptions
FROM pgbus.dispatchers d
ORDER BY d.id
