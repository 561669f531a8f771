-- pgbus schema, version 22: the metrics gauges count the delivery log by pack.
--
-- The gauges (src/sql/metrics_gauges.sql, feature `metrics`, sampled by each dispatcher
-- every five seconds) read every unfinished delivery of pgbus.all_deliveries: the log's
-- part is pgbus.log_unfinished(), which returns one row per delivery of every subscription
-- and is joined to its event. Under a backlog that was the dispatcher's dearest statement
-- (measured: 448 ms for one sample with 200,000 deliveries pending, while the drain it
-- watched took 6.5 s). pgbus.log_gauges counts the same deliveries per pack instead: for
-- each lane of the subscriptions asked for, the packs past the lane's cursor (found from the
-- cursor's snapshot on, in the lane's index) count their deliveries past the position, and
-- the open batches their rows not moved to pgbus.deliveries, as pgbus.log_unfinished does.
-- `oldest` is when the lane's first pending delivery (in the log's order) was published.
--
-- Additive: dispatchers of version 21 keep their own gauges statement.

CREATE FUNCTION pgbus.log_gauges(p_subs text[])
RETURNS TABLE (subscription text, pending bigint, running bigint, oldest timestamptz)
LANGUAGE plpgsql STABLE AS $f$
DECLARE
    v_sub text;
    v_lane smallint;
    c pgbus.claims;
    n bigint;
    first_event uuid;
    first_at timestamptz;
BEGIN
    FOR v_sub IN SELECT s.name FROM pgbus.subscriptions s WHERE s.name = ANY (p_subs) LOOP
        subscription := v_sub;
        pending := 0;
        running := 0;
        oldest := NULL;
        FOR v_lane IN SELECT l FROM pgbus.log_lanes(v_sub) l LOOP
            SELECT * INTO c FROM pgbus.claims x
            WHERE x.subscription = v_sub AND x.priority = v_lane ORDER BY x.id DESC LIMIT 1;
            IF NOT FOUND THEN
                c.prev_snap := '1:1:'; c.cur_snap := '1:1:'; c.last_txid := '0'; c.last_id := 0;
            END IF;
            -- A pack's deliveries are ids id .. id + cardinality - 1 of its txid: past the
            -- position (last_txid, last_id) unless its txid was read in the cursor's window.
            SELECT coalesce(sum(p.left_n), 0),
                   (array_agg(p.ids[cardinality(p.ids) - p.left_n + 1] ORDER BY p.txid, p.id))[1]
            INTO n, first_event
            FROM (SELECT q.txid, q.id, q.event_ids AS ids,
                         CASE WHEN NOT pg_visible_in_snapshot(q.txid, c.cur_snap)
                                   OR q.txid > c.last_txid THEN cardinality(q.event_ids)::bigint
                              WHEN q.txid < c.last_txid THEN 0::bigint
                              ELSE greatest(0, least(cardinality(q.event_ids),
                                                     q.id + cardinality(q.event_ids) - 1 - c.last_id))
                         END AS left_n
                  FROM pgbus.log_packs q
                  WHERE q.subscription = v_sub AND q.priority = v_lane
                    -- Older transactions are all visible in the cursor's snapshot.
                    AND q.txid >= pg_snapshot_xmin(c.prev_snap)
                    AND NOT pg_visible_in_snapshot(q.txid, c.prev_snap)) p
            WHERE p.left_n > 0;
            pending := pending + n;
            IF first_event IS NOT NULL THEN
                first_at := (SELECT e.created_at FROM pgbus.events e WHERE e.id = first_event
                             LIMIT 1);
                oldest := least(oldest, first_at);
            END IF;
            running := running + (
                SELECT count(*) FROM pgbus.claims b CROSS JOIN LATERAL pgbus.claim_rows(b) r
                WHERE b.closed_at IS NULL AND b.subscription = v_sub AND b.priority = v_lane
                  AND NOT EXISTS (SELECT 1 FROM pgbus.deliveries d WHERE d.id = r.id));
        END LOOP;
        RETURN NEXT;
    END LOOP;
END
$f$;
