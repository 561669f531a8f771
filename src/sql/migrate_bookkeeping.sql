-- name: migrate_bookkeeping
-- The schema and pgbus's own migrations table, apart from the application's.
CREATE SCHEMA IF NOT EXISTS pgbus;
CREATE TABLE IF NOT EXISTS pgbus.schema_migrations (
    version    bigint      PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
