//! Schema migrations, kept in the `pgbus` schema with their own bookkeeping table.

use sqlx::PgPool;

use crate::error::{Error, Result};
use crate::sql;

/// One migration file shipped with the crate.
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_init.sql",
        sql: include_str!("../migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "0002_lease_id.sql",
        sql: include_str!("../migrations/0002_lease_id.sql"),
    },
    Migration {
        version: 3,
        name: "0003_state_check.sql",
        sql: include_str!("../migrations/0003_state_check.sql"),
    },
    Migration {
        version: 4,
        name: "0004_dispatchers.sql",
        sql: include_str!("../migrations/0004_dispatchers.sql"),
    },
    Migration {
        version: 5,
        name: "0005_delivery_log.sql",
        sql: include_str!("../migrations/0005_delivery_log.sql"),
    },
    Migration {
        version: 6,
        name: "0006_admin.sql",
        sql: include_str!("../migrations/0006_admin.sql"),
    },
    Migration {
        version: 7,
        name: "0007_sql_publish.sql",
        sql: include_str!("../migrations/0007_sql_publish.sql"),
    },
    Migration {
        version: 8,
        name: "0008_row_change_trigger.sql",
        sql: include_str!("../migrations/0008_row_change_trigger.sql"),
    },
    Migration {
        version: 9,
        name: "0009_claims_ring.sql",
        sql: include_str!("../migrations/0009_claims_ring.sql"),
    },
    Migration {
        version: 10,
        name: "0010_ordered.sql",
        sql: include_str!("../migrations/0010_ordered.sql"),
    },
    Migration {
        version: 11,
        name: "0011_tx_handlers_dedupe_scope.sql",
        sql: include_str!("../migrations/0011_tx_handlers_dedupe_scope.sql"),
    },
    Migration {
        version: 12,
        name: "0012_operating.sql",
        sql: include_str!("../migrations/0012_operating.sql"),
    },
    Migration {
        version: 13,
        name: "0013_lane_claimed_at.sql",
        sql: include_str!("../migrations/0013_lane_claimed_at.sql"),
    },
    Migration {
        version: 14,
        name: "0014_events_ring.sql",
        sql: include_str!("../migrations/0014_events_ring.sql"),
    },
    Migration {
        version: 15,
        name: "0015_event_slot_writers.sql",
        sql: include_str!("../migrations/0015_event_slot_writers.sql"),
    },
    Migration {
        version: 16,
        name: "0016_events_rotate.sql",
        sql: include_str!("../migrations/0016_events_rotate.sql"),
    },
    Migration {
        version: 17,
        name: "0017_ordered_log.sql",
        sql: include_str!("../migrations/0017_ordered_log.sql"),
    },
    Migration {
        version: 18,
        name: "0018_claim_generic_plans.sql",
        sql: include_str!("../migrations/0018_claim_generic_plans.sql"),
    },
    Migration {
        version: 19,
        name: "0019_log_packs.sql",
        sql: include_str!("../migrations/0019_log_packs.sql"),
    },
    Migration {
        version: 20,
        name: "0020_claim_fast_path.sql",
        sql: include_str!("../migrations/0020_claim_fast_path.sql"),
    },
    Migration {
        version: 21,
        name: "0021_events_in_slot.sql",
        sql: include_str!("../migrations/0021_events_in_slot.sql"),
    },
    Migration {
        version: 22,
        name: "0022_log_gauges.sql",
        sql: include_str!("../migrations/0022_log_gauges.sql"),
    },
    Migration {
        version: 23,
        name: "0023_claim_events.sql",
        sql: include_str!("../migrations/0023_claim_events.sql"),
    },
    Migration {
        version: 24,
        name: "0024_slot_needed_by_packs.sql",
        sql: include_str!("../migrations/0024_slot_needed_by_packs.sql"),
    },
    Migration {
        version: 25,
        name: "0025_claim_lane_zero.sql",
        sql: include_str!("../migrations/0025_claim_lane_zero.sql"),
    },
];

/// The schema version this build of pgbus migrates to (the last migration's).
pub(crate) fn known_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Arbitrary but fixed key for the advisory lock that serialises concurrent migrators.
const MIGRATE_LOCK_KEY: i64 = 0x7067_6275_735f_6d67; // "pgbus_mg"

/// Creates or upgrades the `pgbus` schema.
///
/// Safe to call on every start, from any number of processes at once: a transaction-level
/// advisory lock serialises migrators and applied versions are recorded in
/// `pgbus.schema_migrations`, apart from the host application's own migrations table.
///
/// Works through a transaction-mode connection pooler (PgBouncer, Supavisor): everything
/// runs in one transaction, and its statements are unnamed (no prepared statement outlives
/// the transaction).
///
/// # Errors
///
/// [`Error::Migrate`] if a migration fails (nothing of it is kept), [`Error::SchemaTooNew`]
/// if the database was migrated by a newer pgbus.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    let mut tx = pool.begin().await?;
    // Unnamed statements: a named one would stay on a pooler's server connection.
    sqlx::query(sql::MIGRATE_LOCK)
        .persistent(false)
        .bind(MIGRATE_LOCK_KEY)
        .execute(&mut *tx)
        .await?;
    sqlx::Executor::execute(&mut *tx, sql::MIGRATE_BOOKKEEPING).await?;
    let applied: i64 = sqlx::query_scalar(sql::MIGRATE_APPLIED)
        .persistent(false)
        .fetch_one(&mut *tx)
        .await?;
    let known = known_version();
    if applied > known {
        return Err(Error::SchemaTooNew {
            found: applied,
            known,
        });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > applied) {
        // A plain `&str` runs through the simple protocol, which takes several statements;
        // unlike `raw_sql`, its future is `Send` for every lifetime (usable in tokio::spawn).
        sqlx::Executor::execute(&mut *tx, m.sql)
            .await
            .map_err(|source| Error::Migrate {
                version: m.version,
                name: m.name,
                source,
            })?;
        sqlx::query(sql::MIGRATE_RECORD)
            .persistent(false)
            .bind(m.version)
            .bind(m.name)
            .execute(&mut *tx)
            .await?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "pgbus migration applied"
        );
    }
    tx.commit().await?;
    Ok(())
}
