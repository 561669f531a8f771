-- name: admin_delivery
-- One delivery, in any state, with its event (null columns when the event is gone).
--
-- $1 id  int8
SELECT d.id, d.event_id, d.subscription, d.state, d.attempts, d.run_at, d.solo,
       d.last_error, d.created_at, d.finished_at, d.owner,
       e.type AS event_type, e.source, e.subject, e.key, e.data, e.headers, e.dedupe_key,
       e.priority, e.created_at AS event_created_at
FROM pgbus.deliveries d
LEFT JOIN pgbus.events e ON e.id = d.event_id
WHERE d.id = $1
