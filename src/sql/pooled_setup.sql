-- name: pooled_setup
-- The start of each transaction of a kept connection behind a transaction-mode pooler
-- (src/dispatcher/pooler.rs): no prepared statement of another client on this server
-- connection, and the settings of session_setup.sql for this transaction only.
DEALLOCATE ALL;
SET LOCAL synchronous_commit = off;
SET LOCAL enable_seqscan = off;
SET LOCAL jit = off;
SET LOCAL plan_cache_mode = force_generic_plan;
