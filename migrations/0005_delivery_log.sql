-- pgbus schema, version 5: the delivery log.
--
-- Deliveries due at publish time are appended to pgbus.delivery_log: never updated, never
-- deleted row by row. Each row carries the publishing transaction's id (txid). Each lane,
-- a (subscription, priority) pair, reads the log in commit order through txid snapshot
-- windows: a window is the rows that are visible in its end snapshot and not in its start
-- snapshot, so a transaction that commits late is read by the first window that sees it,
-- and no dead row is ever walked. Whole slots of the log are TRUNCATEd once every lane has
-- read them, which gives their space back whatever the xmin horizon is.
--
-- One pgbus.claims row per claimed batch is both the lane's cursor (the newest row of a
-- lane) and the batch's lease (a row not yet closed). pgbus.deliveries keeps everything that
-- needs per-row state: deliver_at in the future, retries, crash suspects, batches taken back
-- from a dead dispatcher, dead letters and retained done rows. A log row that leaves a batch
-- for pgbus.deliveries keeps its id, which both tables draw from one sequence.

-- The ring: an append-only ledger; the current slot is the row with the highest generation.
CREATE TABLE pgbus.log_ring (
    generation bigint      PRIMARY KEY,
    slot       smallint    NOT NULL CHECK (slot BETWEEN 0 AND 3),
    opened_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO pgbus.log_ring (generation, slot) VALUES (0, 0);

-- Ids are handed out in runs per session; order within a lane comes from (txid, id).
ALTER TABLE pgbus.deliveries ALTER COLUMN id SET CACHE 32;

CREATE TABLE pgbus.delivery_log (
    slot         smallint NOT NULL,
    txid         xid8     NOT NULL DEFAULT pg_current_xact_id(),
    id           bigint   NOT NULL,
    subscription text     NOT NULL,
    priority     smallint NOT NULL,
    event_id     uuid     NOT NULL,
    key          text
) PARTITION BY LIST (slot);
-- Ids come from the sequence of pgbus.deliveries.id, named once here (a default that looked
-- the sequence up by name would do so for every row).
DO $$
BEGIN
    EXECUTE format('ALTER TABLE pgbus.delivery_log ALTER COLUMN id SET DEFAULT nextval(%L::regclass)',
                   pg_get_serial_sequence('pgbus.deliveries', 'id'));
END
$$;
-- Rows are never updated and slots are TRUNCATEd: nothing for autovacuum to do.
CREATE TABLE pgbus.delivery_log_0 PARTITION OF pgbus.delivery_log FOR VALUES IN (0)
    WITH (fillfactor = 100, autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE TABLE pgbus.delivery_log_1 PARTITION OF pgbus.delivery_log FOR VALUES IN (1)
    WITH (fillfactor = 100, autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE TABLE pgbus.delivery_log_2 PARTITION OF pgbus.delivery_log FOR VALUES IN (2)
    WITH (fillfactor = 100, autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE TABLE pgbus.delivery_log_3 PARTITION OF pgbus.delivery_log FOR VALUES IN (3)
    WITH (fillfactor = 100, autovacuum_enabled = false, toast.autovacuum_enabled = false);
-- The one index: a lane's position.
CREATE INDEX delivery_log_pos ON pgbus.delivery_log (subscription, priority, txid, id);

-- One row per claimed batch: the rows of the lane's log that are visible in cur_snap and
-- not in prev_snap (the window), with (txid, id) in (from, last]. A row with closed_at null
-- is a lease held by dispatcher `owner`, fenced by lease_id (the claim's transaction id).
CREATE TABLE pgbus.claims (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription text        NOT NULL,
    priority     smallint    NOT NULL,
    prev_snap    pg_snapshot NOT NULL,
    cur_snap     pg_snapshot NOT NULL,
    from_txid    xid8        NOT NULL,
    from_id      bigint      NOT NULL,
    last_txid    xid8        NOT NULL,
    last_id      bigint      NOT NULL,
    n            integer     NOT NULL,
    exhausted    boolean     NOT NULL DEFAULT false,  -- the window was read to its end
    lease_id     bigint      NOT NULL,
    lease_until  timestamptz NOT NULL,
    owner        integer,
    closed_at    timestamptz,
    taken_back   boolean     NOT NULL DEFAULT false
) WITH (
    fillfactor = 90,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0
);
CREATE INDEX claims_cursor ON pgbus.claims (subscription, priority, id);
CREATE INDEX claims_open ON pgbus.claims (lease_until) WHERE closed_at IS NULL;

-- The lanes of one subscription that have rows in the log, by priority (a skip scan of
-- delivery_log_pos: one index probe per lane).
CREATE FUNCTION pgbus.log_lanes(p_sub text) RETURNS SETOF smallint
LANGUAGE sql STABLE AS $f$
    WITH RECURSIVE lane(p) AS (
        (SELECT q.priority FROM pgbus.delivery_log q WHERE q.subscription = p_sub
         ORDER BY q.priority LIMIT 1)
        UNION ALL
        SELECT (SELECT q.priority FROM pgbus.delivery_log q
                WHERE q.subscription = p_sub AND q.priority > lane.p
                ORDER BY q.priority LIMIT 1)
        FROM lane WHERE lane.p IS NOT NULL
    )
    SELECT p FROM lane WHERE p IS NOT NULL
$f$;

-- Claims up to p_n log rows of one subscription, lanes in priority order, each lane in
-- commit order, under a new batch lease of p_lease seconds for dispatcher p_owner. p_snap is
-- the calling statement's snapshot (pg_current_snapshot() in the caller): windows end there,
-- so that everything the claimed rows refer to (their events) is visible to the caller. Must
-- run in READ COMMITTED. One claimer per subscription at a time; a second one gets nothing
-- instead of waiting, and so does a claimer whose snapshot is older than a lane's cursor.
CREATE FUNCTION pgbus.claim_log(p_sub text, p_n integer, p_lease float8, p_owner integer,
                                p_snap pg_snapshot)
RETURNS TABLE (claim_id bigint, lease_id bigint, priority smallint, id bigint, event_id uuid,
               key text, txid xid8)
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
                   array_agg(r.event_id ORDER BY r.txid, r.id), array_agg(r.key ORDER BY r.txid, r.id)
              INTO ids, txs, evs, keys
            FROM ((SELECT q.id, q.txid, q.event_id, q.key
                   FROM unnest(late) AS x(t)
                   CROSS JOIN LATERAL (
                       SELECT q.id, q.txid, q.event_id, q.key FROM pgbus.delivery_log q
                       WHERE q.subscription = p_sub AND q.priority = v_lane AND q.txid = x.t
                         AND q.id > CASE WHEN x.t = lt THEN li ELSE 0 END
                       ORDER BY q.id LIMIT want) q
                   LIMIT want)
                  UNION ALL
                  -- The rest of the txid the position stopped in.
                  (SELECT q.id, q.txid, q.event_id, q.key FROM pgbus.delivery_log q
                   WHERE q.subscription = p_sub AND q.priority = v_lane
                     AND q.txid = rt AND q.id > ri AND rt < pg_snapshot_xmax(cur)
                     AND pg_visible_in_snapshot(q.txid, cur)
                   ORDER BY q.id LIMIT want)
                  UNION ALL
                  -- Later txids up to the window's end: one lower bound on txid.
                  (SELECT q.id, q.txid, q.event_id, q.key FROM pgbus.delivery_log q
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
        RETURN QUERY SELECT v_claim, v_lease, v_lane, u.i, u.e, u.k, u.t
                     FROM unnest(ids, evs, keys, txs) AS u(i, e, k, t);
        want := want - k;
    END LOOP;
END
$f$;
-- The log's partitions have no statistics (no autovacuum, TRUNCATEd every few seconds), so
-- the planner may pick a bitmap scan and a sort over a whole window for a dozen rows; the
-- ordered index plan is forced, and JIT (which the disabled paths' cost would trigger) is off.
ALTER FUNCTION pgbus.claim_log(text, integer, float8, integer, pg_snapshot) SET enable_bitmapscan = off;
ALTER FUNCTION pgbus.claim_log(text, integer, float8, integer, pg_snapshot) SET enable_sort = off;
ALTER FUNCTION pgbus.claim_log(text, integer, float8, integer, pg_snapshot) SET jit = off;

-- The log rows of one batch: the window's rows with (txid, id) in (from, last].
CREATE FUNCTION pgbus.claim_rows(c pgbus.claims)
RETURNS TABLE (id bigint, event_id uuid, key text)
LANGUAGE sql STABLE AS $f$
    SELECT q.id, q.event_id, q.key FROM pgbus.delivery_log q
    WHERE q.subscription = c.subscription AND q.priority = c.priority
      AND (q.txid, q.id) > (c.from_txid, c.from_id) AND (q.txid, q.id) <= (c.last_txid, c.last_id)
      AND pg_visible_in_snapshot(q.txid, c.cur_snap)
      AND NOT pg_visible_in_snapshot(q.txid, c.prev_snap)
$f$;

-- Whether slot p_slot holds a row that some lane still needs: one not yet read by its
-- lane's cursor, or one in an open batch. Lanes of subscriptions that no longer exist are
-- ignored. Read under the slot's ACCESS EXCLUSIVE lock, so every inserter has finished.
CREATE FUNCTION pgbus.log_slot_needed(p_slot smallint) RETURNS boolean
LANGUAGE plpgsql STABLE AS $f$
DECLARE
    v_sub text;
    v_lane smallint;
    c pgbus.claims;
    needed boolean;
BEGIN
    FOR v_sub, v_lane IN
        WITH RECURSIVE lane(s, p) AS (
            (SELECT q.subscription, q.priority FROM pgbus.delivery_log q WHERE q.slot = p_slot
             ORDER BY q.subscription, q.priority LIMIT 1)
            UNION ALL
            SELECT n.subscription, n.priority FROM lane, LATERAL (
                SELECT q.subscription, q.priority FROM pgbus.delivery_log q
                WHERE q.slot = p_slot AND (q.subscription, q.priority) > (lane.s, lane.p)
                ORDER BY q.subscription, q.priority LIMIT 1) n
        )
        SELECT lane.s, lane.p FROM lane
        WHERE EXISTS (SELECT 1 FROM pgbus.subscriptions s WHERE s.name = lane.s)
    LOOP
        SELECT * INTO c FROM pgbus.claims x
        WHERE x.subscription = v_sub AND x.priority = v_lane ORDER BY x.id DESC LIMIT 1;
        IF NOT FOUND THEN
            RETURN true;
        END IF;
        -- Not read yet: not visible at the cursor's window start, and past its position.
        SELECT EXISTS (
            SELECT 1 FROM pgbus.delivery_log q
            WHERE q.slot = p_slot AND q.subscription = v_sub AND q.priority = v_lane
              AND (q.txid >= pg_snapshot_xmax(c.prev_snap)
                   OR q.txid = ANY (ARRAY(SELECT pg_snapshot_xip(c.prev_snap))))
              AND NOT pg_visible_in_snapshot(q.txid, c.prev_snap)
              AND NOT (pg_visible_in_snapshot(q.txid, c.cur_snap)
                       AND (q.txid, q.id) <= (c.last_txid, c.last_id))
        ) INTO needed;
        IF needed THEN
            RETURN true;
        END IF;
        -- In a batch still open.
        IF EXISTS (
            SELECT 1 FROM pgbus.claims b
            WHERE b.closed_at IS NULL AND b.subscription = v_sub AND b.priority = v_lane
              AND EXISTS (
                  SELECT 1 FROM pgbus.delivery_log q
                  WHERE q.slot = p_slot AND q.subscription = v_sub AND q.priority = v_lane
                    AND (q.txid, q.id) > (b.from_txid, b.from_id)
                    AND (q.txid, q.id) <= (b.last_txid, b.last_id)
                    AND pg_visible_in_snapshot(q.txid, b.cur_snap)
                    AND NOT pg_visible_in_snapshot(q.txid, b.prev_snap))
        ) THEN
            RETURN true;
        END IF;
    END LOOP;
    RETURN false;
END
$f$;

-- One step of the ring, for the maintenance leader: TRUNCATE every slot but the current one
-- that no lane needs, then move publishing to the next slot once the current one is older
-- than p_period and the next one is empty. A slot that cannot be locked within the lock
-- timeout is left for the next step. Returns the slots truncated.
CREATE FUNCTION pgbus.log_rotate(p_period interval, p_lock_timeout interval)
RETURNS smallint[]
LANGUAGE plpgsql AS $f$
DECLARE
    r pgbus.log_ring;
    s smallint;
    busy boolean;
    truncated smallint[] := '{}';
BEGIN
    SELECT * INTO r FROM pgbus.log_ring ORDER BY generation DESC LIMIT 1;
    PERFORM set_config('lock_timeout', (extract(epoch FROM p_lock_timeout) * 1000)::int || 'ms', true);
    FOR s IN SELECT g::smallint FROM generate_series(0, 3) g WHERE g <> r.slot LOOP
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM pgbus.delivery_log_%s)', s) INTO busy;
        CONTINUE WHEN NOT busy;
        -- A publisher whose transaction wrote to the slot, or a long transaction that read
        -- it, holds its lock until it ends, however long: do not queue behind it (claims
        -- would queue behind this meanwhile). Claims hold theirs for a statement.
        CONTINUE WHEN EXISTS (
            SELECT 1 FROM pg_locks l
            LEFT JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'relation' AND l.granted AND l.pid <> pg_backend_pid()
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.relation = format('pgbus.delivery_log_%s', s)::regclass
              AND (l.mode = 'RowExclusiveLock' OR a.xact_start < now() - interval '1 second'));
        BEGIN
            EXECUTE format('LOCK TABLE pgbus.delivery_log_%s IN ACCESS EXCLUSIVE MODE', s);
            IF NOT pgbus.log_slot_needed(s) THEN
                EXECUTE format('TRUNCATE pgbus.delivery_log_%s', s);
                truncated := truncated || s;
            END IF;
        EXCEPTION WHEN lock_not_available THEN
            NULL;
        END;
    END LOOP;
    IF r.opened_at < now() - p_period THEN
        s := (r.slot + 1) % 4;
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM pgbus.delivery_log_%s)', s) INTO busy;
        IF NOT busy THEN
            INSERT INTO pgbus.log_ring (generation, slot) VALUES (r.generation + 1, s)
            ON CONFLICT DO NOTHING;
        END IF;
    END IF;
    DELETE FROM pgbus.log_ring WHERE generation < r.generation - 100;
    RETURN truncated;
END
$f$;

-- Log rows not finished: those no lane's cursor has read yet (state 0, pending) and those in
-- an open batch (state 1, running, with the batch's lease). For operators and tests; it reads
-- each lane from its cursor on.
CREATE FUNCTION pgbus.log_unfinished()
RETURNS TABLE (id bigint, event_id uuid, subscription text, state smallint, priority smallint,
               key text, claim_id bigint, lease_until timestamptz)
LANGUAGE plpgsql STABLE AS $f$
DECLARE
    v_sub text;
    v_lane smallint;
    c pgbus.claims;
BEGIN
    FOR v_sub IN SELECT s.name FROM pgbus.subscriptions s LOOP
        FOR v_lane IN SELECT l FROM pgbus.log_lanes(v_sub) l LOOP
            SELECT * INTO c FROM pgbus.claims x
            WHERE x.subscription = v_sub AND x.priority = v_lane ORDER BY x.id DESC LIMIT 1;
            IF NOT FOUND THEN
                c.prev_snap := '1:1:'; c.cur_snap := '1:1:'; c.last_txid := '0'; c.last_id := 0;
            END IF;
            RETURN QUERY
                SELECT q.id, q.event_id, q.subscription, 0::smallint, q.priority, q.key,
                       NULL::bigint, NULL::timestamptz
                FROM pgbus.delivery_log q
                WHERE q.subscription = v_sub AND q.priority = v_lane
                  AND NOT pg_visible_in_snapshot(q.txid, c.prev_snap)
                  AND NOT (pg_visible_in_snapshot(q.txid, c.cur_snap)
                           AND (q.txid, q.id) <= (c.last_txid, c.last_id));
            RETURN QUERY
                SELECT r.id, r.event_id, v_sub, 1::smallint, v_lane, r.key, b.id, b.lease_until
                FROM pgbus.claims b CROSS JOIN LATERAL pgbus.claim_rows(b) r
                WHERE b.closed_at IS NULL AND b.subscription = v_sub AND b.priority = v_lane
                  AND NOT EXISTS (SELECT 1 FROM pgbus.deliveries d WHERE d.id = r.id);
        END LOOP;
    END LOOP;
END
$f$;

-- Every delivery wherever it lives: the rows of pgbus.deliveries and the log's unfinished
-- rows, with the columns of pgbus.deliveries. A log row not read yet is pending, due since
-- its event was published (run_at); one in an open batch is running, its attempt counted,
-- run_at its batch's lease expiry.
CREATE VIEW pgbus.all_deliveries AS
    SELECT d.id, d.event_id, d.subscription, d.state, d.priority, d.run_at, d.attempts, d.solo,
           d.key, d.last_error, d.created_at, d.finished_at
    FROM pgbus.deliveries d
    UNION ALL
    SELECT l.id, l.event_id, l.subscription, l.state, l.priority,
           coalesce(l.lease_until, e.created_at), l.state::integer, false, l.key, NULL::text,
           e.created_at, NULL::timestamptz
    FROM pgbus.log_unfinished() l
    JOIN pgbus.events e ON e.id = l.event_id;
