-- Migration 0015: every writer names the slot of the event it refers to (migration 0014).
-- The SQL publish function writes the event in the events ring's current slot and gives its
-- deliveries that slot; claim_log returns each log row's event_slot, so that the claim
-- fetches the event from its partition alone; log_evacuate carries it into
-- pgbus.deliveries. The columns' default becomes the ring's current slot instead of 0.

-- The SQL publish function (0011's), writing the slot.
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
        INSERT INTO pgbus.delivery_log (slot, subscription, priority, event_id, key, event_slot)
        SELECT (SELECT r.slot FROM pgbus.log_ring r ORDER BY r.generation DESC LIMIT 1),
               s.name, v_priority, v_id, publish.key, v_slot
        FROM pgbus.subscriptions s
        WHERE publish.type LIKE ANY (s.like_patterns)
          AND NOT (s.ordered AND publish.key IS NOT NULL);
        -- Ordered subscriptions' keyed deliveries: pgbus.deliveries (claim_ordered.sql).
        INSERT INTO pgbus.deliveries (event_id, subscription, priority, key, ordered, seq,
                                      event_slot)
        SELECT v_id, s.name, v_priority, publish.key, true, nextval('pgbus.delivery_seq'), v_slot
        FROM pgbus.subscriptions s
        WHERE publish.type LIKE ANY (s.like_patterns)
          AND s.ordered AND publish.key IS NOT NULL;
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

-- claim_log (0005's), returning each row's event_slot (a new result column: dropped and made
-- again, with its settings).
DROP FUNCTION pgbus.claim_log(text, integer, float8, integer, pg_snapshot);
CREATE FUNCTION pgbus.claim_log(p_sub text, p_n integer, p_lease float8, p_owner integer,
                                p_snap pg_snapshot)
RETURNS TABLE (claim_id bigint, lease_id bigint, priority smallint, id bigint, event_id uuid,
               key text, txid xid8, event_slot smallint)
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
    k integer;
    want integer := p_n;
    first integer;
    v_claim bigint;
    v_lease bigint := pg_current_xact_id()::text::bigint;
BEGIN
    IF want <= 0 OR NOT pg_try_advisory_xact_lock(hashtextextended('pgbus.claim_log:' || p_sub, 0)) THEN
        RETURN;
    END IF;
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
                   array_agg(r.event_slot ORDER BY r.txid, r.id)
              INTO ids, txs, evs, keys, slots
            FROM ((SELECT q.id, q.txid, q.event_id, q.key, q.event_slot
                   FROM unnest(late) AS x(t)
                   CROSS JOIN LATERAL (
                       SELECT q.id, q.txid, q.event_id, q.key, q.event_slot FROM pgbus.delivery_log q
                       WHERE q.subscription = p_sub AND q.priority = v_lane AND q.txid = x.t
                         AND q.id > CASE WHEN x.t = lt THEN li ELSE 0 END
                       ORDER BY q.id LIMIT want) q
                   LIMIT want)
                  UNION ALL
                  -- The rest of the txid the position stopped in.
                  (SELECT q.id, q.txid, q.event_id, q.key, q.event_slot FROM pgbus.delivery_log q
                   WHERE q.subscription = p_sub AND q.priority = v_lane
                     AND q.txid = rt AND q.id > ri AND rt < pg_snapshot_xmax(cur)
                     AND pg_visible_in_snapshot(q.txid, cur)
                   ORDER BY q.id LIMIT want)
                  UNION ALL
                  -- Later txids up to the window's end: one lower bound on txid.
                  (SELECT q.id, q.txid, q.event_id, q.key, q.event_slot FROM pgbus.delivery_log q
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
        INSERT INTO pgbus.claims AS x (subscription, priority, prev_snap, cur_snap, from_txid,
                                       from_id, last_txid, last_id, n, exhausted, lease_id,
                                       lease_until, owner)
        VALUES (p_sub, v_lane, prev, cur, lt, li, txs[k], ids[k], k, k < want, v_lease,
                now() + p_lease * interval '1 second', p_owner)
        RETURNING x.id INTO v_claim;
        RETURN QUERY SELECT v_claim, v_lease, v_lane, u.i, u.e, u.k, u.t, u.s
                     FROM unnest(ids, evs, keys, txs, slots) AS u(i, e, k, t, s);
        want := want - k;
    END LOOP;
END
$f$;
ALTER FUNCTION pgbus.claim_log(text, integer, float8, integer, pg_snapshot) SET enable_bitmapscan = off;
ALTER FUNCTION pgbus.claim_log(text, integer, float8, integer, pg_snapshot) SET enable_sort = off;
ALTER FUNCTION pgbus.claim_log(text, integer, float8, integer, pg_snapshot) SET jit = off;

-- log_evacuate (0013's), carrying the slot.
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
                                      attempts, key, event_slot)
        OVERRIDING SYSTEM VALUE
        SELECT q.id, q.event_id, q.subscription, 0 /* pending */, q.priority, now(), 0, q.key,
               q.event_slot
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

-- A row written by hand without a slot refers to the current slot's event (as one written
-- in the same statement as its event does); pgbus's own writers always name it.
ALTER TABLE pgbus.deliveries ALTER COLUMN event_slot SET DEFAULT pgbus.events_slot();
ALTER TABLE pgbus.delivery_log ALTER COLUMN event_slot SET DEFAULT pgbus.events_slot();
