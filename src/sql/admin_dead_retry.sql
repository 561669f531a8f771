-- name: admin_dead_retry
-- Makes the matching dead letters pending again, due now, in one statement. Only dead rows
-- are touched (never a running one, whose lease fences every write). last_error and the
-- failure history are kept.
--
-- $1..$6  the filter of admin_dead_list.sql
-- $7 reset  bool  true: attempts start again from 0 (a fresh set); false: attempts are kept,
--                 so the delivery gets one more attempt and is dead again if it fails
WITH hit AS (
    SELECT d.id FROM pgbus.deliveries d
    WHERE d.state = 3 /* dead */
      AND ($1::int8[] IS NULL OR d.id = ANY ($1))
      AND ($2::text IS NULL OR d.subscription = $2)
      AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM pgbus.events e
                                       WHERE e.id = d.event_id AND e.type LIKE $3))
      AND ($4::timestamptz IS NULL OR d.finished_at >= $4)
      AND ($5::timestamptz IS NULL OR d.finished_at < $5)
      AND ($6::text IS NULL OR strpos(lower(d.last_error), lower($6)) > 0)
    FOR UPDATE
)
UPDATE pgbus.deliveries d
SET state = 0 /* pending */, run_at = now(), solo = false, finished_at = NULL, lease_id = NULL,
    attempts = CASE WHEN $7 THEN 0 ELSE d.attempts END
FROM hit
WHERE d.id = hit.id AND d.state = 3 /* dead */
RETURNING d.id
