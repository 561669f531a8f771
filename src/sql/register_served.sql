-- name: register_served
-- Records which subscriptions a dispatcher serves (once, when it starts), and forgets those
-- of dispatchers that are gone (no row in pgbus.dispatchers any more).
--
-- $1 dispatcher  int4
-- $2 names       text[]
WITH forget AS (
    DELETE FROM pgbus.dispatcher_subscriptions s
    WHERE NOT EXISTS (SELECT 1 FROM pgbus.dispatchers d WHERE d.id = s.dispatcher)
)
INSERT INTO pgbus.dispatcher_subscriptions (dispatcher, subscription)
SELECT $1, n FROM unnest($2::text[]) AS n
ON CONFLICT DO NOTHING
