-- name: dispatcher_id
-- An id for a dispatcher without presence (behind a transaction-mode pooler with no session
-- pool): drawn from the ids of pgbus.dispatchers, but no row, so that no other dispatcher
-- ever takes it for gone; its leases are taken back when they expire.
SELECT nextval(pg_get_serial_sequence('pgbus.dispatchers', 'id'))::int4
