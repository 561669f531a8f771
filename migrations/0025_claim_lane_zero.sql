-- pgbus schema, version 25: a claim reads lane 0 without looking for it first.
--
-- pgbus.claim_log_batch (version 23) found a subscription's first lane with a probe of the
-- log's index ordered by priority. A B-tree scan reads every matching entry of a leaf page
-- when it reads the page, whatever the LIMIT, so that probe read and tested the whole first
-- page of the subscription's entries (about two hundred packs of the oldest rows of lane 0)
-- at every claim: measured with callgrind in a single-user backend, about 190k of the 1.45M
-- instructions of a claim of one delivery. Lane 0, the default priority, is now read without
-- a probe; the probe before it looks only below 0, and stops at the first entry of lane 0.
-- The probes for the next lanes, which start past a lane's entries, are unchanged. A
-- subscription without rows in lane 0 pays a cursor lookup and an empty window read per
-- claim, and writes nothing for it.
--
-- Three tests that were statements are now expressions evaluated without setting up a plan
-- when their answer is known from a snapshot's bounds: no transaction in progress at a
-- window's start (then the window has no late txids), none in the caller's snapshot (then
-- no transaction of it is seen by the lane's cursor), and whether an ordered subscription's
-- window holds keyed rows.
--
-- Same results as version 23's function for every claim; only the reads differ. A claim of
-- one delivery: 1.45M -> 1.32M instructions, a claim finding nothing 1.01M -> 0.91M.

CREATE OR REPLACE FUNCTION pgbus.claim_log_batch(p_sub text, p_n integer, p_lease float8,
                                      p_owner integer, p_snap pg_snapshot)
RETURNS TABLE (id bigint, attempts integer, taken_back boolean, lease_id bigint, event_id uuid,
               priority smallint, due timestamptz, claim_id bigint, txid bigint,
               event_type text, source text, subject text, key text, data text, headers text,
               created_at timestamptz, event_slot smallint, seq bigint)
LANGUAGE plpgsql
SET enable_bitmapscan = off SET enable_sort = off SET jit = off
SET plan_cache_mode = force_generic_plan
AS $f$
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
    v_paused boolean;
    run_keys text[];
    n_run integer;
    txs_last xid8;
    ids_last bigint;
    k integer;
    want integer := p_n;
    first integer;
    v_claim bigint;
    v_lease bigint;
    v_es smallint;
BEGIN
    IF want <= 0 OR NOT pg_try_advisory_xact_lock(hashtextextended('pgbus.claim_log:' || p_sub, 0)) THEN
        RETURN;
    END IF;
    -- A paused subscription (paused_at set, by the admin API) is skipped.
    SELECT s.ordered, s.dead_blocks_key, s.paused_at IS NOT NULL INTO v_ordered, v_block, v_paused
    FROM pgbus.subscriptions s WHERE s.name = p_sub;
    IF v_paused THEN
        RETURN;
    END IF;
    LOOP
        EXIT WHEN want = 0;
        -- The next lane: a skip scan of the log's index, one probe per lane (a statement of
        -- this function, so its plan is cached, unlike a call of pgbus.log_lanes). Lane 0
        -- (the default priority) is read without a probe: a probe for the first lane would
        -- read the whole first leaf page of the subscription's rows (a B-tree reads a page's
        -- matching entries at once), while a probe bounded below 0 stops at the first entry
        -- of lane 0, and a probe past a lane starts after that lane's entries. A lane 0
        -- without rows costs a claim a cursor lookup and an empty window read, and writes
        -- nothing.
        IF v_lane IS NULL THEN
            v_lane := coalesce((SELECT q.priority FROM pgbus.log_packs q
                                WHERE q.subscription = p_sub AND q.priority < 0
                                ORDER BY q.priority LIMIT 1), 0);
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
            CONTINUE WHEN pg_snapshot_xmax(p_snap) < pg_snapshot_xmax(c.cur_snap);
            IF pg_snapshot_xmin(p_snap) < pg_snapshot_xmax(p_snap) THEN
                CONTINUE WHEN EXISTS (SELECT 1 FROM pg_snapshot_xip(p_snap) x
                                      WHERE pg_visible_in_snapshot(x, c.cur_snap));
            END IF;
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
            -- None when nothing was in progress at the window's start (two bounds compared,
            -- without a statement).
            IF pg_snapshot_xmin(prev) = pg_snapshot_xmax(prev) THEN
                late := '{}';
            ELSE
                late := ARRAY(SELECT x FROM pg_snapshot_xip(prev) x
                              WHERE pg_visible_in_snapshot(x, cur) AND x >= lt ORDER BY x);
            END IF;
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
            IF cardinality(late) = 0 THEN
                -- No late txids (the common case): one range of the lane's index, from the
                -- position on; the packs of the position's txid that end at it or before are
                -- left out.
                SELECT array_agg(r.id ORDER BY r.txid, r.id), array_agg(r.txid ORDER BY r.txid, r.id),
                       array_agg(r.event_id ORDER BY r.txid, r.id), array_agg(r.key ORDER BY r.txid, r.id),
                       array_agg(r.event_slot ORDER BY r.txid, r.id),
                       array_agg(r.seq ORDER BY r.txid, r.id)
                  INTO ids, txs, evs, keys, slots, seqs
                FROM (SELECT p.id + u.o - 1 AS id, p.txid, u.e AS event_id, u.k AS key, p.event_slot,
                             u.s AS seq
                      FROM (SELECT q.id, q.txid, q.event_slot, q.event_ids, q.keys, q.seqs,
                                   CASE WHEN q.txid = rt THEN ri ELSE -1 END AS after
                            FROM pgbus.log_packs q
                            WHERE q.subscription = p_sub AND q.priority = v_lane
                              AND (q.txid, q.id) > (rt, ri - 256)
                              AND q.txid < pg_snapshot_xmax(cur)
                              AND q.id + cardinality(q.event_ids) - 1
                                  > CASE WHEN q.txid = rt THEN ri ELSE -1 END
                              AND pg_visible_in_snapshot(q.txid, cur)
                            ORDER BY q.txid, q.id LIMIT want) p
                      CROSS JOIN LATERAL unnest(p.event_ids, p.keys, p.seqs) WITH ORDINALITY AS u(e, k, s, o)
                      WHERE p.id + u.o - 1 > p.after
                      LIMIT want) r;
            ELSE
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
                            -- Past the position up to the window's end: the same range as
                            -- above.
                            (SELECT q.id, q.txid, q.event_slot, q.event_ids, q.keys, q.seqs,
                                    CASE WHEN q.txid = rt THEN ri ELSE -1 END
                             FROM pgbus.log_packs q
                             WHERE q.subscription = p_sub AND q.priority = v_lane
                               AND (q.txid, q.id) > (rt, ri - 256)
                               AND q.txid < pg_snapshot_xmax(cur)
                               AND q.id + cardinality(q.event_ids) - 1
                                   > CASE WHEN q.txid = rt THEN ri ELSE -1 END
                               AND pg_visible_in_snapshot(q.txid, cur)
                             ORDER BY q.txid, q.id LIMIT want)
                            LIMIT want) p
                      CROSS JOIN LATERAL unnest(p.event_ids, p.keys, p.seqs) WITH ORDINALITY AS u(e, k, s, o)
                      WHERE p.id + u.o - 1 > p.after
                      LIMIT want) r;
            END IF;
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
        IF v_ordered AND cardinality(array_remove(seqs, NULL)) > 0 THEN
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
        -- The claim's transaction id, taken only by a claim that writes: an empty claim
        -- stays read-only and consumes none.
        v_lease := coalesce(v_lease, pg_current_xact_id()::text::bigint);
        -- The window's end is its last row, run or parked. A window whose rows were all
        -- parked is a closed batch: only a cursor.
        INSERT INTO pgbus.claims AS x (subscription, priority, prev_snap, cur_snap, from_txid,
                                       from_id, last_txid, last_id, n, exhausted, lease_id,
                                       lease_until, owner, keys, closed_at)
        VALUES (p_sub, v_lane, prev, cur, lt, li, txs_last, ids_last, n_run, k < want, v_lease,
                now() + p_lease * interval '1 second', p_owner, run_keys,
                CASE WHEN n_run = 0 THEN now() END)
        RETURNING x.id INTO v_claim;
        -- The deliveries, then their events, each slot's from its own partition (the slot a
        -- parameter known when the plan starts: only that partition is set up). Nearly
        -- always the slot of the first: read in the same statement.
        v_es := slots[1];
        RETURN QUERY SELECT u.i, 1, false, v_lease, u.e, v_lane, NULL::timestamptz, v_claim,
                            u.t::text::int8, NULL::text, NULL::text, NULL::text, u.k, NULL::text,
                            NULL::text, NULL::timestamptz, u.s, u.q
                     FROM unnest(ids, evs, keys, txs, slots, seqs) AS u(i, e, k, t, s, q)
                     UNION ALL
                     SELECT NULL, NULL, NULL, NULL, e.id, NULL, NULL, NULL, NULL, e.type,
                            e.source, e.subject, e.key, e.data::text, e.headers::text,
                            e.created_at, e.slot, NULL
                     FROM pgbus.events e WHERE e.slot = v_es AND e.id = ANY (evs);
        -- Events of other slots (an event moved by retention, or a lane read across a turn
        -- of the events ring): a statement per slot.
        IF NOT v_es = ALL (slots) THEN
            FOREACH v_es IN ARRAY ARRAY(SELECT DISTINCT x FROM unnest(slots) x WHERE x <> slots[1])
            LOOP
                RETURN QUERY SELECT NULL::bigint, NULL::integer, NULL::boolean, NULL::bigint,
                                    e.id, NULL::smallint, NULL::timestamptz, NULL::bigint,
                                    NULL::bigint, e.type, e.source, e.subject, e.key,
                                    e.data::text, e.headers::text, e.created_at, e.slot,
                                    NULL::bigint
                             FROM pgbus.events e WHERE e.slot = v_es AND e.id = ANY (evs);
            END LOOP;
        END IF;
        want := want - k;
    END LOOP;
END
$f$;
