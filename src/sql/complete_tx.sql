-- name: complete_tx
-- The completion of a delivery run by a transactional handler, written in the handler's own
-- transaction, fenced by the delivery's lease: the handler's writes commit only with it. One
-- row must be written; none means the delivery was taken over, and the caller rolls back.
--
-- A row of pgbus.deliveries with a lease of its own (a retry, a scheduled or taken back
-- delivery, or a detached log row) is fenced like complete.sql: still running (state 1)
-- under this lease id; it is deleted, or updated to done when done rows are retained.
--
-- A log row in a batch gets a durable done marker: a done row of pgbus.deliveries under the
-- log row's id, written only while its batch is open under this lease id (FOR KEY SHARE: the
-- takeover sweep, detach_claims.sql and complete_log.sql lock the batch FOR UPDATE, so they
-- wait for this transaction, or skip it). Every path that later acts on the batch's rows
-- without an outcome skips a row that has a row of pgbus.deliveries (sweep_claims.sql,
-- detach_claims.sql and complete_log.sql insert ON CONFLICT (id) DO NOTHING;
-- pgbus.log_unfinished() leaves such rows out), so a marked row never runs again. A marker
-- not retained carries its batch (tx_batch) and is deleted once the batch is closed
-- (prune_tx_done.sql). When the batch was detached after the handler began, the row is a
-- running row of pgbus.deliveries that this statement's snapshot may not see yet: the
-- caller runs it once more (a new snapshot) before giving up.
--
-- $1 id            int8
-- $2 lease         int8
-- $3 batch         int8     the log row's batch (pgbus.claims id), or null
-- $4 retain        bool     keep done rows (as done), else delete them
-- $5 done          int2     the done state
-- $6 event_id      uuid     the marker's columns: event, subscription, priority, key
-- $7 subscription  text
-- $8 priority      int2
-- $9 key           text
-- $10 event_slot    int2  the events ring slot of the event (migration 0014)
WITH batch AS (
    SELECT c.id FROM pgbus.claims c
    -- Open, tested as in close_claims.sql: found by claims_id, not claims_open.
    WHERE c.id = $3 AND c.lease_id = $2
      AND (c.closed_at IS NULL) IS NOT FALSE
    FOR KEY SHARE
),
del AS (
    DELETE FROM pgbus.deliveries d
    WHERE NOT $4 AND d.id = $1 AND d.state = 1 /* running */ AND d.lease_id = $2
    RETURNING 1
),
upd AS (
    UPDATE pgbus.deliveries d
    SET state = $5, run_at = now(), finished_at = now(), solo = false, lease_id = NULL
    WHERE $4 AND d.id = $1 AND d.state = 1 /* running */ AND d.lease_id = $2
    RETURNING 1
),
marker AS (
    INSERT INTO pgbus.deliveries (id, event_id, subscription, state, priority, run_at, attempts,
                                  key, finished_at, tx_batch, event_slot)
    OVERRIDING SYSTEM VALUE
    SELECT $1, $6, $7, $5, $8, now(), 1, $9, now(), CASE WHEN NOT $4 THEN b.id END, $10
    FROM batch b
    ON CONFLICT (id) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM del) + (SELECT count(*) FROM upd) + (SELECT count(*) FROM marker)
