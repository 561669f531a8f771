-- name: admin_dead_discard
-- Deletes the matching dead letters (their failure history goes with them; their events
-- stay until retention prunes them). Only dead rows are touched.
--
-- $1..$6  the filter of admin_dead_list.sql
DELETE FROM pgbus.deliveries d
WHERE d.state = 3 /* dead */
  AND ($1::int8[] IS NULL OR d.id = ANY ($1))
  AND ($2::text IS NULL OR d.subscription = $2)
  AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM pgbus.events e
                                   WHERE e.id = d.event_id AND e.type LIKE $3))
  AND ($4::timestamptz IS NULL OR d.finished_at >= $4)
  AND ($5::timestamptz IS NULL OR d.finished_at < $5)
  AND ($6::text IS NULL OR strpos(lower(d.last_error), lower($6)) > 0)
RETURNING d.id
