-- name: reap_dispatcher
-- Takes back the leases of a dispatcher that is gone: only if its presence lock is free
-- (a live dispatcher holds it, so a slow one is never reaped). Its running deliveries get
-- an expired lease (run_at = now()), which the next claim takes back like any expired
-- lease, and its open batches too, which the next sweep takes back (sweep_claims.sql); its
-- row is removed. Returns how many leases (rows and batches) were expired.
--
-- $1 namespace  int4
-- $2 id         int4
WITH dead AS (
    SELECT $2::int4 AS id WHERE pg_try_advisory_xact_lock($1, $2)
),
gone AS (
    DELETE FROM pgbus.dispatchers d USING dead WHERE d.id = dead.id RETURNING d.id
),
expired AS (
    UPDATE pgbus.deliveries d SET run_at = now()
    WHERE d.state = 1 /* running */ AND d.owner = (SELECT id FROM gone) AND d.run_at > now()
    RETURNING 1
),
batches AS (
    UPDATE pgbus.claims c SET lease_until = now()
    WHERE c.closed_at IS NULL AND c.owner = (SELECT id FROM gone) AND c.lease_until > now()
    RETURNING 1
)
SELECT (SELECT count(*) FROM expired) + (SELECT count(*) FROM batches)
