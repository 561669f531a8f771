-- name: metrics_gauges
-- The gauges of the metrics feature (src/telemetry/gauges.rs), sampled by each dispatcher's
-- maintenance every few seconds for the subscriptions it serves: pending and running
-- deliveries wherever they live (pgbus.all_deliveries), and the age in seconds of the oldest
-- due pending one (lag). Bounded: at most $2 unfinished deliveries are read (those of
-- pgbus.deliveries first, then the delivery log's), so past it the counts are lower bounds.
--
-- $1 names  text[]  the subscriptions
-- $2 cap    int8    unfinished deliveries read at most
SELECT d.subscription,
       count(*) FILTER (WHERE d.state = 0 /* pending */) AS pending,
       count(*) FILTER (WHERE d.state = 1 /* running */) AS running,
       extract(epoch FROM now() - min(d.run_at) FILTER (WHERE d.state = 0 AND d.run_at <= now()))::float8
           AS lag
FROM (SELECT a.subscription, a.state, a.run_at FROM pgbus.all_deliveries a
      WHERE a.subscription = ANY ($1::text[]) AND a.state < 2
      LIMIT $2) d
GROUP BY d.subscription
