-- name: dedupe_originals
-- The events holding the given dedupe keys (the originals of duplicates just refused).
--
-- $1 keys  text[]
SELECT dedupe_key, id FROM pgbus.events WHERE dedupe_key = ANY ($1)
