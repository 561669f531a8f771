-- name: admin_delivery_state
-- The state of one delivery; no row if there is none.
--
-- $1 id  int8
SELECT state FROM pgbus.deliveries WHERE id = $1
