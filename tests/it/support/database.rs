//! Test databases, pools, and queries that return one number.

use std::time::Duration;

use pgbus_testing::TestDatabase;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};

/// A fresh, migrated database of its own (see `pgbus_testing::TestDatabase::create`).
pub async fn db() -> TestDatabase {
    TestDatabase::create()
        .await
        .unwrap_or_else(|e| panic!("creating a test database failed: {e}"))
}

/// A fresh database without the pgbus schema.
pub async fn empty_db() -> TestDatabase {
    TestDatabase::create_empty()
        .await
        .unwrap_or_else(|e| panic!("creating an empty test database failed: {e}"))
}

/// A pool that connects when first used, at most `max` connections, and gives up on a
/// connection after `acquire_timeout` (it retries connecting until then, so a server
/// outage shorter than that is not seen at all).
pub fn lazy_pool(url: &str, max: u32, acquire_timeout: Duration) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(acquire_timeout)
        .connect_lazy(url)
        .expect("a lazy pool")
}

/// A connection of its own to `pool`'s database, outside the pool, with the settings of the
/// dispatcher's own connections (`src/sql/session_setup.sql`).
pub async fn dispatcher_connection(pool: &PgPool) -> PgConnection {
    let mut conn = PgConnection::connect_with(&pool.connect_options())
        .await
        .expect("connection");
    (conn.execute(include_str!("../../../src/sql/session_setup.sql")))
        .await
        .expect("the dispatcher's session settings");
    conn
}

/// Runs a query returning one `bigint` (a `SELECT count(*) ...`), panicking on error.
pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Like [`count`], but `None` if the query fails (e.g. the server is down).
pub async fn try_count(pool: &PgPool, sql: &str) -> Option<i64> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .ok()
}

/// (events, deliveries, subscriptions) row counts, read in one statement.
pub async fn table_counts(pool: &PgPool) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM pgbus.events),
                (SELECT count(*) FROM pgbus.all_deliveries),
                (SELECT count(*) FROM pgbus.subscriptions)",
    )
    .fetch_one(pool)
    .await
    .expect("counting pgbus rows")
}
