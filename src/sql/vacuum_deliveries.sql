-- name: vacuum_deliveries
-- Never truncates: truncation takes an ACCESS EXCLUSIVE lock that stalls claims.
VACUUM (SKIP_LOCKED, TRUNCATE false) pgbus.deliveries
