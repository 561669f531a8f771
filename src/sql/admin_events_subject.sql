-- name: admin_events_subject
-- One page of an entity's events (its audit trail) in publish order: (created_at, id)
-- ascending, through the subject index.
--
-- $1 subject     text
-- $2 after_at    timestamptz  the page starts after (created_at, id); '-infinity' to start
-- $3 after_id    uuid
-- $4 limit       int8
SELECT e.id, e.type, e.source, e.subject, e.key, e.data, e.headers, e.dedupe_key, e.priority,
       e.created_at
FROM pgbus.events e
WHERE e.subject = $1 AND (e.created_at, e.id) > ($2, $3)
ORDER BY e.created_at, e.id
LIMIT $4
