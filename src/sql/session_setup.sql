-- name: session_setup
-- Settings of the dispatcher's own connections (src/dispatcher/connection.rs).
SET synchronous_commit = off;
SET enable_seqscan = off;
SET jit = off;
SET plan_cache_mode = force_generic_plan;
