-- pgbus schema, version 1.
--
-- events        : immutable published events (one row per publish).
-- subscriptions : durable named consumer groups and the type patterns they match.
-- deliveries    : one row per (event, subscription), the unit of work of the dispatcher.
--
-- Delivery states: 0 pending, 1 running, 2 done (only when done rows are retained), 3 dead.
-- For a pending delivery `run_at` is when it becomes due; for a running one it is the
-- lease expiry: a running delivery whose run_at has passed has lost its lease and is
-- taken back by the next claim (its attempt counted).

CREATE TABLE pgbus.events (
    id          uuid        PRIMARY KEY,
    type        text        NOT NULL,
    source      text        NOT NULL,
    subject     text,
    key         text,
    data        jsonb       NOT NULL,
    headers     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    dedupe_key  text,
    priority    smallint    NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 100);

CREATE UNIQUE INDEX events_dedupe_key ON pgbus.events (dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX events_subject ON pgbus.events (subject, id) WHERE subject IS NOT NULL;
-- Retention pruning walks events by age; BRIN stays tiny on an append-only table.
CREATE INDEX events_created_at ON pgbus.events USING brin (created_at);

CREATE TABLE pgbus.subscriptions (
    name          text        PRIMARY KEY,
    patterns      text[]      NOT NULL,
    like_patterns text[]      NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pgbus.deliveries (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     uuid        NOT NULL,
    subscription text        NOT NULL,
    state        smallint    NOT NULL DEFAULT 0,
    priority     smallint    NOT NULL DEFAULT 0,
    run_at       timestamptz NOT NULL DEFAULT now(),
    attempts     integer     NOT NULL DEFAULT 0,
    solo         boolean     NOT NULL DEFAULT false,
    key          text,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
) WITH (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0,
    -- Truncating empty pages at the end of a vacuum takes an ACCESS EXCLUSIVE lock that
    -- stalls every claim and completion; a queue table refills them at once anyway.
    vacuum_truncate = false
);

-- The claim path: due work per subscription, in priority, run_at, id order. Crash suspects
-- ("solo" deliveries, whose previous lease expired) sit in their own small index.
CREATE INDEX deliveries_due ON pgbus.deliveries (subscription, priority, run_at, id)
    WHERE state < 2 AND NOT solo;
CREATE INDEX deliveries_due_solo ON pgbus.deliveries (subscription, priority, run_at, id)
    WHERE state < 2 AND solo;
-- Dead letters and retained done rows, for the admin tools.
CREATE INDEX deliveries_finished ON pgbus.deliveries (subscription, state, finished_at)
    WHERE state >= 2;
-- No index on event_id: every index is paid on each claim (a non-HOT update). Pruning
-- events anti-joins the (small, churning) deliveries table instead.
