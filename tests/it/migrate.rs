//! `pgbus::migrate` against a real PostgreSQL.

use std::collections::BTreeSet;
use std::sync::Barrier;

use sqlx::PgPool;

use crate::support::database::{db, empty_db};

/// The `(version, name)` rows `pgbus.schema_migrations` must hold: one per file in
/// `migrations/`, named `NNNN_description.sql`.
fn expected_migrations() -> Vec<(i64, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    let mut expected: Vec<(i64, String)> = std::fs::read_dir(dir)
        .expect("migrations directory")
        .map(|entry| entry.expect("migrations entry").file_name())
        .map(|name| name.into_string().expect("UTF-8 file name"))
        .filter(|name| name.ends_with(".sql"))
        .map(|name| {
            let version = name
                .split('_')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("migration file {name} lacks a NNNN_ version prefix"));
            (version, name)
        })
        .collect();
    expected.sort();
    assert!(!expected.is_empty(), "no migrations found in {dir}");
    expected
}

async fn applied_migrations(pool: &PgPool) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT version, name FROM pgbus.schema_migrations ORDER BY version")
        .fetch_all(pool)
        .await
        .expect("reading pgbus.schema_migrations")
}

async fn tables_in(pool: &PgPool, schema: &str) -> BTreeSet<String> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .expect("listing tables")
    .into_iter()
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_creates_the_pgbus_schema_on_a_fresh_database() {
    let db = empty_db().await;
    assert!(tables_in(db.pool(), "pgbus").await.is_empty());

    pgbus::migrate(db.pool()).await.expect("migrate");

    let tables = tables_in(db.pool(), "pgbus").await;
    for table in ["events", "subscriptions", "deliveries", "schema_migrations"] {
        assert!(
            tables.contains(table),
            "pgbus.{table} missing; have {tables:?}"
        );
    }
    assert_eq!(applied_migrations(db.pool()).await, expected_migrations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_twice_is_a_no_op() {
    let db = empty_db().await;
    pgbus::migrate(db.pool()).await.expect("first migrate");
    let applied_at = |pool: PgPool| async move {
        sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>(
            "SELECT applied_at FROM pgbus.schema_migrations ORDER BY version",
        )
        .fetch_all(&pool)
        .await
        .expect("reading applied_at")
    };
    let before = applied_at(db.pool().clone()).await;

    pgbus::migrate(db.pool()).await.expect("second migrate");

    assert_eq!(applied_migrations(db.pool()).await, expected_migrations());
    assert_eq!(
        applied_at(db.pool().clone()).await,
        before,
        "rows were rewritten"
    );
}

/// Four migrators at once, like four application instances starting together: each on a
/// thread and runtime of its own with its own pool, released together by a barrier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_from_separate_pools_apply_each_version_once() {
    const MIGRATORS: usize = 4;
    let db = empty_db().await;
    let url = db.url().to_owned();
    let results = tokio::task::spawn_blocking(move || {
        let barrier = Barrier::new(MIGRATORS);
        std::thread::scope(|scope| {
            let migrators: Vec<_> = (0..MIGRATORS)
                .map(|_| {
                    scope.spawn(|| {
                        let runtime = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .expect("runtime");
                        runtime.block_on(async {
                            let pool = PgPool::connect(&url).await.expect("connecting a pool");
                            barrier.wait();
                            let result = pgbus::migrate(&pool).await;
                            pool.close().await;
                            result
                        })
                    })
                })
                .collect();
            migrators
                .into_iter()
                .map(|migrator| migrator.join().expect("migrator thread"))
                .collect::<Vec<_>>()
        })
    })
    .await
    .expect("migrators");
    for result in results {
        result.expect("concurrent migrate");
    }
    assert_eq!(applied_migrations(db.pool()).await, expected_migrations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_leaves_the_host_apps_sqlx_migrations_alone() {
    let db = empty_db().await;
    pgbus::migrate(db.pool()).await.expect("migrate");
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(db.pool())
            .await
            .expect("query");
    assert!(!exists, "pgbus created public._sqlx_migrations");

    // A host application that uses sqlx migrations of its own keeps them as they were.
    let db = empty_db().await;
    sqlx::raw_sql(
        "CREATE TABLE _sqlx_migrations (version bigint PRIMARY KEY, description text NOT NULL);
         INSERT INTO _sqlx_migrations VALUES (20240101000000, 'host app');",
    )
    .execute(db.pool())
    .await
    .expect("creating the host's migrations table");
    pgbus::migrate(db.pool()).await.expect("migrate");
    let host_rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT version, description FROM public._sqlx_migrations")
            .fetch_all(db.pool())
            .await
            .expect("reading the host's migrations");
    assert_eq!(host_rows, [(20240101000000, "host app".to_owned())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_databases_are_migrated_and_isolated() {
    let (a, b) = (db().await, db().await);
    assert_ne!(a.name(), b.name());
    assert_eq!(applied_migrations(a.pool()).await, expected_migrations());
    assert_eq!(applied_migrations(b.pool()).await, expected_migrations());

    sqlx::query("CREATE TABLE only_in_a ()")
        .execute(a.pool())
        .await
        .expect("create table");
    assert!(tables_in(a.pool(), "public").await.contains("only_in_a"));
    assert!(!tables_in(b.pool(), "public").await.contains("only_in_a"));

    // Running the migration on an already migrated copy changes nothing.
    pgbus::migrate(b.pool()).await.expect("migrate");
    assert_eq!(applied_migrations(b.pool()).await, expected_migrations());
}
