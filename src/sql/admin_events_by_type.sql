-- name: admin_events_by_type
-- One page of events by type and time range, in publish order ((created_at, id) ascending).
--
-- $1 type_likes  text[]       the type must match one (SQL LIKE); null: any type
-- $2 from        timestamptz  created at or after; null: no bound
-- $3 to          timestamptz  created before; null: no bound
-- $4 after_at    timestamptz  the page starts after (created_at, id); '-infinity' to start
-- $5 after_id    uuid
-- $6 limit       int8
SELECT e.id, e.type, e.source, e.subject, e.key, e.data, e.headers, e.dedupe_key, e.priority,
       e.created_at
FROM pgbus.events e
WHERE ($1::text[] IS NULL OR e.type LIKE ANY ($1))
  AND ($2::timestamptz IS NULL OR e.created_at >= $2)
  AND ($3::timestamptz IS NULL OR e.created_at < $3)
  AND (e.created_at, e.id) > ($4, $5)
ORDER BY e.created_at, e.id
LIMIT $6
