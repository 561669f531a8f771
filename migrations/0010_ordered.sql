-- pgbus schema, version 10: per-key ordering (Subscription::ordered).
--
-- An ordered subscription's deliveries that share an event key run one at a time, in publish
-- order, across all dispatchers. Its keyed deliveries skip the delivery log: publish writes
-- them to pgbus.deliveries with `ordered` set, and claim_ordered.sql takes only each key's
-- head (its oldest pending delivery, when no delivery of the key is running and, with the
-- blocking dead-key policy, none is dead). Unordered subscriptions, and an ordered
-- subscription's deliveries without a key, keep the delivery log and pay nothing: their rows
-- have `ordered` false, and the claim of pgbus.deliveries (claim.sql) leaves ordered rows out
-- through the predicates of its indexes.

-- Set by the dispatcher's registration (register_subscriptions.sql), like the patterns.
-- dead_blocks_key: a dead delivery holds back the later deliveries of its key until it is
-- retried or discarded (true, the default), or the key moves on past it (false).
ALTER TABLE pgbus.subscriptions
    ADD COLUMN ordered boolean NOT NULL DEFAULT false,
    ADD COLUMN dead_blocks_key boolean NOT NULL DEFAULT true;

-- A constant default: no table rewrite. `seq` is the publish order of an ordered delivery:
-- ids come from a sequence with a per-session cache (migration 0005), so two sessions
-- publishing one after the other can get ids in the opposite order; this sequence has no
-- cache, so a delivery published after another one committed (or earlier in the same
-- transaction) has a higher seq. Null for unordered deliveries.
ALTER TABLE pgbus.deliveries
    ADD COLUMN ordered boolean NOT NULL DEFAULT false,
    ADD COLUMN seq bigint;
CREATE SEQUENCE pgbus.delivery_seq AS bigint CACHE 1;

-- The claim of pgbus.deliveries (claim.sql, `NOT d.ordered`) no longer sees ordered rows:
-- claim_ordered.sql takes them through the index below. Ordered crash suspects stay in this
-- index (they are few), for solo_due.sql.
CREATE INDEX deliveries_due_v10 ON pgbus.deliveries (subscription, solo, priority, run_at, id)
    WHERE state < 2 AND (solo OR NOT ordered);
DROP INDEX pgbus.deliveries_due;
ALTER INDEX pgbus.deliveries_due_v10 RENAME TO deliveries_due;

-- The ordered claim walks the keys of a subscription (in C order, from the key after the
-- last one it claimed). Within a key, a running delivery sorts first (`state <> 1` is false),
-- then pending and dead ones by seq (publish order): the first entry after a position is the
-- next key's running delivery, else its oldest unfinished one, so one probe per key tells
-- whether the key can run and which delivery is its head. Done rows (state 2, only when
-- retained) are left out.
CREATE INDEX deliveries_ordered
    ON pgbus.deliveries (subscription, (key COLLATE "C"), (state <> 1), seq)
    WHERE ordered AND state <> 2;

-- The SQL publish routes like publish.sql: an ordered subscription's keyed deliveries go to
-- pgbus.deliveries. Otherwise as in 0007.
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

    INSERT INTO pgbus.events AS e (id, type, source, subject, key, data, headers, dedupe_key,
                                   priority)
    VALUES (v_id, publish.type, publish.source, publish.subject, publish.key, publish.data,
            v_headers, publish.dedupe_key, v_priority)
    ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
    RETURNING e.id INTO v_written;
    IF v_written IS NULL THEN
        -- A duplicate: the original's id, as PublishOutcome::Duplicate carries it (this id
        -- when the original is not visible, e.g. under REPEATABLE READ).
        SELECT e.id INTO v_written FROM pgbus.events e WHERE e.dedupe_key = publish.dedupe_key;
        RETURN coalesce(v_written, v_id);
    END IF;

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
