-- pgbus schema, version 9: pgbus.claims in the ring.
--
-- Every claimed batch writes one pgbus.claims row and closes it later: two row versions per
-- batch that only VACUUM could remove, and under a pinned xmin horizon it cannot. The table
-- is now list-partitioned by the delivery log's slots: a batch is written to the partition of
-- the log's current slot (pgbus.log_slot()), and a partition that publishing has moved away
-- from is TRUNCATEd once none of its rows is needed: no batch in it is open, and no lane's
-- cursor (its newest row) is in it. A cursor that would keep a partition is copied forward
-- into the current one first, under the lane's claim lock, and the partition is truncated
-- at a later step, so that no claim can read the lane without finding its cursor.

-- The delivery log's current slot (the newest row of the ring). In PL/pgSQL so that, as a
-- column default, its plan is cached per session (an SQL function is planned at every call).
CREATE FUNCTION pgbus.log_slot() RETURNS smallint
LANGUAGE plpgsql STABLE AS $f$
BEGIN
    RETURN (SELECT r.slot FROM pgbus.log_ring r ORDER BY r.generation DESC LIMIT 1);
END
$f$;

-- The claim lock of a subscription's lanes, taken by pgbus.claim_log (transaction-scoped).
CREATE FUNCTION pgbus.claim_lock_key(p_sub text) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $f$
    SELECT hashtextextended('pgbus.claim_log:' || p_sub, 0)
$f$;

ALTER TABLE pgbus.claims RENAME TO claims_v5;
ALTER INDEX pgbus.claims_cursor RENAME TO claims_v5_cursor;
ALTER INDEX pgbus.claims_open RENAME TO claims_v5_open;

CREATE SEQUENCE pgbus.claims_ids AS bigint;
SELECT setval('pgbus.claims_ids', coalesce((SELECT max(id) FROM pgbus.claims_v5), 0) + 1, false);

-- The columns of version 5, in the same order, and the partition key last.
CREATE TABLE pgbus.claims (
    id           bigint      NOT NULL DEFAULT nextval('pgbus.claims_ids'),
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
    taken_back   boolean     NOT NULL DEFAULT false,
    slot         smallint    NOT NULL DEFAULT pgbus.log_slot()
) PARTITION BY LIST (slot);
ALTER SEQUENCE pgbus.claims_ids OWNED BY pgbus.claims.id;
-- Partitions live a few periods of the ring and are TRUNCATEd: nothing for autovacuum to do.
-- Closing a batch is not a HOT update (claims_open names closed_at), but its dead index
-- entries go with the partition, a few periods later, whatever the horizon.
CREATE TABLE pgbus.claims_0 PARTITION OF pgbus.claims FOR VALUES IN (0)
    WITH (fillfactor = 80, autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE TABLE pgbus.claims_1 PARTITION OF pgbus.claims FOR VALUES IN (1)
    WITH (fillfactor = 80, autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE TABLE pgbus.claims_2 PARTITION OF pgbus.claims FOR VALUES IN (2)
    WITH (fillfactor = 80, autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE TABLE pgbus.claims_3 PARTITION OF pgbus.claims FOR VALUES IN (3)
    WITH (fillfactor = 80, autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE INDEX claims_id ON pgbus.claims (id);
CREATE INDEX claims_cursor ON pgbus.claims (subscription, priority, id);
-- Open batches: the sweep, and the truncation check of the log's slots (which runs under the
-- slot's lock, so it must not scan a lane's batches).
CREATE INDEX claims_open ON pgbus.claims (lease_until) WHERE closed_at IS NULL;

-- What version 5 needs of its rows: the open batches and each lane's cursor.
INSERT INTO pgbus.claims (id, subscription, priority, prev_snap, cur_snap, from_txid, from_id,
                          last_txid, last_id, n, exhausted, lease_id, lease_until, owner,
                          closed_at, taken_back)
SELECT c.id, c.subscription, c.priority, c.prev_snap, c.cur_snap, c.from_txid, c.from_id,
       c.last_txid, c.last_id, c.n, c.exhausted, c.lease_id, c.lease_until, c.owner,
       c.closed_at, c.taken_back
FROM pgbus.claims_v5 c
WHERE c.closed_at IS NULL
   OR NOT EXISTS (SELECT 1 FROM pgbus.claims_v5 n
                  WHERE n.subscription = c.subscription AND n.priority = c.priority
                    AND n.id > c.id);

-- The functions that name the table's row type are made again for the new one.
DROP FUNCTION pgbus.claim_rows(pgbus.claims_v5);
DROP TABLE pgbus.claims_v5;

CREATE FUNCTION pgbus.claim_rows(c pgbus.claims)
RETURNS TABLE (id bigint, event_id uuid, key text)
LANGUAGE sql STABLE AS $f$
    SELECT q.id, q.event_id, q.key FROM pgbus.delivery_log q
    WHERE q.subscription = c.subscription AND q.priority = c.priority
      AND (q.txid, q.id) > (c.from_txid, c.from_id) AND (q.txid, q.id) <= (c.last_txid, c.last_id)
      AND pg_visible_in_snapshot(q.txid, c.cur_snap)
      AND NOT pg_visible_in_snapshot(q.txid, c.prev_snap)
$f$;

-- The lanes that have rows in slot p_slot of pgbus.claims (a skip scan of claims_cursor).
CREATE FUNCTION pgbus.claims_lanes(p_slot smallint)
RETURNS TABLE (subscription text, priority smallint)
LANGUAGE sql STABLE AS $f$
    WITH RECURSIVE lane(s, p) AS (
        (SELECT c.subscription, c.priority FROM pgbus.claims c WHERE c.slot = p_slot
         ORDER BY c.subscription, c.priority LIMIT 1)
        UNION ALL
        SELECT n.subscription, n.priority FROM lane, LATERAL (
            SELECT c.subscription, c.priority FROM pgbus.claims c
            WHERE c.slot = p_slot AND (c.subscription, c.priority) > (lane.s, lane.p)
            ORDER BY c.subscription, c.priority LIMIT 1) n
    )
    SELECT s, p FROM lane
$f$;

-- Whether a lane's cursor must be kept although its partition goes: its subscription exists,
-- or the log still holds rows of the lane (a subscription removed and registered again must
-- not read them a second time).
CREATE FUNCTION pgbus.claims_cursor_kept(p_sub text, p_priority smallint) RETURNS boolean
LANGUAGE sql STABLE AS $f$
    SELECT EXISTS (SELECT 1 FROM pgbus.subscriptions s WHERE s.name = p_sub)
        OR EXISTS (SELECT 1 FROM pgbus.delivery_log q
                   WHERE q.subscription = p_sub AND q.priority = p_priority)
$f$;

-- One step of the claims' ring, for the maintenance leader, on every partition but the
-- current slot's: a partition holding lane cursors gets them copied forward into the current
-- slot (each under its subscription's claim lock, skipped when a claim holds it); a partition
-- with no cursor and no open batch is TRUNCATEd (not in the step that copied its cursors out,
-- so that a claim whose snapshot predates the copy never finds a lane without its cursor).
-- Claims and completions touch every partition all the time, so the partition's lock is taken
-- only when it is free at once (NOWAIT): a request that waited would queue every claim and
-- completion behind it. At most one partition is truncated per step, so the lock is held only
-- for one TRUNCATE. A partition that a long transaction holds, or that is busy, is left for
-- the next step. Returns the slots truncated.
CREATE FUNCTION pgbus.claims_rotate() RETURNS smallint[]
LANGUAGE plpgsql AS $f$
DECLARE
    cur smallint := pgbus.log_slot();
    s smallint;
    l record;
    h pgbus.claims;
    busy boolean;
    copied boolean;
    kept boolean;
    truncated smallint[] := '{}';
BEGIN
    FOR s IN SELECT g::smallint FROM generate_series(0, 3) g WHERE g <> cur LOOP
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM pgbus.claims_%s)', s) INTO busy;
        CONTINUE WHEN NOT busy;
        CONTINUE WHEN EXISTS (SELECT 1 FROM pgbus.claims c WHERE c.slot = s AND c.closed_at IS NULL);
        copied := false;
        kept := false;
        FOR l IN SELECT * FROM pgbus.claims_lanes(s) LOOP
            SELECT * INTO h FROM pgbus.claims c
            WHERE c.subscription = l.subscription AND c.priority = l.priority
            ORDER BY c.id DESC LIMIT 1;
            CONTINUE WHEN h.slot <> s OR NOT pgbus.claims_cursor_kept(l.subscription, l.priority);
            kept := true;
            CONTINUE WHEN NOT pg_try_advisory_xact_lock(pgbus.claim_lock_key(l.subscription));
            -- Under the lock no claim of the lane is in progress; read its cursor again.
            SELECT * INTO h FROM pgbus.claims c
            WHERE c.subscription = l.subscription AND c.priority = l.priority
            ORDER BY c.id DESC LIMIT 1;
            CONTINUE WHEN h.slot <> s OR h.closed_at IS NULL;
            INSERT INTO pgbus.claims (subscription, priority, prev_snap, cur_snap, from_txid,
                                      from_id, last_txid, last_id, n, exhausted, lease_id,
                                      lease_until, owner, closed_at, taken_back, slot)
            VALUES (h.subscription, h.priority, h.prev_snap, h.cur_snap, h.from_txid, h.from_id,
                    h.last_txid, h.last_id, 0, h.exhausted, h.lease_id, h.lease_until, h.owner,
                    h.closed_at, h.taken_back, cur);
            copied := true;
        END LOOP;
        CONTINUE WHEN copied OR kept;
        -- As for the log's slots: never queue behind a transaction that holds the partition.
        CONTINUE WHEN EXISTS (
            SELECT 1 FROM pg_locks k
            LEFT JOIN pg_stat_activity a ON a.pid = k.pid
            WHERE k.locktype = 'relation' AND k.granted AND k.pid <> pg_backend_pid()
              AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND k.relation = format('pgbus.claims_%s', s)::regclass
              AND a.xact_start < now() - interval '1 second');
        BEGIN
            EXECUTE format('LOCK TABLE pgbus.claims_%s IN ACCESS EXCLUSIVE MODE NOWAIT', s);
            -- Under the lock: nothing opened or became a cursor since.
            IF NOT EXISTS (SELECT 1 FROM pgbus.claims c WHERE c.slot = s AND c.closed_at IS NULL)
               AND NOT EXISTS (
                   SELECT 1 FROM pgbus.claims_lanes(s) x
                   WHERE pgbus.claims_cursor_kept(x.subscription, x.priority)
                     AND (SELECT c.slot FROM pgbus.claims c
                          WHERE c.subscription = x.subscription AND c.priority = x.priority
                          ORDER BY c.id DESC LIMIT 1) = s)
            THEN
                EXECUTE format('TRUNCATE pgbus.claims_%s', s);
                RETURN ARRAY[s];
            END IF;
        EXCEPTION WHEN lock_not_available THEN
            NULL;
        END;
    END LOOP;
    RETURN truncated;
END
$f$;

-- Evacuation of stuck lanes. A lane whose subscription stopped claiming (paused, or served by
-- no running dispatcher) keeps every slot that holds its unread rows, so the ring stops
-- turning once it comes round to one of them, and the current slot grows without end. When
-- the ring has been due to turn for p_period and the next slot still holds rows, each lane
-- that needs that slot and has not claimed for p_idle gets its unread rows moved to
-- pgbus.deliveries (pending, first attempts, same ids), where its claims find them when it
-- claims again, and its cursor moved past them: a closed claims row whose window ends at the
-- snapshot the rows were read in, so that rows of transactions still in progress then are read
-- from the log later, once. Done under the subscription's claim lock. Returns the rows moved.
CREATE FUNCTION pgbus.log_evacuate(p_period interval, p_idle interval) RETURNS bigint
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
                                      attempts, key)
        OVERRIDING SYSTEM VALUE
        SELECT q.id, q.event_id, q.subscription, 0 /* pending */, q.priority, now(), 0, q.key
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
                                  closed_at)
        VALUES (l.sub, l.priority, s, s, '0', 0, '0', 0, 0, true, 0, now(), now());
    END LOOP;
    RETURN moved;
END
$f$;
