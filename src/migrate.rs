//! Schema migrations, kept in the `pgbus` schema with their own bookkeeping table.

use sqlx::PgPool;

use crate::error::{Error, Result};

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
];

/// Arbitrary but fixed key for the advisory lock that serialises concurrent migrators.
const MIGRATE_LOCK_KEY: i64 = 0x7067_6275_735f_6d67; // "pgbus_mg"

/// Creates or upgrades the `pgbus` schema.
///
/// Safe to call on every start, from any number of processes at once: a transaction-level
/// advisory lock serialises migrators and applied versions are recorded in
/// `pgbus.schema_migrations`, apart from the host application's own migrations table.
///
/// # Errors
///
/// [`Error::Migrate`] if a migration fails (nothing of it is kept), [`Error::SchemaTooNew`]
/// if the database was migrated by a newer pgbus.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATE_LOCK_KEY)
        .execute(&mut *tx)
        .await?;
    sqlx::query("CREATE SCHEMA IF NOT EXISTS pgbus")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS pgbus.schema_migrations (
            version    bigint      PRIMARY KEY,
            name       text        NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .execute(&mut *tx)
    .await?;
    let applied: i64 =
        sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM pgbus.schema_migrations")
            .fetch_one(&mut *tx)
            .await?;
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
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
        sqlx::query("INSERT INTO pgbus.schema_migrations (version, name) VALUES ($1, $2)")
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
