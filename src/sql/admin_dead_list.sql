-- name: admin_dead_list
-- One page of dead letters, newest first (finished_at, id descending), with their events.
--
-- $1 ids           int8[]       null: any
-- $2 subscription  text         null: any
-- $3 type_like     text         the event type pattern as SQL LIKE; null: any
-- $4 from          timestamptz  finished at or after; null: no bound
-- $5 to            timestamptz  finished before; null: no bound
-- $6 error         text         contained in last_error, ignoring case; null: any
-- $7 before_at     timestamptz  the page starts after this (finished_at, id); null: first page
-- $8 before_id     int8
-- $9 limit         int8
SELECT d.id, d.event_id, d.subscription, d.attempts, d.last_error, d.created_at,
       d.finished_at, e.type AS event_type, e.subject
FROM pgbus.deliveries d
LEFT JOIN pgbus.events e ON e.id = d.event_id
WHERE d.state = 3 /* dead */
  AND ($1::int8[] IS NULL OR d.id = ANY ($1))
  AND ($2::text IS NULL OR d.subscription = $2)
  AND ($3::text IS NULL OR e.type LIKE $3)
  AND ($4::timestamptz IS NULL OR d.finished_at >= $4)
  AND ($5::timestamptz IS NULL OR d.finished_at < $5)
  AND ($6::text IS NULL OR strpos(lower(d.last_error), lower($6)) > 0)
  AND ($7::timestamptz IS NULL OR (d.finished_at, d.id) < ($7, $8::int8))
ORDER BY d.finished_at DESC, d.id DESC
LIMIT $9
