-- name: dead_tuples
-- Dead tuples in pgbus.deliveries, as the statistics collector counts them.
SELECT coalesce(n_dead_tup, 0) FROM pg_stat_user_tables
WHERE schemaname = 'pgbus' AND relname = 'deliveries'
