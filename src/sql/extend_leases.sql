-- name: extend_leases
-- Pushes the leases of held deliveries forward. Fenced like outcomes (primary key, still
-- running, lease id among ours), no join.
--
-- $1 ids      int8[]    deliveries
-- $2 leases   int8[]    the distinct lease ids of $1
-- $3 lengths  float8[]  each row's lease length in seconds, by its position in $1
UPDATE pgbus.deliveries d
SET run_at = now() + ($3::float8[])[array_position($1::int8[], d.id)] * interval '1 second'
WHERE d.id = ANY ($1::int8[]) AND d.state = 1 /* running */ AND d.lease_id = ANY ($2::int8[])
