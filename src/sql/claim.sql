-- name: claim
-- Takes a batch of due deliveries for every local subscription at once, in one round trip.
--
-- $1 sub      text[]    subscription names, one per want
-- $2 idx      int4[]    each subscription's position in the dispatcher (returned per row)
-- $3 n        int4[]    how many to take for each subscription
-- $4 lease    float8[]  each subscription's lease, in seconds
-- $5 solo     bool      true: crash suspects (solo) only; false: ordinary work only
-- $6 owner    int4      the claiming dispatcher's id (pgbus.dispatchers)
--
-- Every picked row becomes running (state 1) under a new lease: run_at = lease expiry,
-- lease_id = this claim's transaction id, which fences its outcome and lease extensions,
-- owner = the claimer, whose death makes its leases expire at once (reap_dispatcher.sql). A
-- pending row (state 0) starts an attempt (attempts + 1). A running row whose lease expired
-- is taken back: its lost attempt was counted when it was claimed, so attempts stay, and it
-- comes back with taken_back = true for the dispatcher to decide its next state
-- (src/state.rs), written like any outcome. Nothing else is decided here. claimed_at is for
-- the admin's "last claimed at" (admin_last_claimed.sql).
--
-- The claimed deliveries and their events come back as separate rows (an event once, however
-- many of its deliveries were claimed) and are paired in memory: events are fetched by
-- primary key with id = ANY(array), never joined. Joined, the planner chose from statistics,
-- and after an ANALYZE taken while the queue was empty it switched to a hash join over a
-- sequential scan of pgbus.events, hundreds of milliseconds per claim on a large table.
--
-- A paused subscription (pgbus.subscriptions.paused_at set, by the admin API) is skipped.
WITH want AS (
    SELECT * FROM unnest($1::text[], $2::int4[], $3::int4[], $4::float8[])
        AS w(sub, idx, n, lease)
    WHERE NOT EXISTS (SELECT 1 FROM pgbus.subscriptions s
                      WHERE s.name = w.sub AND s.paused_at IS NOT NULL)
),
picked AS (
    SELECT c.id, c.state AS old_state, c.priority, c.run_at AS due, w.idx, w.lease
    FROM want w
    CROSS JOIN LATERAL (
        SELECT d.id, d.state, d.priority, d.run_at FROM pgbus.deliveries d
        WHERE d.subscription = w.sub AND d.state < 2 /* pending or running */
          AND d.solo = $5 AND d.run_at <= now()
          AND NOT d.ordered /* claim_ordered.sql takes those */
        ORDER BY d.priority, d.run_at, d.id
        LIMIT w.n
        FOR UPDATE SKIP LOCKED
    ) c
),
upd AS (
    UPDATE pgbus.deliveries d SET
        state = 1 /* running */,
        attempts = d.attempts + (p.old_state = 0)::int4,
        run_at = now() + p.lease * interval '1 second',
        lease_id = l.id,
        owner = $6,
        claimed_at = now()
    FROM picked p, (SELECT pg_current_xact_id()::text::int8 AS id) l
    WHERE d.id = ANY (ARRAY(SELECT id FROM picked)) AND d.id = p.id
    RETURNING d.id, d.event_id, p.idx, d.attempts, p.old_state = 1 AS taken_back, d.lease_id,
              p.priority, p.due, d.event_slot
)
SELECT u.id, u.idx, u.attempts, u.taken_back, u.lease_id, u.event_id, u.priority, u.due,
       NULL::int8 AS claim_id, NULL::int8 AS txid, NULL::text AS event_type, NULL::text AS source, NULL::text AS subject, NULL::text AS key,
       NULL::text AS data, NULL::text AS headers, NULL::timestamptz AS created_at,
       u.event_slot
FROM upd u
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, e.id, NULL, NULL, NULL, NULL,
       e.type, e.source, e.subject, e.key, e.data::text, e.headers::text, e.created_at,
       e.slot
-- Each distinct event slot of the batch (nearly always one) reads the ids of that slot from
-- its own partition, in pgbus.events_in_slot (migration 0021): no partition of pgbus.events
-- is opened by a claim that finds nothing.
FROM (SELECT DISTINCT u.event_slot FROM upd u WHERE NOT u.taken_back) s
CROSS JOIN LATERAL pgbus.events_in_slot(
    s.event_slot, ARRAY(SELECT u.event_id FROM upd u
                        WHERE NOT u.taken_back AND u.event_slot = s.event_slot)) e
