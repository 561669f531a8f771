-- name: migrate_record
-- $1 version  int8
-- $2 name     text
INSERT INTO pgbus.schema_migrations (version, name) VALUES ($1, $2)
