-- pgbus schema, version 19: the delivery log holds packs.
--
-- Until now the log held one row per delivery, with its index entry: a publish of 1,000
-- events to one subscription wrote 1,000 log rows and 1,000 entries of delivery_log_pos,
-- about half of the statement's time and of its WAL (measured: 450 KB of WAL per 1,000
-- events). From this version a row of the log is a pack: the deliveries of one lane
-- (subscription, priority) written by one statement of one transaction, up to 256, as
-- arrays in publish order (event_ids, keys, seqs; keys and seqs are null when all of theirs
-- are). The table is pgbus.log_packs (the old pgbus.delivery_log, renamed; its partitions and
-- its index keep their names), and pgbus.delivery_log is now a view of it with the old
-- columns, one row per delivery, for everything that reads deliveries rather than claims
-- them.
--
-- Ids. A delivery keeps an id of its own, as before: a pack whose id is n holds the ids
-- n .. n + cardinality(event_ids) - 1, and the ids of pgbus.deliveries and of the packs come
-- from one new sequence, pgbus.delivery_ids, that steps by 256, so that no two packs, and no
-- pack and row of pgbus.deliveries, share an id. The sequence starts past every id given so
-- far; the identity of pgbus.deliveries.id (and its sequence, with whatever values sessions
-- had cached of it) is dropped, the new sequence is its default. A lane's order is (txid, id)
-- as before, the claims' positions are delivery ids as before.
--
-- Rows in the log when this version is applied become packs of one delivery, under their ids.

-- Ids: one sequence, in steps of a pack's size.
CREATE SEQUENCE pgbus.delivery_ids AS bigint INCREMENT BY 256 CACHE 32;
DO $$
DECLARE
    v bigint;
BEGIN
    EXECUTE format('SELECT last_value FROM %s', pg_get_serial_sequence('pgbus.deliveries', 'id'))
        INTO v;
    v := greatest(v, (SELECT max(d.id) FROM pgbus.deliveries d),
                  (SELECT max(q.id) FROM pgbus.delivery_log q), 0);
    PERFORM setval('pgbus.delivery_ids', (v / 256 + 1) * 256, false);
END
$$;
ALTER TABLE pgbus.delivery_log ALTER COLUMN id SET DEFAULT nextval('pgbus.delivery_ids');
ALTER TABLE pgbus.deliveries ALTER COLUMN id DROP IDENTITY;
ALTER TABLE pgbus.deliveries ALTER COLUMN id SET DEFAULT nextval('pgbus.delivery_ids');
ALTER SEQUENCE pgbus.delivery_ids OWNED BY pgbus.deliveries.id;

-- The packs: the log's table, renamed, its rows made packs of one.
ALTER TABLE pgbus.delivery_log RENAME TO log_packs;
ALTER TABLE pgbus.log_packs ADD COLUMN event_ids uuid[], ADD COLUMN keys text[],
                            ADD COLUMN seqs bigint[];
UPDATE pgbus.log_packs
SET event_ids = ARRAY[event_id],
    keys = CASE WHEN key IS NOT NULL THEN ARRAY[key] END,
    seqs = CASE WHEN seq IS NOT NULL THEN ARRAY[seq] END;
ALTER TABLE pgbus.log_packs ALTER COLUMN event_ids SET NOT NULL,
                            DROP COLUMN event_id, DROP COLUMN key, DROP COLUMN seq;
-- A pack of 256 deliveries is about 4.2 KB: kept in its row, neither compressed nor moved to
-- the TOAST table (which the default target of 2 KB would do, at a cost per pack).
ALTER TABLE pgbus.delivery_log_0 SET (toast_tuple_target = 8160);
ALTER TABLE pgbus.delivery_log_1 SET (toast_tuple_target = 8160);
ALTER TABLE pgbus.delivery_log_2 SET (toast_tuple_target = 8160);
ALTER TABLE pgbus.delivery_log_3 SET (toast_tuple_target = 8160);

-- One row per delivery, with the old table's columns.
CREATE VIEW pgbus.delivery_log AS
    SELECT q.slot, q.txid, q.id + u.o - 1 AS id, q.subscription, q.priority, u.event_id, u.key,
           q.event_slot, u.seq
    FROM pgbus.log_packs q
    CROSS JOIN LATERAL unnest(q.event_ids, q.keys, q.seqs) WITH ORDINALITY AS u(event_id, key, seq, o);

-- A batch's rows (0009's), bounded by txid too, so that the index bounds the scan (the ids
-- of the view are computed).
CREATE OR REPLACE FUNCTION pgbus.claim_rows(c pgbus.claims)
RETURNS TABLE (id bigint, event_id uuid, key text)
LANGUAGE sql STABLE AS $f$
    SELECT q.id, q.event_id, q.key FROM pgbus.delivery_log q
    WHERE q.subscription = c.subscription AND q.priority = c.priority
      AND q.txid >= c.from_txid AND q.txid <= c.last_txid
      AND (q.txid, q.id) > (c.from_txid, c.from_id) AND (q.txid, q.id) <= (c.last_txid, c.last_id)
      AND pg_visible_in_snapshot(q.txid, c.cur_snap)
      AND NOT pg_visible_in_snapshot(q.txid, c.prev_snap)
$f$;

-- The SQL publish function (0017's): a pack of one per subscription.
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
    -- The events ring's current slot, read once: the event and its deliveries name it.
    v_slot smallint := (SELECT r.slot FROM pgbus.events_ring r ORDER BY r.generation DESC LIMIT 1);
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
                                   priority, slot)
    VALUES (v_id, publish.type, publish.source, publish.subject, publish.key, publish.data,
            v_headers, publish.dedupe_key, v_priority, v_slot);

    IF publish.deliver_at IS NULL OR publish.deliver_at <= now() THEN
        -- Ordered subscriptions' keyed deliveries too, with their publish order (seq), in the
        -- lane of priority 0: within a key, publish order wins over priority.
        INSERT INTO pgbus.log_packs (slot, subscription, priority, event_ids, keys, event_slot,
                                     seqs)
        SELECT (SELECT r.slot FROM pgbus.log_ring r ORDER BY r.generation DESC LIMIT 1),
               s.name, CASE WHEN s.ordered AND publish.key IS NOT NULL THEN 0 ELSE v_priority END,
               ARRAY[v_id], CASE WHEN publish.key IS NOT NULL THEN ARRAY[publish.key] END, v_slot,
               CASE WHEN s.ordered AND publish.key IS NOT NULL
                    THEN ARRAY[nextval('pgbus.delivery_seq')] END
        FROM pgbus.subscriptions s
        WHERE publish.type LIKE ANY (s.like_patterns);
    ELSE
        INSERT INTO pgbus.deliveries (event_id, subscription, priority, run_at, key, ordered,
                                      seq, event_slot)
        SELECT v_id, s.name, v_priority, publish.deliver_at, publish.key,
               s.ordered AND publish.key IS NOT NULL,
               CASE WHEN s.ordered AND publish.key IS NOT NULL
                    THEN nextval('pgbus.delivery_seq') END, v_slot
        FROM pgbus.subscriptions s
        WHERE publish.type LIKE ANY (s.like_patterns);
    END IF;
    -- Delivered at commit; identical notifications of one transaction are sent once.
    PERFORM pg_notify('pgbus', '');
    RETURN v_id;
END
$f$;

-- events_rotate (0016's): event slots are renamed in the packs.
CREATE OR REPLACE FUNCTION pgbus.events_rotate(p_retention interval, p_lock_timeout interval,
                                    p_turn boolean)
RETURNS TABLE (truncated smallint[], moved bigint)
LANGUAGE plpgsql AS $f$
DECLARE
    r pgbus.events_ring;
    s smallint;
    v_closed timestamptz;
    busy boolean;
    k bigint;
    v_truncated smallint[] := '{}';
    v_moved bigint := 0;
BEGIN
    SELECT * INTO r FROM pgbus.events_ring x ORDER BY x.generation DESC LIMIT 1;
    PERFORM set_config('lock_timeout', (extract(epoch FROM p_lock_timeout) * 1000)::int || 'ms', true);
    FOR s IN SELECT g::smallint FROM generate_series(0, 7) g WHERE g <> r.slot LOOP
        -- When the slot stopped taking events: the opening of the generation after its last.
        v_closed := (SELECT n.opened_at FROM pgbus.events_ring n
                     WHERE n.generation = (SELECT max(o.generation) + 1 FROM pgbus.events_ring o
                                           WHERE o.slot = s));
        CONTINUE WHEN v_closed IS NULL OR v_closed >= now() - p_retention;
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM pgbus.events_%s)', s) INTO busy;
        CONTINUE WHEN NOT busy;
        BEGIN
            EXECUTE format('LOCK TABLE pgbus.events_%s IN ACCESS EXCLUSIVE MODE', s);
            INSERT INTO pgbus.events (id, type, source, subject, key, data, headers, dedupe_key,
                                      priority, created_at, slot)
            SELECT e.id, e.type, e.source, e.subject, e.key, e.data, e.headers, e.dedupe_key,
                   e.priority, e.created_at, r.slot
            FROM pgbus.events e
            WHERE e.slot = s
              AND e.id IN (SELECT d.event_id FROM pgbus.deliveries d WHERE d.event_slot = s
                           UNION ALL
                           -- Read or in an open batch: one lane scan each, not per event.
                           SELECT l.event_id FROM pgbus.log_unfinished() l)
            ON CONFLICT DO NOTHING;
            GET DIAGNOSTICS k = ROW_COUNT;
            UPDATE pgbus.deliveries d SET event_slot = r.slot WHERE d.event_slot = s;
            UPDATE pgbus.log_packs q SET event_slot = r.slot WHERE q.event_slot = s;
            EXECUTE format('TRUNCATE pgbus.events_%s', s);
            v_truncated := v_truncated || s;
            v_moved := v_moved + k;
        EXCEPTION WHEN lock_not_available THEN
            NULL;
        END;
    END LOOP;
    IF p_turn AND r.opened_at < now() - p_retention / 6 THEN
        s := (r.slot + 1) % 8;
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM pgbus.events_%s)', s) INTO busy;
        IF NOT busy THEN
            INSERT INTO pgbus.events_ring (generation, slot) VALUES (r.generation + 1, s)
            ON CONFLICT DO NOTHING;
        END IF;
    END IF;
    -- Each slot's last generation is among the newest eight; the rest is history.
    DELETE FROM pgbus.events_ring x WHERE x.generation < r.generation - 64;
    RETURN QUERY SELECT v_truncated, v_moved;
END
$f$;

-- claim_log (0017's): reads packs, returns deliveries.
CREATE OR REPLACE FUNCTION pgbus.claim_log(p_sub text, p_n integer, p_lease float8, p_owner integer,
                                p_snap pg_snapshot)
RETURNS TABLE (claim_id bigint, lease_id bigint, priority smallint, id bigint, event_id uuid,
               key text, txid xid8, event_slot smallint, seq bigint)
LANGUAGE plpgsql AS $f$
DECLARE
    v_lane smallint;
    c pgbus.claims;
    prev pg_snapshot;
    cur pg_snapshot;
    lt xid8;
    li bigint;
    rt xid8;
    ri bigint;
    late xid8[];
    ids bigint[];
    txs xid8[];
    evs uuid[];
    slots smallint[];
    keys text[];
    seqs bigint[];
    v_ordered boolean;
    v_block boolean;
    run_keys text[];
    n_run integer;
    txs_last xid8;
    ids_last bigint;
    k integer;
    want integer := p_n;
    first integer;
    v_claim bigint;
    v_lease bigint := pg_current_xact_id()::text::bigint;
BEGIN
    IF want <= 0 OR NOT pg_try_advisory_xact_lock(hashtextextended('pgbus.claim_log:' || p_sub, 0)) THEN
        RETURN;
    END IF;
    SELECT s.ordered, s.dead_blocks_key INTO v_ordered, v_block
    FROM pgbus.subscriptions s WHERE s.name = p_sub;
    LOOP
        EXIT WHEN want = 0;
        -- The next lane: a skip scan of the log's index, one probe per lane (a statement of
        -- this function, so its plan is cached, unlike a call of pgbus.log_lanes).
        IF v_lane IS NULL THEN
            v_lane := (SELECT q.priority FROM pgbus.log_packs q WHERE q.subscription = p_sub
                       ORDER BY q.priority LIMIT 1);
        ELSE
            v_lane := (SELECT q.priority FROM pgbus.log_packs q
                       WHERE q.subscription = p_sub AND q.priority > v_lane
                       ORDER BY q.priority LIMIT 1);
        END IF;
        EXIT WHEN v_lane IS NULL;
        SELECT * INTO c FROM pgbus.claims x
        WHERE x.subscription = p_sub AND x.priority = v_lane ORDER BY x.id DESC LIMIT 1;
        IF FOUND THEN
            -- A cursor newer than the caller's snapshot (another claim committed since it
            -- was taken): leave the lane to the next claim.
            CONTINUE WHEN pg_snapshot_xmax(p_snap) < pg_snapshot_xmax(c.cur_snap)
                OR EXISTS (SELECT 1 FROM pg_snapshot_xip(p_snap) x
                           WHERE pg_visible_in_snapshot(x, c.cur_snap));
            IF c.exhausted THEN
                -- Its window was read to its end: the next one starts where it ended.
                prev := c.cur_snap; cur := p_snap; lt := '0'; li := 0; first := 2;
            ELSE
                -- Go on in its window first, then (attempt 2) in the next one.
                prev := c.prev_snap; cur := c.cur_snap; lt := c.last_txid; li := c.last_id;
                first := 1;
            END IF;
        ELSE
            -- A lane never read: its first window is everything committed so far.
            prev := '1:1:'::pg_snapshot; cur := p_snap; lt := '0'; li := 0; first := 2;
        END IF;
        FOR attempt IN first..2 LOOP
            -- Transactions in progress at the window's start and committed at its end:
            -- read by exact txid (a row comparison here makes the scan walk the lane).
            late := ARRAY(SELECT x FROM pg_snapshot_xip(prev) x
                          WHERE pg_visible_in_snapshot(x, cur) AND x >= lt ORDER BY x);
            IF lt < pg_snapshot_xmax(prev) THEN
                rt := pg_snapshot_xmax(prev); ri := -1;
            ELSE
                rt := lt; ri := li;
            END IF;
            -- Packs first (at most `want`), in the lane's order, then their deliveries past
            -- the position, in the same order, lazily: the outer LIMIT stops the unnesting
            -- once `want` deliveries are taken. A pack holds the ids [id, id + 255], so the
            -- pack that holds the position's id has an id above it minus 256; a pack whose
            -- last id is not past the position is left out, so that every pack taken holds
            -- one delivery to claim at least (else the position's own pack could fill the
            -- LIMIT, the claim find nothing, and the window be left with rows unread).
            SELECT array_agg(r.id ORDER BY r.txid, r.id), array_agg(r.txid ORDER BY r.txid, r.id),
                   array_agg(r.event_id ORDER BY r.txid, r.id), array_agg(r.key ORDER BY r.txid, r.id),
                   array_agg(r.event_slot ORDER BY r.txid, r.id),
                   array_agg(r.seq ORDER BY r.txid, r.id)
              INTO ids, txs, evs, keys, slots, seqs
            FROM (SELECT p.id + u.o - 1 AS id, p.txid, u.e AS event_id, u.k AS key, p.event_slot,
                         u.s AS seq
                  FROM ((SELECT q.* FROM unnest(late) AS x(t)
                         CROSS JOIN LATERAL (
                             SELECT q.id, q.txid, q.event_slot, q.event_ids, q.keys, q.seqs,
                                    CASE WHEN x.t = lt THEN li ELSE 0 END AS after
                             FROM pgbus.log_packs q
                             WHERE q.subscription = p_sub AND q.priority = v_lane AND q.txid = x.t
                               AND q.id > CASE WHEN x.t = lt THEN li ELSE 0 END - 256
                               AND q.id + cardinality(q.event_ids) - 1
                                   > CASE WHEN x.t = lt THEN li ELSE 0 END
                             ORDER BY q.id LIMIT want) q
                         LIMIT want)
                        UNION ALL
                        -- The rest of the txid the position stopped in.
                        (SELECT q.id, q.txid, q.event_slot, q.event_ids, q.keys, q.seqs, ri
                         FROM pgbus.log_packs q
                         WHERE q.subscription = p_sub AND q.priority = v_lane
                           AND q.txid = rt AND q.id > ri - 256
                           AND q.id + cardinality(q.event_ids) - 1 > ri
                           AND rt < pg_snapshot_xmax(cur)
                           AND pg_visible_in_snapshot(q.txid, cur)
                         ORDER BY q.id LIMIT want)
                        UNION ALL
                        -- Later txids up to the window's end: one lower bound on txid.
                        (SELECT q.id, q.txid, q.event_slot, q.event_ids, q.keys, q.seqs, -1::bigint
                         FROM pgbus.log_packs q
                         WHERE q.subscription = p_sub AND q.priority = v_lane
                           AND q.txid > rt AND q.txid < pg_snapshot_xmax(cur)
                           AND pg_visible_in_snapshot(q.txid, cur)
                         ORDER BY q.txid, q.id LIMIT want)
                        LIMIT want) p
                  CROSS JOIN LATERAL unnest(p.event_ids, p.keys, p.seqs) WITH ORDINALITY AS u(e, k, s, o)
                  WHERE p.id + u.o - 1 > p.after
                  LIMIT want) r;
            k := coalesce(cardinality(ids), 0);
            EXIT WHEN k > 0 OR attempt = 2;
            -- This window is read to its end: the next one runs to the caller's snapshot.
            prev := cur; cur := p_snap; lt := '0'; li := 0;
        END LOOP;
        CONTINUE WHEN k = 0;
        txs_last := txs[k];
        ids_last := ids[k];
        n_run := k;
        run_keys := NULL;
        IF v_ordered AND EXISTS (SELECT 1 FROM unnest(seqs) x WHERE x IS NOT NULL) THEN
            -- An ordered subscription's keyed rows (seq set) run only as the first of their
            -- key: not when a batch still open holds the key (its claims row lists it in
            -- `keys`), nor when the key has an unfinished ordered delivery in
            -- pgbus.deliveries (a retry, a dead one under the blocking policy, a taken-back
            -- or parked one), nor behind an older row of the key in this window. The others
            -- are parked: written to pgbus.deliveries under their id, pending, with their
            -- seq, where claim_ordered.sql takes each key's oldest in turn. One statement,
            -- one snapshot: a batch closed since is seen with the rows it wrote.
            WITH w AS (
                SELECT u.* FROM unnest(ids, evs, keys, txs, slots, seqs)
                    WITH ORDINALITY AS u(i, e, k, t, s, q, o)
            ),
            held AS (
                SELECT h.k COLLATE "C" AS k
                FROM pgbus.claims oc CROSS JOIN LATERAL unnest(oc.keys) AS h(k)
                WHERE oc.subscription = p_sub AND oc.closed_at IS NULL
                UNION
                SELECT d.key COLLATE "C" FROM pgbus.deliveries d
                WHERE d.subscription = p_sub AND d.ordered AND d.state <> 2
                  AND (d.key COLLATE "C") = ANY (ARRAY(SELECT w.k FROM w WHERE w.q IS NOT NULL))
                  AND (v_block OR d.state <> 3 /* dead */)
            ),
            firsts AS (
                SELECT w.k COLLATE "C" AS k, min(w.q) AS q FROM w WHERE w.q IS NOT NULL GROUP BY 1
            ),
            judged AS (
                SELECT w.*, w.q IS NULL OR (w.q = f.q AND h.k IS NULL) AS runs
                FROM w
                LEFT JOIN firsts f ON f.k = (w.k COLLATE "C")
                LEFT JOIN held h ON h.k = (w.k COLLATE "C")
            ),
            parked AS (
                INSERT INTO pgbus.deliveries (id, event_id, subscription, state, priority, run_at,
                                              attempts, key, event_slot, ordered, seq)
                OVERRIDING SYSTEM VALUE
                SELECT j.i, j.e, p_sub, 0 /* pending */, v_lane, now(), 0, j.k, j.s, true, j.q
                FROM judged j WHERE NOT j.runs
                ON CONFLICT ON CONSTRAINT deliveries_pkey DO NOTHING
            )
            SELECT array_agg(j.i ORDER BY j.o) FILTER (WHERE j.runs),
                   array_agg(j.e ORDER BY j.o) FILTER (WHERE j.runs),
                   array_agg(j.k ORDER BY j.o) FILTER (WHERE j.runs),
                   array_agg(j.t ORDER BY j.o) FILTER (WHERE j.runs),
                   array_agg(j.s ORDER BY j.o) FILTER (WHERE j.runs),
                   array_agg(j.q ORDER BY j.o) FILTER (WHERE j.runs),
                   array_agg(j.k) FILTER (WHERE j.runs AND j.q IS NOT NULL),
                   count(*) FILTER (WHERE j.runs)
              INTO ids, evs, keys, txs, slots, seqs, run_keys, n_run
            FROM judged j;
        END IF;
        -- The window's end is its last row, run or parked. A window whose rows were all
        -- parked is a closed batch: only a cursor.
        INSERT INTO pgbus.claims AS x (subscription, priority, prev_snap, cur_snap, from_txid,
                                       from_id, last_txid, last_id, n, exhausted, lease_id,
                                       lease_until, owner, keys, closed_at)
        VALUES (p_sub, v_lane, prev, cur, lt, li, txs_last, ids_last, n_run, k < want, v_lease,
                now() + p_lease * interval '1 second', p_owner, run_keys,
                CASE WHEN n_run = 0 THEN now() END)
        RETURNING x.id INTO v_claim;
        RETURN QUERY SELECT v_claim, v_lease, v_lane, u.i, u.e, u.k, u.t, u.s, u.q
                     FROM unnest(ids, evs, keys, txs, slots, seqs) AS u(i, e, k, t, s, q);
        want := want - k;
    END LOOP;
END
$f$;ALTER FUNCTION pgbus.claim_log(text, integer, float8, integer, pg_snapshot) SET enable_bitmapscan = off;
ALTER FUNCTION pgbus.claim_log(text, integer, float8, integer, pg_snapshot) SET enable_sort = off;
ALTER FUNCTION pgbus.claim_log(text, integer, float8, integer, pg_snapshot) SET jit = off;
ALTER FUNCTION pgbus.claim_log(text, integer, float8, integer, pg_snapshot)
    SET plan_cache_mode = force_generic_plan;
