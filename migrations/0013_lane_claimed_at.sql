-- Migration 0013: when a subscription was last claimed, kept by its lanes' cursors.
--
-- 0012 had each dispatcher's maintenance carry the newest batch time of its subscriptions
-- into pgbus.subscriptions.last_claimed_at every few seconds: each write a new version of the
-- subscription's row, which every publish and claim reads, and which a pinned xmin horizon
-- keeps (one more version per write for as long as the pin lasts). That write is gone. Each
-- pgbus.claims row now carries when its lane was last claimed: a batch the time it was
-- claimed (the column's default), a cursor copied forward by the claims' ring or moved by
-- log_evacuate the time of the row it continues. A lane's newest row is never pruned, so the
-- newest claimed_at of a subscription's rows outlives its batches with no write of its own
-- (admin_subscriptions.sql). pgbus.subscriptions.last_claimed_at stays, read for the times
-- recorded before this migration, and is no longer written.

ALTER TABLE pgbus.claims ADD COLUMN claimed_at timestamptz;
UPDATE pgbus.claims SET claimed_at = opened_at WHERE n > 0;
ALTER TABLE pgbus.claims ALTER COLUMN claimed_at SET DEFAULT now();

-- As in 0009; a copied cursor keeps its lane's claimed_at.
CREATE OR REPLACE FUNCTION pgbus.claims_rotate() RETURNS smallint[]
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
                                      lease_until, owner, closed_at, taken_back, slot,
                                      claimed_at)
            VALUES (h.subscription, h.priority, h.prev_snap, h.cur_snap, h.from_txid, h.from_id,
                    h.last_txid, h.last_id, 0, h.exhausted, h.lease_id, h.lease_until, h.owner,
                    h.closed_at, h.taken_back, cur, h.claimed_at);
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

-- As in 0009; the moved cursor keeps its lane's claimed_at (none for a lane never claimed).
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
                                  closed_at, claimed_at)
        VALUES (l.sub, l.priority, s, s, '0', 0, '0', 0, 0, true, 0, now(), now(),
                CASE WHEN found_c THEN c.claimed_at END);
    END LOOP;
    RETURN moved;
END
$f$;
