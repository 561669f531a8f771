-- name: admin_redeliver
-- Delivers one event to one subscription again, after admin_replay_lock.sql in the same
-- transaction: a delivery that is done (retained) or dead becomes pending, due now, with a
-- fresh set of attempts; a pending or running one is left alone (it is on its way); with
-- none, one is created. Which deliveries exist is checked here: rows of pgbus.deliveries,
-- and the delivery log's unfinished rows (pending or running in a batch: on their way).
--
-- $1 subscription  text
-- $2 event_id      uuid
--
-- Returns whether the event exists, the delivery's id and state before (null: none), and
-- the id of the delivery created or made pending (null: nothing written).
WITH ev AS (
    -- By id alone: every slot of the events ring is probed (off the hot path). The newest
    -- copy, should a survivor have been copied forward (docs/storage/design.md §4.9).
    SELECT id, priority, key, slot FROM pgbus.events WHERE id = $2
    ORDER BY created_at DESC LIMIT 1
),
in_table AS (
    SELECT d.id, d.state FROM pgbus.deliveries d
    WHERE d.subscription = $1 AND d.event_id = $2
    ORDER BY d.state, d.id
    LIMIT 1
    FOR UPDATE
),
existing AS (
    (SELECT l.id, l.state FROM pgbus.log_unfinished() l
     WHERE l.subscription = $1 AND l.event_id = $2
       AND NOT EXISTS (SELECT 1 FROM in_table t WHERE t.id = l.id)
     LIMIT 1)
    UNION ALL
    SELECT id, state FROM in_table
    ORDER BY state, id
    LIMIT 1
),
again AS (
    UPDATE pgbus.deliveries d
    SET state = 0 /* pending */, run_at = now(), attempts = 0, solo = false,
        finished_at = NULL, lease_id = NULL
    FROM existing x
    WHERE d.id = x.id AND x.state >= 2 /* done or dead */
    RETURNING d.id
),
fresh AS (
    INSERT INTO pgbus.deliveries (event_id, subscription, priority, run_at, key, ordered, seq,
                                  event_slot)
    SELECT ev.id, $1, ev.priority, now(), ev.key, o.ordered,
           CASE WHEN o.ordered THEN nextval('pgbus.delivery_seq') END, ev.slot
    FROM ev
    CROSS JOIN LATERAL (
        SELECT ev.key IS NOT NULL AND coalesce((SELECT s.ordered FROM pgbus.subscriptions s
                                                WHERE s.name = $1), false) AS ordered
    ) o
    WHERE NOT EXISTS (SELECT 1 FROM existing)
    RETURNING id
)
SELECT EXISTS (SELECT 1 FROM ev) AS event_exists,
       (SELECT id FROM existing) AS existing_id,
       (SELECT state FROM existing) AS existing_state,
       coalesce((SELECT id FROM again), (SELECT id FROM fresh)) AS written
