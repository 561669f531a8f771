-- name: presence_join
-- Registers a dispatcher (or registers it again under its id after it was reaped while
-- disconnected) and returns its id.
--
-- $1 id    int4  null for a new dispatcher
-- $2 host  text
-- $3 pid   int4
INSERT INTO pgbus.dispatchers AS d (id, host, pid)
VALUES (coalesce($1, nextval(pg_get_serial_sequence('pgbus.dispatchers', 'id'))::int4), $2, $3)
ON CONFLICT (id) DO UPDATE SET pid = excluded.pid
RETURNING d.id
