-- Side table for the recommended design's exceptions (retries, deliver_at, suspects): today's
-- pgbus.deliveries shape and claim index, claimed at low cadence by today's claim statement.
DROP TABLE IF EXISTS c.side;
CREATE TABLE c.side (LIKE a.deliveries INCLUDING DEFAULTS INCLUDING IDENTITY)
  WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
        autovacuum_vacuum_cost_delay = 0, vacuum_truncate = false);
ALTER TABLE c.side ADD PRIMARY KEY (id);
CREATE INDEX side_due ON c.side (subscription, solo, priority, run_at, id) WHERE state < 2;
