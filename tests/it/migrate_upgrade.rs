//! Upgrading a version-2 schema (the last release's) that holds deliveries in every state:
//! after `migrate`, every one of them finishes as it would have.

use pgbus::Subscription;
use sqlx::PgPool;

use crate::support::database::{count, empty_db};
use crate::support::deliveries::delivery_count;
use crate::support::dispatcher::{dispatcher, quick_retry, start, stop};
use crate::support::journal::Journal;
use crate::support::old_schema::schema_at;
use crate::support::states::{DEAD, PENDING, RUNNING, State};
use crate::support::wait::{SOON, wait_until};

/// One event of type `up.<name>` and its delivery in `state`, as a version-2 dispatcher
/// left it.
async fn delivery(pool: &PgPool, name: &str, state: State, attempts: i32, run_at_ms: i64) {
    sqlx::query(
        "WITH e AS (
             INSERT INTO pgbus.events (id, type, source, data)
             VALUES (gen_random_uuid(), 'up.' || $1, 'v2', jsonb_build_object('name', $1))
             RETURNING id)
         INSERT INTO pgbus.deliveries (event_id, subscription, state, attempts, run_at,
                                       lease_id, last_error, finished_at)
         SELECT e.id, 'upgrade', $2, $3, now() + $4 * interval '1 millisecond',
                CASE WHEN $2 = 1 THEN 12345 END,
                CASE WHEN $3 > 1 THEN 'failed in version 2' END,
                CASE WHEN $2 = 3 THEN now() END
         FROM e",
    )
    .bind(name)
    .bind(state)
    .bind(attempts)
    .bind(run_at_ms)
    .execute(pool)
    .await
    .expect("a version-2 delivery");
}

/// The newest migration the crate ships: the highest number of its files (`NNNN_name.sql`;
/// numbers are reserved ahead, so there may be gaps).
fn migration_files() -> i64 {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    let files = std::fs::read_dir(dir).expect("the migrations directory");
    files
        .filter_map(|f| {
            let name = f.ok()?.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".sql")?
                .split('_')
                .next()?
                .parse::<i64>()
                .ok()
        })
        .max()
        .expect("at least one migration")
}

#[tokio::test]
async fn a_version_2_schema_with_deliveries_in_flight_upgrades_and_they_all_finish() {
    let db = empty_db().await;
    let pool = db.pool();
    schema_at(pool, 2).await;
    sqlx::query(
        "INSERT INTO pgbus.subscriptions (name, patterns, like_patterns)
         VALUES ('upgrade', ARRAY['up.*'], ARRAY['up.%'])",
    )
    .execute(pool)
    .await
    .expect("the subscription");
    delivery(pool, "pending", PENDING, 0, 0).await;
    // Claimed by a version-2 dispatcher that crashed: its lease has expired.
    delivery(pool, "running", RUNNING, 1, -1_000).await;
    // Failed twice, due again shortly.
    delivery(pool, "retrying", PENDING, 2, 300).await;
    delivery(pool, "dead", DEAD, 5, 0).await;

    pgbus::migrate(pool).await.expect("migrate from version 2");
    assert_eq!(
        count(pool, "SELECT max(version) FROM pgbus.schema_migrations").await,
        migration_files(),
        "every migration applied"
    );
    let bad = sqlx::query("UPDATE pgbus.deliveries SET state = 7 WHERE attempts = 0")
        .execute(pool)
        .await;
    assert!(bad.is_err(), "the state CHECK constraint holds");

    let journal = Journal::new();
    let handle =
        start(dispatcher(pool).subscribe(
            Subscription::raw("upgrade", ["up.*"], journal.handler()).retry(quick_retry()),
        ))
        .await;
    wait_until("every live delivery to finish", SOON, || async {
        delivery_count(pool).await == 1
    })
    .await;
    stop(pool, handle).await;

    assert_eq!(
        journal.sorted_names_and_attempts(),
        [
            ("pending".to_owned(), 1),
            ("retrying".to_owned(), 3),
            // The lost attempt 1 counted; taken back and run as attempt 2.
            ("running".to_owned(), 2),
        ]
    );
    let (state, attempts): (State, i32) =
        sqlx::query_as("SELECT state, attempts FROM pgbus.deliveries")
            .fetch_one(pool)
            .await
            .expect("the dead delivery");
    assert_eq!((state, attempts), (DEAD, 5), "a dead letter stays dead");
}
