-- name: admin_blocked_keys
-- The keys of an ordered subscription that cannot run now, by key (C order): those whose
-- head, the oldest unfinished delivery (lowest seq), is dead (under the blocking dead-key
-- policy) or pending and not due yet (retrying, or scheduled). A key whose head is running
-- is busy, not blocked. With each: the head and how many deliveries of the key wait behind
-- it. Reads the subscription's part of the index deliveries_ordered.
--
-- $1 subscription  text
-- $2 after         text  keys after this one (C order); null: from the first
-- $3 limit         int8
SELECT h.key, h.id, h.state, h.run_at, h.attempts, h.last_error,
       (SELECT count(*) FROM pgbus.deliveries w
        WHERE w.subscription = $1 AND w.ordered AND w.state <> 2
          AND (w.key COLLATE "C") = h.key AND w.state = 0 AND w.seq > h.seq) AS waiting
FROM (
    SELECT DISTINCT ON ((d.key COLLATE "C")) (d.key COLLATE "C") AS key, d.id, d.state,
           d.run_at, d.attempts, d.last_error, d.seq
    FROM pgbus.deliveries d
    JOIN pgbus.subscriptions s ON s.name = d.subscription
    WHERE d.subscription = $1 AND d.ordered AND d.state <> 2
      AND (d.state <> 3 /* dead */ OR s.dead_blocks_key)
      AND ($2::text IS NULL OR (d.key COLLATE "C") > $2)
    ORDER BY (d.key COLLATE "C"), d.seq
) h
WHERE h.state = 3 /* dead */ OR (h.state = 0 /* pending */ AND h.run_at > now())
ORDER BY h.key
LIMIT $3
