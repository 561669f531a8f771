-- name: migrate_applied
-- The highest migration version applied.
SELECT coalesce(max(version), 0) FROM pgbus.schema_migrations
