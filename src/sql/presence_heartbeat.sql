-- name: presence_heartbeat
-- Refreshes a dispatcher's heartbeat; returns no row if it was reaped meanwhile.
--
-- $1 id  int4
UPDATE pgbus.dispatchers SET heartbeat_at = now() WHERE id = $1 RETURNING id
