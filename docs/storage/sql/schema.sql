-- Prototype schemas for the four candidate claim designs (one schema each).
DROP SCHEMA IF EXISTS a CASCADE; DROP SCHEMA IF EXISTS b CASCADE;
DROP SCHEMA IF EXISTS c CASCADE; DROP SCHEMA IF EXISTS d CASCADE;
CREATE SCHEMA a; CREATE SCHEMA b; CREATE SCHEMA c; CREATE SCHEMA d;
CREATE TABLE IF NOT EXISTS public.pin_target (x int); 

-- (a) today's pgbus schema (0001..0003), deliveries only
CREATE TABLE a.deliveries (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id uuid NOT NULL, subscription text NOT NULL,
    state smallint NOT NULL DEFAULT 0, priority smallint NOT NULL DEFAULT 0,
    run_at timestamptz NOT NULL DEFAULT now(), attempts integer NOT NULL DEFAULT 0,
    solo boolean NOT NULL DEFAULT false, key text, last_error text,
    created_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz, lease_id bigint
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
        autovacuum_vacuum_insert_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.02,
        autovacuum_vacuum_cost_delay = 0, vacuum_truncate = false);
CREATE INDEX deliveries_due ON a.deliveries (subscription, solo, priority, run_at, id) WHERE state < 2;

-- (b) claim = DELETE ... FOR UPDATE SKIP LOCKED in one short transaction, no running state
CREATE TABLE b.deliveries (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id uuid NOT NULL, subscription text NOT NULL, priority smallint NOT NULL DEFAULT 0,
    run_at timestamptz NOT NULL DEFAULT now(), attempts integer NOT NULL DEFAULT 0, key text,
    created_at timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
        autovacuum_vacuum_insert_scale_factor = 0.05, autovacuum_vacuum_cost_delay = 0, vacuum_truncate = false);
CREATE INDEX b_due ON b.deliveries (subscription, priority, run_at, id);

-- (c) append-only ready rows stamped with their inserting txid, in 3 rotating partitions;
--     a per-subscription cursor = (window prev snapshot, window cur snapshot, last (txid,id))
--     persisted as an append-only batch log, which is also the batch lease.
CREATE SEQUENCE c.ready_id CACHE 100;
CREATE TABLE c.ready (
    slot smallint NOT NULL,
    txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    id bigint NOT NULL DEFAULT nextval('c.ready_id'),
    event_id uuid NOT NULL, subscription text NOT NULL, priority smallint NOT NULL DEFAULT 0,
    attempts integer NOT NULL DEFAULT 0, key text
) PARTITION BY LIST (slot);
CREATE TABLE c.ready_0 PARTITION OF c.ready FOR VALUES IN (0) WITH (fillfactor = 100, autovacuum_enabled = false);
CREATE TABLE c.ready_1 PARTITION OF c.ready FOR VALUES IN (1) WITH (fillfactor = 100, autovacuum_enabled = false);
CREATE TABLE c.ready_2 PARTITION OF c.ready FOR VALUES IN (2) WITH (fillfactor = 100, autovacuum_enabled = false);
CREATE INDEX ready_pos ON c.ready (subscription, txid, id);
CREATE TABLE c.rot (one bool PRIMARY KEY DEFAULT true, cur smallint NOT NULL, switched_at timestamptz NOT NULL);
INSERT INTO c.rot VALUES (true, 0, now());
CREATE TABLE c.batches (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sub text NOT NULL,
    prev_snap pg_snapshot NOT NULL, cur_snap pg_snapshot NOT NULL,
    from_txid xid8 NOT NULL, from_id bigint NOT NULL,   -- exclusive lower bound in the window
    last_txid xid8 NOT NULL, last_id bigint NOT NULL,   -- inclusive upper bound = next cursor
    n int NOT NULL, lease_until timestamptz NOT NULL, lease_id bigint NOT NULL,
    done boolean NOT NULL DEFAULT false
) WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0);
CREATE INDEX batches_cursor ON c.batches (sub, seq);
CREATE INDEX batches_open ON c.batches (lease_until) WHERE NOT done;
INSERT INTO c.batches (sub, prev_snap, cur_snap, from_txid, from_id, last_txid, last_id, n, lease_until, lease_id, done)
VALUES ('s1', pg_current_snapshot(), pg_current_snapshot(), '0', 0, '0', 0, 0, now(), 0, true);

CREATE FUNCTION c.claim(p_sub text, p_n int, p_lease float8)
RETURNS TABLE (batch bigint, id bigint, txid xid8, event_id uuid, attempts int)
LANGUAGE plpgsql AS $f$
DECLARE
    b c.batches; prev pg_snapshot; cur pg_snapshot; lt xid8; li bigint; rt xid8; ri bigint;
    xips xid8[]; ids bigint[]; txs xid8[]; evs uuid[]; att int[]; k int; seq bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('pgbus.claim:' || p_sub));
    SELECT * INTO b FROM c.batches WHERE sub = p_sub ORDER BY c.batches.seq DESC LIMIT 1;
    prev := b.prev_snap; cur := b.cur_snap; lt := b.last_txid; li := b.last_id;
    FOR attempt IN 1..2 LOOP
        -- txids in progress at the window start that committed by its end (out-of-order commits)
        xips := ARRAY(SELECT x FROM pg_snapshot_xip(prev) x
                      WHERE pg_visible_in_snapshot(x, cur));
        IF lt < pg_snapshot_xmax(prev) THEN rt := pg_snapshot_xmax(prev); ri := -1;
        ELSE rt := lt; ri := li; END IF;
        SELECT array_agg(r.id ORDER BY r.txid, r.id), array_agg(r.txid ORDER BY r.txid, r.id),
               array_agg(r.event_id ORDER BY r.txid, r.id), array_agg(r.attempts ORDER BY r.txid, r.id)
          INTO ids, txs, evs, att
        FROM ((SELECT q.id, q.txid, q.event_id, q.attempts
               FROM (SELECT t FROM unnest(xips) AS x(t) WHERE t >= lt ORDER BY t) x
               -- (1) late committers: one exact index probe per txid of the window-start xip
               --     list.  No row comparison: mixed with `txid = t` it made btree walk the lane.
               CROSS JOIN LATERAL (SELECT q.id, q.txid, q.event_id, q.attempts FROM c.ready q
                                   WHERE q.subscription = p_sub AND q.txid = x.t
                                     AND q.id > CASE WHEN x.t = lt THEN li ELSE 0 END
                                   ORDER BY q.id LIMIT p_n) q
               LIMIT p_n)
              UNION ALL
              -- (2) the rest of the txid the keyset stopped in (range part)
              (SELECT q.id, q.txid, q.event_id, q.attempts FROM c.ready q
               WHERE q.subscription = p_sub AND q.txid = rt AND q.id > ri AND rt < pg_snapshot_xmax(cur)
                 AND pg_visible_in_snapshot(q.txid, cur)
               ORDER BY q.id LIMIT p_n)
              UNION ALL
              -- (3) txids after it, up to the window end
              (SELECT q.id, q.txid, q.event_id, q.attempts FROM c.ready q
               WHERE q.subscription = p_sub AND q.txid > rt AND q.txid < pg_snapshot_xmax(cur)
                 AND pg_visible_in_snapshot(q.txid, cur)
               ORDER BY q.txid, q.id LIMIT p_n)
              LIMIT p_n) r;
        k := coalesce(array_length(ids, 1), 0);
        EXIT WHEN k > 0;
        EXIT WHEN attempt = 2;
        -- window exhausted: the next window starts where this one ended
        prev := cur; cur := pg_current_snapshot(); lt := '0'; li := 0;
    END LOOP;
    IF k = 0 THEN RETURN; END IF;
    INSERT INTO c.batches (sub, prev_snap, cur_snap, from_txid, from_id, last_txid, last_id, n, lease_until, lease_id)
    VALUES (p_sub, prev, cur, lt, li, txs[k], ids[k], k, now() + p_lease * interval '1 second',
            pg_current_xact_id()::text::int8)
    RETURNING c.batches.seq INTO seq;
    RETURN QUERY SELECT seq, u.i, u.t, u.e, u.a FROM unnest(ids, txs, evs, att) AS u(i, t, e, a);
END $f$;
-- The partitions have no statistics (no autovacuum, TRUNCATEd every few seconds): without this
-- the planner took the window range for a dozen rows and chose bitmap scan + top-N sort over the
-- whole remaining window (18 ms for 500 of 100k rows instead of 0.2 ms).
ALTER FUNCTION c.claim(text, int, float8) SET enable_bitmapscan = off;
ALTER FUNCTION c.claim(text, int, float8) SET enable_sort = off;
-- ... and the disabled-path cost (1e10) would trigger JIT compilation (~200 ms) on every call.
ALTER FUNCTION c.claim(text, int, float8) SET jit = off;

-- rotation for (c): switch the insert slot every p_period; truncate a non-current slot
-- once no subscription (latest window start, or any open batch) can still need its rows.
CREATE FUNCTION c.rotate(p_period interval) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r c.rot; s int; busy bool; res text := ''; nonempty bool;
BEGIN
    SELECT * INTO r FROM c.rot FOR UPDATE;
    FOR s IN 0..2 LOOP
        CONTINUE WHEN s = r.cur;
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM c.ready_%s)', s) INTO nonempty;
        CONTINUE WHEN NOT nonempty;
        BEGIN
            EXECUTE format('LOCK TABLE c.ready_%s IN ACCESS EXCLUSIVE MODE NOWAIT', s);
        EXCEPTION WHEN lock_not_available THEN res := res || format('slot %s locked; ', s); CONTINUE;
        END;
        -- any row not visible in some needed window start?  index probes only: txid >= xmax
        -- (a range that is empty when consumed) and txid = ANY(xip).
        EXECUTE format($q$
            SELECT EXISTS (
              SELECT 1 FROM (SELECT b.sub, b.prev_snap FROM c.batches b
                              WHERE b.seq IN (SELECT max(seq) FROM c.batches GROUP BY sub)
                             UNION ALL
                             SELECT b.sub, b.prev_snap FROM c.batches b WHERE NOT b.done) w
              WHERE EXISTS (SELECT 1 FROM c.ready_%1$s q WHERE q.subscription = w.sub
                              AND q.txid >= pg_snapshot_xmax(w.prev_snap))
                 OR EXISTS (SELECT 1 FROM c.ready_%1$s q WHERE q.subscription = w.sub
                              AND q.txid = ANY (ARRAY(SELECT pg_snapshot_xip(w.prev_snap)))))$q$, s)
          INTO busy;
        IF busy THEN res := res || format('slot %s unconsumed; ', s); CONTINUE; END IF;
        EXECUTE format('TRUNCATE c.ready_%s', s);
        res := res || format('truncated %s; ', s);
    END LOOP;
    IF r.switched_at + p_period <= now() THEN
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM c.ready_%s)', (r.cur + 1) % 3) INTO nonempty;
        IF NOT nonempty THEN
            UPDATE c.rot SET cur = (r.cur + 1) % 3, switched_at = now();
            res := res || format('switched to %s', (r.cur + 1) % 3);
        ELSE
            res := res || 'switch blocked';
        END IF;
    END IF;
    RETURN res;
END $f$;

-- (d) today's state-machine claim on 3 rotating partitions, TRUNCATE when drained
CREATE SEQUENCE d.del_id CACHE 100;
CREATE TABLE d.deliveries (
    slot smallint NOT NULL,
    id bigint NOT NULL DEFAULT nextval('d.del_id'),
    event_id uuid NOT NULL, subscription text NOT NULL,
    state smallint NOT NULL DEFAULT 0, priority smallint NOT NULL DEFAULT 0,
    run_at timestamptz NOT NULL DEFAULT now(), attempts integer NOT NULL DEFAULT 0,
    solo boolean NOT NULL DEFAULT false, key text, last_error text,
    created_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz, lease_id bigint,
    PRIMARY KEY (slot, id)
) PARTITION BY LIST (slot);
CREATE TABLE d.deliveries_0 PARTITION OF d.deliveries FOR VALUES IN (0) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0, vacuum_truncate = false);
CREATE TABLE d.deliveries_1 PARTITION OF d.deliveries FOR VALUES IN (1) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0, vacuum_truncate = false);
CREATE TABLE d.deliveries_2 PARTITION OF d.deliveries FOR VALUES IN (2) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0, vacuum_truncate = false);
CREATE INDEX d_due ON d.deliveries (subscription, solo, priority, run_at, id) WHERE state < 2;
CREATE TABLE d.rot (one bool PRIMARY KEY DEFAULT true, cur smallint NOT NULL, switched_at timestamptz NOT NULL);
INSERT INTO d.rot VALUES (true, 0, now());

CREATE FUNCTION d.rotate(p_period interval) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r d.rot; s int; busy bool; res text := ''; nonempty bool;
BEGIN
    SELECT * INTO r FROM d.rot FOR UPDATE;
    FOR s IN 0..2 LOOP
        CONTINUE WHEN s = r.cur;
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM d.deliveries_%s)', s) INTO nonempty;
        CONTINUE WHEN NOT nonempty;
        BEGIN
            EXECUTE format('LOCK TABLE d.deliveries_%s IN ACCESS EXCLUSIVE MODE NOWAIT', s);
        EXCEPTION WHEN lock_not_available THEN res := res || format('slot %s locked; ', s); CONTINUE;
        END;
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM d.deliveries_%s WHERE state < 2)', s) INTO busy;
        IF busy THEN res := res || format('slot %s undrained; ', s); CONTINUE; END IF;
        EXECUTE format('TRUNCATE d.deliveries_%s', s);
        res := res || format('truncated %s; ', s);
    END LOOP;
    IF r.switched_at + p_period <= now() THEN
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM d.deliveries_%s)', (r.cur + 1) % 3) INTO nonempty;
        IF NOT nonempty THEN
            UPDATE d.rot SET cur = (r.cur + 1) % 3, switched_at = now();
            res := res || format('switched to %s', (r.cur + 1) % 3);
        ELSE res := res || 'switch blocked'; END IF;
    END IF;
    RETURN res;
END $f$;
