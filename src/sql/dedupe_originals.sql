-- name: dedupe_originals
-- The events holding the given dedupe keys in their scopes (the originals of duplicates just
-- refused).
--
-- $1 scopes  text[]
-- $2 keys    text[]  by position in $1
SELECT d.scope, d.key, d.event_id
FROM unnest($1::text[], $2::text[]) AS k(scope, key)
JOIN pgbus.dedupe_keys d ON d.scope = k.scope AND d.key = k.key
