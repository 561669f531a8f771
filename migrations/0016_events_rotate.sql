-- Migration 0016: the events ring turns and truncates (docs/storage/design.md §4.9).
--
-- One step, for the dispatchers' maintenance (src/sql/events_rotate.sql): every slot but the
-- current one whose events are all past the retention (the slot stopped taking events
-- longer than the retention ago) is TRUNCATEd, after its survivors moved forward; then
-- publishing moves to the next slot once the current one is older than a sixth of the
-- retention and the next one is empty. With eight slots, an event is kept at least the
-- retention and at most seven sixths of it (plus a maintenance interval).
--
-- Survivors are the events some row still refers to: a delivery of pgbus.deliveries in any
-- state (pending, running, retrying, dead, a retained done row, a transactional handler's
-- done marker) or an unfinished row of the delivery log (not read yet, or in an open
-- batch). A finished log row (its batch closed, the row done) only waits for its log slot's
-- truncation; it is given the new slot too, and its event is not kept for it. They are copied into the current slot and the
-- rows that refer to them are given that slot, under the old slot's ACCESS EXCLUSIVE lock:
-- every writer to it and every claim that could read it has finished, and none starts until
-- the truncation commits. The cost under the lock is one scan of pgbus.deliveries (which has
-- no index on event_slot, as it has none on event_id: every index is paid on each claim),
-- one of each lane of the log, and the copy of the survivors, not the number of events. A slot whose lock is
-- not granted within the lock timeout is left for the next step.
CREATE FUNCTION pgbus.events_rotate(p_retention interval, p_lock_timeout interval,
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
            UPDATE pgbus.delivery_log q SET event_slot = r.slot WHERE q.event_slot = s;
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
