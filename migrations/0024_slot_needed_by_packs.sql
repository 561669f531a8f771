-- pgbus schema, version 24: whether a slot of the log is still needed, read from its packs.
--
-- pgbus.log_rotate asks pgbus.log_slot_needed while it holds the slot's ACCESS EXCLUSIVE
-- lock, which every claim waits for (a claim's generic plans lock every partition). Since the
-- log holds packs (version 19), the function read the view pgbus.delivery_log, one row per
-- delivery, whose ids are computed: nothing bounded the scan of a slot's rows by an open
-- batch's range, and its plan materialised every row of the lane in the slot (20,000 at
-- 2,000 events/s) and tested each open batch against all of them. Measured at 2,000 events/s:
-- that check took 35-120 ms, and claims waited up to 160 ms behind the rotation, about
-- every ten seconds.
--
-- The same three tests, on pgbus.log_packs, each a statement bounded by the lane's index on
-- (subscription, priority, txid, id): a pack shares one txid, and its rows are the ids
-- id .. id + n - 1, so a pack holds a row past a position if and only if its last row is
-- past it, and a row in a batch's range if and only if the pack's range meets it.
-- Same result as version 5's function for every slot; only the reads differ.

CREATE OR REPLACE FUNCTION pgbus.log_slot_needed(p_slot smallint) RETURNS boolean
LANGUAGE plpgsql STABLE AS $f$
DECLARE
    v_sub text;
    v_lane smallint;
    c pgbus.claims;
    b pgbus.claims;
BEGIN
    FOR v_sub, v_lane IN
        WITH RECURSIVE lane(s, p) AS (
            (SELECT q.subscription, q.priority FROM pgbus.log_packs q WHERE q.slot = p_slot
             ORDER BY q.subscription, q.priority LIMIT 1)
            UNION ALL
            SELECT n.subscription, n.priority FROM lane, LATERAL (
                SELECT q.subscription, q.priority FROM pgbus.log_packs q
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
        -- Not read yet: not visible at the cursor's window start (so not older than that
        -- snapshot's xmin), and past its position.
        IF EXISTS (
            SELECT 1 FROM pgbus.log_packs q
            WHERE q.slot = p_slot AND q.subscription = v_sub AND q.priority = v_lane
              AND q.txid >= pg_snapshot_xmin(c.prev_snap)
              AND NOT pg_visible_in_snapshot(q.txid, c.prev_snap)
              AND NOT (pg_visible_in_snapshot(q.txid, c.cur_snap)
                       AND (q.txid, q.id + cardinality(q.event_ids) - 1)
                           <= (c.last_txid, c.last_id))
        ) THEN
            RETURN true;
        END IF;
        -- In a batch still open: one statement per open batch, bounded by its txids.
        FOR b IN
            SELECT * FROM pgbus.claims x
            WHERE x.closed_at IS NULL AND x.subscription = v_sub AND x.priority = v_lane
        LOOP
            IF EXISTS (
                SELECT 1 FROM pgbus.log_packs q
                WHERE q.slot = p_slot AND q.subscription = v_sub AND q.priority = v_lane
                  AND q.txid >= b.from_txid AND q.txid <= b.last_txid
                  AND (q.txid, q.id + cardinality(q.event_ids) - 1) > (b.from_txid, b.from_id)
                  AND (q.txid, q.id) <= (b.last_txid, b.last_id)
                  AND pg_visible_in_snapshot(q.txid, b.cur_snap)
                  AND NOT pg_visible_in_snapshot(q.txid, b.prev_snap)
            ) THEN
                RETURN true;
            END IF;
        END LOOP;
    END LOOP;
    RETURN false;
END
$f$;
