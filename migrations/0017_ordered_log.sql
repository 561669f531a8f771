-- pgbus schema, version 17: ordered subscriptions through the delivery log.
--
-- Until now an ordered subscription's keyed deliveries skipped the log: publish wrote them
-- to pgbus.deliveries, and each claim updated one row per delivery (measured: most of an
-- ordered claim's time), in a table that depends on VACUUM. From this version they go to the
-- log like every other delivery, carrying their publish order (seq, from
-- pgbus.delivery_seq as in migration 0010). The log's claim (pgbus.claim_log) runs a keyed
-- row of an ordered subscription only when it is the first of its key: no batch still open
-- holds the key (pgbus.claims.keys lists the keys of a batch's ordered rows), no unfinished
-- ordered delivery of the key waits in pgbus.deliveries, no older row of the key is in the
-- same window (all of an ordered subscription's keyed rows are in the lane of priority 0, so
-- that no lane of another priority runs a key's later row first). Every other keyed row of
-- the window is parked: written to pgbus.deliveries
-- under its id, pending, ordered, with its seq, where claim_ordered.sql takes each key's
-- oldest in turn (and leaves alone the keys open batches hold). A key's deliveries so never
-- run two at a time, and each runs after those published before it.
--
-- Rows already in pgbus.deliveries when this version is applied are claimed as before; a
-- new log row of their key is parked behind them.

ALTER TABLE pgbus.delivery_log ADD COLUMN seq bigint;
ALTER TABLE pgbus.claims ADD COLUMN keys text[];

-- The SQL publish function (0015's): an ordered subscription's keyed deliveries that are due
-- now go to the log, with their seq.
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
        INSERT INTO pgbus.delivery_log (slot, subscription, priority, event_id, key, event_slot,
                                        seq)
        SELECT (SELECT r.slot FROM pgbus.log_ring r ORDER BY r.generation DESC LIMIT 1),
               s.name, CASE WHEN s.ordered AND publish.key IS NOT NULL THEN 0 ELSE v_priority END,
               v_id, publish.key, v_slot,
               CASE WHEN s.ordered AND publish.key IS NOT NULL
                    THEN nextval('pgbus.delivery_seq') END
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

-- claim_log (0015's), holding the keys of ordered subscriptions (see the header) and
-- returning each row's seq. A new result column: dropped and made again, with its settings.
DROP FUNCTION pgbus.claim_log(text, integer, float8, integer, pg_snapshot);
CREATE FUNCTION pgbus.claim_log(p_sub text, p_n integer, p_lease float8, p_owner integer,
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
            v_lane := (SELECT q.priority FROM pgbus.delivery_log q WHERE q.subscription = p_sub
                       ORDER BY q.priority LIMIT 1);
        ELSE
            v_lane := (SELECT q.priority FROM pgbus.delivery_log q
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
            SELECT array_agg(r.id ORDER BY r.txid, r.id), array_agg(r.txid ORDER BY r.txid, r.id),
                   array_agg(r.event_id ORDER BY r.txid, r.id), array_agg(r.key ORDER BY r.txid, r.id),
                   array_agg(r.event_slot ORDER BY r.txid, r.id),
                   array_agg(r.seq ORDER BY r.txid, r.id)
              INTO ids, txs, evs, keys, slots, seqs
            FROM ((SELECT q.id, q.txid, q.event_id, q.key, q.event_slot, q.seq
                   FROM unnest(late) AS x(t)
                   CROSS JOIN LATERAL (
                       SELECT q.id, q.txid, q.event_id, q.key, q.event_slot, q.seq FROM pgbus.delivery_log q
                       WHERE q.subscription = p_sub AND q.priority = v_lane AND q.txid = x.t
                         AND q.id > CASE WHEN x.t = lt THEN li ELSE 0 END
                       ORDER BY q.id LIMIT want) q
                   LIMIT want)
                  UNION ALL
                  -- The rest of the txid the position stopped in.
                  (SELECT q.id, q.txid, q.event_id, q.key, q.event_slot, q.seq FROM pgbus.delivery_log q
                   WHERE q.subscription = p_sub AND q.priority = v_lane
                     AND q.txid = rt AND q.id > ri AND rt < pg_snapshot_xmax(cur)
                     AND pg_visible_in_snapshot(q.txid, cur)
                   ORDER BY q.id LIMIT want)
                  UNION ALL
                  -- Later txids up to the window's end: one lower bound on txid.
                  (SELECT q.id, q.txid, q.event_id, q.key, q.event_slot, q.seq FROM pgbus.delivery_log q
                   WHERE q.subscription = p_sub AND q.priority = v_lane
                     AND q.txid > rt AND q.txid < pg_snapshot_xmax(cur)
                     AND pg_visible_in_snapshot(q.txid, cur)
                   ORDER BY q.txid, q.id LIMIT want)
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
$f$;
ALTER FUNCTION pgbus.claim_log(text, integer, float8, integer, pg_snapshot) SET enable_bitmapscan = off;
ALTER FUNCTION pgbus.claim_log(text, integer, float8, integer, pg_snapshot) SET enable_sort = off;
ALTER FUNCTION pgbus.claim_log(text, integer, float8, integer, pg_snapshot) SET jit = off;

-- log_evacuate (0015's): a moved row of an ordered subscription stays ordered, with its seq.
CREATE OR REPLACE FUNCTION pgbus.log_evacuate(p_period interval, p_idle interval) RETURNS bigint
LANGUAGE plpgsql AS $f$
DECLARE
    r pgbus.log_ring;
    nxt smallint;
    busy boolean;
    l record;
    c pgbus.claims;
    found_c boolean;
    s pg_snapshot;
    k bigint;
    moved bigint := 0;
BEGIN
    SELECT * INTO r FROM pgbus.log_ring ORDER BY generation DESC LIMIT 1;
    IF r.opened_at >= now() - 2 * p_period THEN
        RETURN 0;
    END IF;
    nxt := (r.slot + 1) % 4;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM pgbus.delivery_log_%s)', nxt) INTO busy;
    IF NOT busy THEN
        RETURN 0;
    END IF;
    FOR l IN
        WITH RECURSIVE lane(s, p) AS (
            (SELECT q.subscription, q.priority FROM pgbus.delivery_log q WHERE q.slot = nxt
             ORDER BY q.subscription, q.priority LIMIT 1)
            UNION ALL
            SELECT n.subscription, n.priority FROM lane, LATERAL (
                SELECT q.subscription, q.priority FROM pgbus.delivery_log q
                WHERE q.slot = nxt AND (q.subscription, q.priority) > (lane.s, lane.p)
                ORDER BY q.subscription, q.priority LIMIT 1) n
        )
        SELECT lane.s AS sub, lane.p AS priority FROM lane
        WHERE EXISTS (SELECT 1 FROM pgbus.subscriptions x WHERE x.name = lane.s)
    LOOP
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(pgbus.claim_lock_key(l.sub));
        SELECT * INTO c FROM pgbus.claims x
        WHERE x.subscription = l.sub AND x.priority = l.priority ORDER BY x.id DESC LIMIT 1;
        found_c := FOUND;
        -- A lane that claimed lately is behind, not stuck: it reads its rows itself.
        CONTINUE WHEN found_c AND (c.closed_at IS NULL OR c.lease_until >= now() - p_idle);
        CONTINUE WHEN NOT found_c AND r.opened_at >= now() - p_idle;
        IF NOT found_c THEN
            c.prev_snap := '1:1:'; c.cur_snap := '1:1:'; c.last_txid := '0'; c.last_id := 0;
        END IF;
        s := pg_current_snapshot();
        INSERT INTO pgbus.deliveries (id, event_id, subscription, state, priority, run_at,
                                      attempts, key, event_slot, ordered, seq)
        OVERRIDING SYSTEM VALUE
        SELECT q.id, q.event_id, q.subscription, 0 /* pending */, q.priority, now(), 0, q.key,
               q.event_slot, q.seq IS NOT NULL, q.seq
        FROM pgbus.delivery_log q
        WHERE q.subscription = l.sub AND q.priority = l.priority
          AND pg_visible_in_snapshot(q.txid, s)
          AND NOT pg_visible_in_snapshot(q.txid, c.prev_snap)
          AND NOT (pg_visible_in_snapshot(q.txid, c.cur_snap)
                   AND (q.txid, q.id) <= (c.last_txid, c.last_id))
        ON CONFLICT (id) DO NOTHING;
        GET DIAGNOSTICS k = ROW_COUNT;
        moved := moved + k;
        INSERT INTO pgbus.claims (subscription, priority, prev_snap, cur_snap, from_txid, from_id,
                                  last_txid, last_id, n, exhausted, lease_id, lease_until,
                                  closed_at, claimed_at)
        VALUES (l.sub, l.priority, s, s, '0', 0, '0', 0, 0, true, 0, now(), now(),
                CASE WHEN found_c THEN c.claimed_at END);
    END LOOP;
    RETURN moved;
END
$f$;
