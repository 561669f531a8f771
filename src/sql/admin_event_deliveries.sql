-- name: admin_event_deliveries
-- The deliveries of some events, by event and subscription, and for each event the
-- subscriptions that match its type now, existed when it was published, and have no
-- delivery row for it (state null): it was done and deleted, discarded, or removed.
-- Which deliveries exist is read here: rows of pgbus.deliveries and the delivery log's
-- unfinished rows.
--
-- $1 event_ids  uuid[]
WITH ev AS (
    SELECT e.id, e.type, e.created_at FROM pgbus.events e WHERE e.id = ANY ($1)
),
rows AS (
    SELECT d.event_id, d.subscription, d.id, d.state, d.attempts, d.last_error, d.finished_at
    FROM pgbus.deliveries d
    WHERE d.event_id = ANY ($1)
    UNION ALL
    SELECT l.event_id, l.subscription, l.id, l.state, l.state::int4, NULL::text,
           NULL::timestamptz
    FROM pgbus.log_unfinished() l
    WHERE l.event_id = ANY ($1)
      AND NOT EXISTS (SELECT 1 FROM pgbus.deliveries d WHERE d.id = l.id)
)
SELECT event_id, subscription, id, state, attempts, last_error, finished_at FROM rows
UNION ALL
SELECT ev.id, s.name, NULL, NULL, NULL, NULL, NULL
FROM ev
JOIN pgbus.subscriptions s
  ON ev.type LIKE ANY (s.like_patterns) AND s.created_at <= ev.created_at
WHERE NOT EXISTS (SELECT 1 FROM rows r WHERE r.event_id = ev.id AND r.subscription = s.name)
ORDER BY 1, 2, 3
