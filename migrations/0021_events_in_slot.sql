-- pgbus schema, version 21: a claim fetches its events through pgbus.events_in_slot.
--
-- A claim returns each claimed delivery's event, read from the events ring's partition that
-- holds it (migration 0014). Until now the claim statements read them with a lateral
-- subquery over pgbus.events pruned at run time: the executor opened and set up an index scan
-- of every partition of pgbus.events on every claim, also on the claims that find nothing
-- (most of an idle dispatcher's claims), and the statement locked them all. Inside this
-- function the slot is a parameter known when its plan starts, so only that slot's partition
-- is set up, and only when the claim has events of that slot to read. Measured with pgbench
-- (prepared, synchronous_commit off): an empty claim_log 0.14 -> 0.10 ms, a claim of one
-- delivery about 10% less.
--
-- Additive: dispatchers of version 20 keep their own statements and work unchanged.

CREATE FUNCTION pgbus.events_in_slot(p_slot smallint, p_ids uuid[])
RETURNS SETOF pgbus.events
LANGUAGE plpgsql STABLE AS $f$
BEGIN
    RETURN QUERY SELECT e.* FROM pgbus.events e WHERE e.slot = p_slot AND e.id = ANY (p_ids);
END
$f$;

-- A generic plan, pruned when it starts: no planning per call, and one partition set up.
ALTER FUNCTION pgbus.events_in_slot(smallint, uuid[]) SET plan_cache_mode = force_generic_plan;
