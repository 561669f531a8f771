-- name: events_any_slot
-- Events by id alone, in whichever slot of the events ring they are (every slot is probed):
-- for the rare claimed row whose event was not in the slot it named, because the ring moved
-- the event forward while the row's slot was being copied (docs/storage/design.md §4.9).
--
-- $1 ids  uuid[]
SELECT DISTINCT ON (e.id) e.id AS event_id, e.type AS event_type, e.source, e.subject, e.key,
       e.data::text AS data, e.headers::text AS headers, e.created_at
FROM pgbus.events e
WHERE e.id = ANY ($1::uuid[])
ORDER BY e.id, e.created_at DESC
