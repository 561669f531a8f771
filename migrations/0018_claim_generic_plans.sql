-- pgbus schema, version 18: the log's claim plans its statements once per connection.
--
-- PL/pgSQL caches a plan for each statement of a function, per connection, but under the
-- default plan_cache_mode it plans a statement that has parameters afresh for each of its
-- first five runs, and only then settles on the generic plan. pgbus.claim_log runs a dozen
-- such statements, most of them only when the claim finds rows: the first claims that take
-- events after a dispatcher starts (or after a connection is opened again) spent 3 to 14 ms
-- planning, against about 0.2 ms for a claim afterwards, and the first deliveries after a
-- start waited that long (measured at 200 events/s: the first 5 to 14 deliveries took 6 to
-- 20 ms). Every statement of the function finds its rows through an index by design, so its
-- generic plan is the plan it keeps anyway: take it from the first run.
ALTER FUNCTION pgbus.claim_log(text, integer, float8, integer, pg_snapshot)
    SET plan_cache_mode = force_generic_plan;
