-- Transactional handlers, and dedupe keys with an explicit scope.

-- A done marker written by a transactional handler's transaction for a row of the delivery
-- log (src/sql/complete_tx.sql) names its batch here while the batch may still be open; the
-- marker is deleted once the batch is closed (src/sql/prune_tx_done.sql). Null everywhere
-- else. A nullable column without a default: no table rewrite.
ALTER TABLE pgbus.deliveries ADD COLUMN tx_batch bigint;
CREATE INDEX deliveries_tx_batch ON pgbus.deliveries (tx_batch) WHERE tx_batch IS NOT NULL;

-- Dedupe keys in a table of their own, unique within a scope (src/dedupe.rs): `type:<type>`
-- (the default), `source:<source>` or `*` (global). A key deduplicates for the dedupe
-- retention, counted from its first event (src/sql/prune_dedupe_keys.sql), not for as long
-- as that event happens to be kept; and pgbus.events loses its one global unique index,
-- which a time-partitioned pgbus.events could not have.
CREATE TABLE pgbus.dedupe_keys (
    scope      text        NOT NULL,
    key        text        NOT NULL,
    event_id   uuid        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
-- BRIN: keys are appended in time order, and a block range summary costs publishing almost
-- nothing (a btree here cost every keyed publish one more index insert).
CREATE INDEX dedupe_keys_created ON pgbus.dedupe_keys USING brin (created_at);

-- The keys held so far were unique across all events: each keeps deduplicating in every
-- scope its event is in (its type, its source, and globally).
INSERT INTO pgbus.dedupe_keys (scope, key, event_id, created_at)
SELECT s.scope, e.dedupe_key, e.id, e.created_at
FROM pgbus.events e
CROSS JOIN LATERAL (VALUES ('type:' || e.type), ('source:' || e.source), ('*')) AS s(scope)
WHERE e.dedupe_key IS NOT NULL
ON CONFLICT (scope, key) DO NOTHING;

-- pgbus.events.dedupe_key stays, as the event's record of its key.
DROP INDEX pgbus.events_dedupe_key;

-- The SQL publish function (0007, with 0010's routing of ordered subscriptions),
-- deduplicating through pgbus.dedupe_keys. Only the dedupe part differs from 0010.
CREATE OR REPLACE FUNCTION pgbus.publish(type text, data jsonb, source text, subject text DEFAULT NULL,
                              key text DEFAULT NULL, headers jsonb DEFAULT '{}',
                              dedupe_key text DEFAULT NULL, priority smallint DEFAULT 0,
                              deliver_at timestamptz DEFAULT NULL)
RETURNS uuid LANGUAGE plpgsql VOLATILE AS $f$
#variable_conflict use_column
DECLARE
    v_id uuid := pgbus.uuid_v7();
    v_headers jsonb := coalesce(publish.headers, '{}');
    v_priority smallint := coalesce(publish.priority, 0);
    v_limit bigint := coalesce(nullif(current_setting('pgbus.max_payload_bytes', true), '')::bigint,
                               1048576);
    v_written uuid;
BEGIN
    -- The order of validate::new_event (the source is checked by the Rust builder).
    PERFORM pgbus.check_event_type(publish.type);
    IF publish.source IS NULL THEN
        PERFORM pgbus.refuse('PB002', 'invalid event field `source`: must not be empty');
    END IF;
    PERFORM pgbus.check_text('source', publish.source);
    PERFORM pgbus.check_text('subject', publish.subject);
    PERFORM pgbus.check_text('key', publish.key);
    PERFORM pgbus.check_text('dedupe_key', publish.dedupe_key);
    PERFORM pgbus.check_headers(v_headers);
    PERFORM pgbus.check_payload(publish.data, v_limit);

    -- The key is claimed in its scope first (the default scope, per event type, as
    -- DedupeScope::EventType in src/dedupe.rs writes it); a key taken makes a duplicate.
    IF publish.dedupe_key IS NOT NULL THEN
        INSERT INTO pgbus.dedupe_keys AS d (scope, key, event_id)
        VALUES ('type:' || publish.type, publish.dedupe_key, v_id)
        ON CONFLICT (scope, key) DO NOTHING
        RETURNING d.event_id INTO v_written;
        IF v_written IS NULL THEN
            -- A duplicate: the original's id, as PublishOutcome::Duplicate carries it (this
            -- id when the original is not visible, e.g. under REPEATABLE READ).
            SELECT d.event_id INTO v_written FROM pgbus.dedupe_keys d
            WHERE d.scope = 'type:' || publish.type AND d.key = publish.dedupe_key;
            RETURN coalesce(v_written, v_id);
        END IF;
    END IF;
    INSERT INTO pgbus.events AS e (id, type, source, subject, key, data, headers, dedupe_key,
                                   priority)
    VALUES (v_id, publish.type, publish.source, publish.subject, publish.key, publish.data,
            v_headers, publish.dedupe_key, v_priority);

    IF publish.deliver_at IS NULL OR publish.deliver_at <= now() THEN
        INSERT INTO pgbus.delivery_log (slot, subscription, priority, event_id, key)
        SELECT (SELECT r.slot FROM pgbus.log_ring r ORDER BY r.generation DESC LIMIT 1),
               s.name, v_priority, v_id, publish.key
        FROM pgbus.subscriptions s
        WHERE publish.type LIKE ANY (s.like_patterns)
          AND NOT (s.ordered AND publish.key IS NOT NULL);
        -- Ordered subscriptions' keyed deliveries: pgbus.deliveries (claim_ordered.sql).
        INSERT INTO pgbus.deliveries (event_id, subscription, priority, key, ordered, seq)
        SELECT v_id, s.name, v_priority, publish.key, true, nextval('pgbus.delivery_seq')
        FROM pgbus.subscriptions s
        WHERE publish.type LIKE ANY (s.like_patterns)
          AND s.ordered AND publish.key IS NOT NULL;
    ELSE
        INSERT INTO pgbus.deliveries (event_id, subscription, priority, run_at, key, ordered,
                                      seq)
        SELECT v_id, s.name, v_priority, publish.deliver_at, publish.key,
               s.ordered AND publish.key IS NOT NULL,
               CASE WHEN s.ordered AND publish.key IS NOT NULL
                    THEN nextval('pgbus.delivery_seq') END
        FROM pgbus.subscriptions s
        WHERE publish.type LIKE ANY (s.like_patterns);
    END IF;
    -- Delivered at commit; identical notifications of one transaction are sent once.
    PERFORM pg_notify('pgbus', '');
    RETURN v_id;
END
$f$;
