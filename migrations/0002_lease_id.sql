-- pgbus schema, version 2: the lease id.
--
-- A running delivery records which claim holds its lease: the id of the claim statement's
-- transaction (pg_current_xact_id(), unique for the life of the cluster). Outcomes and
-- lease extensions are fenced by (id, state = 1, lease_id = ANY(the writer's leases)):
-- one index lookup per row with a filter, no join, so a batch costs the same per row
-- whatever its size. Not indexed, so it adds nothing to the claim's index writes.
ALTER TABLE pgbus.deliveries ADD COLUMN lease_id bigint;
