-- pgbus schema, version 3: the delivery state machine in the schema.
--
-- Delivery states (src/state.rs, `DeliveryState`): 0 pending, 1 running, 2 done (only when
-- done rows are retained), 3 dead. The CHECK makes any other value an error. Added NOT
-- VALID, then validated: the validation scans the table without blocking claims.
ALTER TABLE pgbus.deliveries
    ADD CONSTRAINT deliveries_state_check CHECK (state BETWEEN 0 AND 3) NOT VALID;
ALTER TABLE pgbus.deliveries VALIDATE CONSTRAINT deliveries_state_check;

-- One claim index for ordinary work and crash suspects: `solo` is an index column, so one
-- prepared claim statement (`solo = $5`) uses it with any plan, where the two partial
-- indexes of version 1 (`NOT solo`, `solo`) needed two statements with literal predicates.
CREATE INDEX deliveries_due_v3 ON pgbus.deliveries (subscription, solo, priority, run_at, id)
    WHERE state < 2;
DROP INDEX pgbus.deliveries_due;
DROP INDEX pgbus.deliveries_due_solo;
ALTER INDEX pgbus.deliveries_due_v3 RENAME TO deliveries_due;
