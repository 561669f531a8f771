-- name: complete_log
-- Writes the outcomes of log rows, fenced by their batch's lease: only batches still open
-- under one of the given lease ids are written to (FOR UPDATE serialises with the takeover
-- sweep, which closes expired batches). A row done and not retained needs no write; every
-- other outcome (a retry, a dead letter, a retained done row, a release) becomes a row of
-- pgbus.deliveries under the log row's id. Batches whose rows all have their outcome now are
-- closed; open ones whose first rows all have theirs now start after them. Returns the batches that were still held (the others' outcomes were dropped: their
-- lease had passed to another dispatcher).
--
-- $1 batches     int8[]    the batches written to
-- $2 leases      int8[]    their distinct lease ids
-- $3 closing     int8[]    the batches closed by this write
-- $4 ids         int8[]    rows going to pgbus.deliveries
-- $5 of_batch    int8[]    each row's batch
-- $6 event_ids   uuid[]
-- $7 subs        text[]
-- $8 states      int2[]    target state (0 pending, 2 done, 3 dead)
-- $9 priorities  int2[]
-- $10 delays     float8[]  run_at = now() + delay seconds
-- $11 attempts   int4[]    attempts counted (1, or 0 when the attempt never ran)
-- $12 keys       text[]
-- $13 errors     text[]
-- $14 solos      bool[]
-- $15 advanced   int8[]    open batches whose first rows all have their outcome now: the batch
--                          shrinks to the rest, so that a takeover runs only those again
-- $16 from_txids int8[]    the new start of each, by its position in $15 (exclusive)
-- $17 from_ids   int8[]
-- $18 durations  float8[]  the handler's duration in seconds per row of $4, null when none ran
-- $19 event_slots int2[]   the events ring slot of each row's event (migration 0014)
-- $20 seqs       int8[]    each row's publish order when it is a keyed row of an ordered
--                          subscription (migration 0017), else null: its row is ordered
WITH fence AS (
    SELECT c.id FROM pgbus.claims c
    -- Open, tested as in close_claims.sql: found by claims_id, not claims_open.
    WHERE c.id = ANY ($1::int8[]) AND c.lease_id = ANY ($2::int8[])
      AND (c.closed_at IS NULL) IS NOT FALSE
    FOR UPDATE
),
closed AS (
    UPDATE pgbus.claims c SET closed_at = now()
    WHERE c.id = ANY ($3::int8[]) AND c.id IN (SELECT id FROM fence)
    RETURNING c.id
),
shrunk AS (
    UPDATE pgbus.claims c
    SET from_txid = (($16::int8[])[array_position($15::int8[], c.id)])::text::xid8,
        from_id = ($17::int8[])[array_position($15::int8[], c.id)]
    WHERE c.id = ANY ($15::int8[]) AND c.id IN (SELECT id FROM fence)
      AND NOT c.id = ANY ($3::int8[])
    RETURNING c.id
),
side AS (
    INSERT INTO pgbus.deliveries (id, event_id, subscription, state, priority, run_at, attempts,
                                  key, last_error, finished_at, solo, attempt_duration,
                                  event_slot, ordered, seq)
    OVERRIDING SYSTEM VALUE
    SELECT o.id, o.event_id, o.sub, o.state, o.priority, now() + o.delay * interval '1 second',
           o.attempts, o.key, o.error, CASE WHEN o.state >= 2 THEN now() END, o.solo,
           o.duration * interval '1 second', o.event_slot, o.seq IS NOT NULL, o.seq
    FROM unnest($4::int8[], $5::int8[], $6::uuid[], $7::text[], $8::int2[], $9::int2[],
                $10::float8[], $11::int4[], $12::text[], $13::text[], $14::bool[],
                $18::float8[], $19::int2[], $20::int8[])
        AS o(id, batch, event_id, sub, state, priority, delay, attempts, key, error, solo,
             duration, event_slot, seq)
    WHERE o.batch IN (SELECT id FROM fence)
    ON CONFLICT (id) DO NOTHING
    RETURNING 1
)
SELECT ARRAY(SELECT id FROM fence) AS held, (SELECT count(*) FROM closed) AS closed,
       (SELECT count(*) FROM side) AS written
