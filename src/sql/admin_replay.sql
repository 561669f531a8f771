-- name: admin_replay
-- One batch of a replay: examines up to $3 events after the cursor (by id, through the
-- primary key, or through the subject index when a subject is given) and creates a pending
-- delivery, due now, for each that matches the subscription's patterns and the filter and
-- has no delivery for this subscription yet (of an ordered subscription, keyed: an ordered
-- delivery, after the key's unfinished ones). Runs after admin_replay_lock.sql in the same
-- transaction. Which deliveries exist is checked here, in pgbus.deliveries and in the
-- delivery log (whose rows stay there until their slot is truncated, read or not: an event
-- whose delivery is done and still in the log is not replayed until then).
--
-- The check has no index on event_id to use (neither table has one: it would be paid by
-- every publish or claim), so it reads the subscription's deliveries once per batch.
--
-- $1 subscription  text
-- $2 after         uuid         examine ids after this one; the nil UUID to start
-- $3 scan          int8         most events examined
-- $4 from          timestamptz  events created at or after; null: no bound
-- $5 to            timestamptz  events created before; null: no bound
-- $6 type_likes    text[]       the event type must match one (SQL LIKE); null: any
-- $7 subject       text         only this subject's events; null: any
--
-- Returns how many events were examined, the last id examined (the next cursor; null when
-- none was left), and how many deliveries were created.
WITH sub AS (
    SELECT name, like_patterns, ordered FROM pgbus.subscriptions WHERE name = $1
),
scanned AS (
    (SELECT e.id, e.slot FROM pgbus.events e
     WHERE $7::text IS NULL AND e.id > $2
     ORDER BY e.id LIMIT $3)
    UNION ALL
    (SELECT e.id, e.slot FROM pgbus.events e
     WHERE e.subject = $7::text AND e.id > $2
     ORDER BY e.id LIMIT $3)
),
fan AS (
    INSERT INTO pgbus.deliveries (event_id, subscription, priority, run_at, key, ordered, seq,
                                  event_slot)
    SELECT e.id, s.name, e.priority, now(), e.key, s.ordered AND e.key IS NOT NULL,
           CASE WHEN s.ordered AND e.key IS NOT NULL THEN nextval('pgbus.delivery_seq') END,
           e.slot
    FROM scanned x
    JOIN pgbus.events e ON e.id = x.id AND e.slot = x.slot
    CROSS JOIN sub s
    WHERE e.type LIKE ANY (s.like_patterns)
      AND ($6::text[] IS NULL OR e.type LIKE ANY ($6))
      AND ($4::timestamptz IS NULL OR e.created_at >= $4)
      AND ($5::timestamptz IS NULL OR e.created_at < $5)
      AND NOT EXISTS (SELECT 1 FROM pgbus.deliveries d
                      WHERE d.subscription = s.name AND d.event_id = e.id)
      AND NOT EXISTS (SELECT 1 FROM pgbus.delivery_log q
                      WHERE q.subscription = s.name AND q.event_id = e.id)
    ORDER BY e.created_at, e.id
    RETURNING 1
)
SELECT (SELECT count(*) FROM scanned) AS examined,
       (SELECT id FROM scanned ORDER BY id DESC LIMIT 1) AS last,
       (SELECT count(*) FROM fan) AS created
