-- Migration 0014: pgbus.events partitioned into a ring of eight slots (docs/storage/design.md
-- §4.9), so that retention can TRUNCATE a whole slot instead of deleting events row by row.
--
-- pgbus.events_ring is a ledger like pgbus.log_ring: the current slot is the row with the
-- highest generation, and publishing writes there. Every event carries its slot, and so do
-- the rows that refer to an event (pgbus.delivery_log.event_slot, pgbus.deliveries.event_slot),
-- so that a claim fetches each event by (slot, id) from one partition, pruned at run time.
--
-- An event id is unique within its slot only (the primary key is (id, slot): a partitioned
-- table has no unique index that leaves out its partition key). A caller that brings its own
-- ids (NewEvent::with_id) and reuses one is refused while the first event's slot is current,
-- not after publishing has moved to another slot. Dedupe keys, which are the way to refuse a
-- repeat, live in pgbus.dedupe_keys (migration 0011), not in this table.
--
-- Upgrade in place: the existing table becomes the ring's slot 0. Adding a column with a
-- constant default rewrites nothing; the CHECK is added NOT VALID and validated (one scan,
-- which takes a lock that lets reads through), so that ATTACH PARTITION skips its own scan.
-- The (id, slot) index is built here, inside the migration's transaction; like every
-- migration it holds its locks until it commits, so writes wait for that one index build.

CREATE TABLE pgbus.events_ring (
    generation bigint      PRIMARY KEY,
    slot       smallint    NOT NULL CHECK (slot BETWEEN 0 AND 7),
    opened_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO pgbus.events_ring (generation, slot) VALUES (0, 0);

-- The current slot, for inserts that do not name one (an INSERT INTO pgbus.events written by
-- hand; pgbus's own publish statements read the ring themselves, once per statement).
CREATE FUNCTION pgbus.events_slot() RETURNS smallint
LANGUAGE sql STABLE AS $f$
    SELECT r.slot FROM pgbus.events_ring r ORDER BY r.generation DESC LIMIT 1
$f$;

-- The old table, as slot 0.
ALTER TABLE pgbus.events RENAME TO events_0;
ALTER INDEX pgbus.events_subject RENAME TO events_0_subject;
ALTER INDEX pgbus.events_created_at RENAME TO events_0_created_at;
ALTER TABLE pgbus.events_0 ADD COLUMN slot smallint NOT NULL DEFAULT 0;
ALTER TABLE pgbus.events_0 ADD CONSTRAINT events_0_slot CHECK (slot = 0) NOT VALID;
ALTER TABLE pgbus.events_0 VALIDATE CONSTRAINT events_0_slot;
CREATE UNIQUE INDEX events_0_pkey_ring ON pgbus.events_0 (id, slot);
ALTER TABLE pgbus.events_0 DROP CONSTRAINT events_pkey;
ALTER TABLE pgbus.events_0 ADD CONSTRAINT events_0_pkey PRIMARY KEY USING INDEX events_0_pkey_ring;

CREATE TABLE pgbus.events (
    id          uuid        NOT NULL,
    type        text        NOT NULL,
    source      text        NOT NULL,
    subject     text,
    key         text,
    data        jsonb       NOT NULL,
    headers     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    dedupe_key  text,
    priority    smallint    NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    slot        smallint    NOT NULL DEFAULT pgbus.events_slot(),
    PRIMARY KEY (id, slot)
) PARTITION BY LIST (slot);

ALTER TABLE pgbus.events ATTACH PARTITION pgbus.events_0 FOR VALUES IN (0);
-- The partition's own default no longer applies (inserts go through the parent's).
ALTER TABLE pgbus.events_0 ALTER COLUMN slot DROP DEFAULT;
ALTER TABLE pgbus.events_0 DROP CONSTRAINT events_0_slot;

CREATE TABLE pgbus.events_1 PARTITION OF pgbus.events FOR VALUES IN (1) WITH (fillfactor = 100);
CREATE TABLE pgbus.events_2 PARTITION OF pgbus.events FOR VALUES IN (2) WITH (fillfactor = 100);
CREATE TABLE pgbus.events_3 PARTITION OF pgbus.events FOR VALUES IN (3) WITH (fillfactor = 100);
CREATE TABLE pgbus.events_4 PARTITION OF pgbus.events FOR VALUES IN (4) WITH (fillfactor = 100);
CREATE TABLE pgbus.events_5 PARTITION OF pgbus.events FOR VALUES IN (5) WITH (fillfactor = 100);
CREATE TABLE pgbus.events_6 PARTITION OF pgbus.events FOR VALUES IN (6) WITH (fillfactor = 100);
CREATE TABLE pgbus.events_7 PARTITION OF pgbus.events FOR VALUES IN (7) WITH (fillfactor = 100);

-- The parent's indexes; slot 0's existing ones are attached, not built again.
CREATE INDEX events_subject ON pgbus.events (subject, id) WHERE subject IS NOT NULL;
CREATE INDEX events_created_at ON pgbus.events USING brin (created_at);

-- The slot of the event each row refers to. A constant default: no rewrite; every row
-- written so far refers to slot 0. Migration 0015 makes every writer name it.
ALTER TABLE pgbus.deliveries ADD COLUMN event_slot smallint NOT NULL DEFAULT 0;
ALTER TABLE pgbus.delivery_log ADD COLUMN event_slot smallint NOT NULL DEFAULT 0;

-- The view named the old table (views follow a renamed table): made again on the new one.
CREATE OR REPLACE VIEW pgbus.all_deliveries AS
    SELECT d.id, d.event_id, d.subscription, d.state, d.priority, d.run_at, d.attempts, d.solo,
           d.key, d.last_error, d.created_at, d.finished_at
    FROM pgbus.deliveries d
    UNION ALL
    SELECT l.id, l.event_id, l.subscription, l.state, l.priority,
           coalesce(l.lease_until, e.created_at), l.state::integer, false, l.key, NULL::text,
           e.created_at, NULL::timestamptz
    FROM pgbus.log_unfinished() l
    JOIN pgbus.events e ON e.id = l.event_id;
