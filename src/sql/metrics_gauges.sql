-- name: metrics_gauges
-- The gauges of the metrics feature (src/telemetry/gauges.rs), sampled by each dispatcher's
-- maintenance every few seconds for the subscriptions it serves: pending and running
-- deliveries wherever they live, and the age in seconds of the oldest due pending one (lag).
-- pgbus.deliveries is read row by row, bounded: at most $2 of its unfinished rows, so past
-- it its counts are lower bounds. The delivery log is counted by pack (pgbus.log_gauges,
-- migration 0022): its cost grows with the packs past each lane's cursor, 256 deliveries a
-- pack at most, not with the deliveries.
--
-- $1 names  text[]  the subscriptions
-- $2 cap    int8    rows of pgbus.deliveries read at most
SELECT g.subscription, sum(g.pending)::int8 AS pending, sum(g.running)::int8 AS running,
       extract(epoch FROM now() - min(g.oldest))::float8 AS lag
FROM (
    SELECT d.subscription,
           count(*) FILTER (WHERE d.state = 0 /* pending */) AS pending,
           count(*) FILTER (WHERE d.state = 1 /* running */) AS running,
           min(d.run_at) FILTER (WHERE d.state = 0 AND d.run_at <= now()) AS oldest
    FROM (SELECT x.subscription, x.state, x.run_at FROM pgbus.deliveries x
          WHERE x.subscription = ANY ($1::text[]) AND x.state < 2
          LIMIT $2) d
    GROUP BY d.subscription
    UNION ALL
    SELECT l.subscription, l.pending, l.running, l.oldest FROM pgbus.log_gauges($1::text[]) l
) g
GROUP BY g.subscription
