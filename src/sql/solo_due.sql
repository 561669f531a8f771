-- name: solo_due
-- Whether any crash suspect (a delivery whose previous lease expired) of these
-- subscriptions is due. Paused subscriptions are left out, as the claim skips them.
--
-- $1 subs  text[]  subscription names
SELECT EXISTS (
    SELECT 1 FROM pgbus.deliveries d
    WHERE d.subscription = ANY ($1) AND d.state < 2 /* pending or running */
      AND d.solo AND d.run_at <= now()
      AND NOT EXISTS (SELECT 1 FROM pgbus.subscriptions s
                      WHERE s.name = d.subscription AND s.paused_at IS NOT NULL)
)
