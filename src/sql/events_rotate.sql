-- name: events_rotate
-- One step of the events ring (pgbus.events_rotate, migration 0016): truncate the slots whose
-- events are all past the retention, after moving their survivors (events some delivery or
-- log row still refers to) into the current slot; with $3, move publishing to the next slot
-- once the current one is older than a sixth of the retention. Only one session at a time
-- (a second one gets no row at once).
--
-- $1 retention     float8  seconds
-- $2 lock_timeout  float8  seconds to wait for a slot's lock before leaving it for next time
-- $3 turn          bool    whether the ring may turn (false: truncate only)
-- $4 lock_key      int8    advisory lock that serialises pruners
-- The function is called in the target list, as log_rotate.sql calls its own: a FROM item
-- would run before a volatile WHERE (the lock) is checked.
SELECT pgbus.events_rotate($1 * interval '1 second', $2 * interval '1 second', $3) AS step
WHERE pg_try_advisory_xact_lock($4)
