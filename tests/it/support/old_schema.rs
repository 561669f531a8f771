//! Older versions of the schema, made by applying their migrations as they shipped, for the
//! upgrade tests: a database as an older pgbus left it.

use sqlx::PgPool;

/// The migrations of the versions the upgrade tests start from, in order (version = index
/// + 1).
const SHIPPED: [(&str, &str); 18] = [
    (
        "0001_init.sql",
        include_str!("../../../migrations/0001_init.sql"),
    ),
    (
        "0002_lease_id.sql",
        include_str!("../../../migrations/0002_lease_id.sql"),
    ),
    (
        "0003_state_check.sql",
        include_str!("../../../migrations/0003_state_check.sql"),
    ),
    (
        "0004_dispatchers.sql",
        include_str!("../../../migrations/0004_dispatchers.sql"),
    ),
    (
        "0005_delivery_log.sql",
        include_str!("../../../migrations/0005_delivery_log.sql"),
    ),
    (
        "0006_admin.sql",
        include_str!("../../../migrations/0006_admin.sql"),
    ),
    (
        "0007_sql_publish.sql",
        include_str!("../../../migrations/0007_sql_publish.sql"),
    ),
    (
        "0008_row_change_trigger.sql",
        include_str!("../../../migrations/0008_row_change_trigger.sql"),
    ),
    (
        "0009_claims_ring.sql",
        include_str!("../../../migrations/0009_claims_ring.sql"),
    ),
    (
        "0010_ordered.sql",
        include_str!("../../../migrations/0010_ordered.sql"),
    ),
    (
        "0011_tx_handlers_dedupe_scope.sql",
        include_str!("../../../migrations/0011_tx_handlers_dedupe_scope.sql"),
    ),
    (
        "0012_operating.sql",
        include_str!("../../../migrations/0012_operating.sql"),
    ),
    (
        "0013_lane_claimed_at.sql",
        include_str!("../../../migrations/0013_lane_claimed_at.sql"),
    ),
    (
        "0014_events_ring.sql",
        include_str!("../../../migrations/0014_events_ring.sql"),
    ),
    (
        "0015_event_slot_writers.sql",
        include_str!("../../../migrations/0015_event_slot_writers.sql"),
    ),
    (
        "0016_events_rotate.sql",
        include_str!("../../../migrations/0016_events_rotate.sql"),
    ),
    (
        "0017_ordered_log.sql",
        include_str!("../../../migrations/0017_ordered_log.sql"),
    ),
    (
        "0018_claim_generic_plans.sql",
        include_str!("../../../migrations/0018_claim_generic_plans.sql"),
    ),
];

/// Makes the schema of `version` (1 to 18) in an empty database, with its bookkeeping,
/// as `migrate` of that version would have left it.
pub async fn schema_at(pool: &PgPool, version: usize) {
    assert!(
        (1..=SHIPPED.len()).contains(&version),
        "no shipped version {version}"
    );
    sqlx::raw_sql(
        "CREATE SCHEMA pgbus;
         CREATE TABLE pgbus.schema_migrations (
             version bigint PRIMARY KEY, name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now());",
    )
    .execute(pool)
    .await
    .expect("bookkeeping");
    for (n, (name, sql)) in SHIPPED.into_iter().take(version).enumerate() {
        sqlx::raw_sql(sql).execute(pool).await.expect(name);
        sqlx::query("INSERT INTO pgbus.schema_migrations (version, name) VALUES ($1, $2)")
            .bind(n as i64 + 1)
            .bind(name)
            .execute(pool)
            .await
            .expect("a version row");
    }
}
