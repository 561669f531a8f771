-- name: presence_leave
-- Unregisters a dispatcher that stopped cleanly.
--
-- $1 id  int4
DELETE FROM pgbus.dispatchers WHERE id = $1
