//! The metrics gauges' count of the delivery log (`pgbus.log_gauges`, migration 0022), per
//! pack: the same pending and running deliveries as `pgbus.all_deliveries` (one row per
//! delivery), through claims that stop inside packs, open batches, late transactions and
//! two lanes, and the same oldest pending delivery.

use chrono::{DateTime, Utc};
use pgbus::{NewEvent, Publisher};
use serde_json::json;
use sqlx::PgPool;

use crate::support::database::db;
use crate::support::dispatcher::register;
use crate::support::publishing::publish_n;

/// (pending, running, oldest pending) of `sub`, per pack and per delivery.
async fn both(
    pool: &PgPool,
    sub: &str,
) -> (
    (i64, i64, Option<DateTime<Utc>>),
    (i64, i64, Option<DateTime<Utc>>),
) {
    let packed =
        sqlx::query_as("SELECT pending, running, oldest FROM pgbus.log_gauges(ARRAY[$1::text])")
            .bind(sub)
            .fetch_one(pool)
            .await
            .expect("the gauges by pack");
    let rows = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE state = 0), count(*) FILTER (WHERE state = 1),
                min(run_at) FILTER (WHERE state = 0)
         FROM pgbus.all_deliveries WHERE subscription = $1",
    )
    .bind(sub)
    .fetch_one(pool)
    .await
    .expect("the gauges by row");
    (packed, rows)
}

/// One claim of at most `n` deliveries of `sub` by the log's claim function: its batch
/// stays open (running).
async fn claim(pool: &PgPool, sub: &str, n: i32) -> usize {
    let rows: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM pgbus.claim_log($1, $2, 30, 0, pg_current_snapshot())")
            .bind(sub)
            .bind(n)
            .fetch_all(pool)
            .await
            .expect("claiming");
    rows.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_counted_by_pack_matches_the_log_counted_by_row() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("g", &["g.*"])]).await;
    let publisher = Publisher::new("gauges-tests").expect("publisher");
    let (packed, rows) = both(pool, "g").await;
    assert_eq!(packed, (0, 0, None), "nothing published");
    assert_eq!(packed, rows);

    // A: 600 at priority 0 and 20 at priority 3 (two lanes); a claim of 100 stops inside
    // the first pack and stays open.
    publish_n(pool, "g.a", 600).await;
    let urgent: Vec<NewEvent> = (0..20)
        .map(|i| NewEvent::raw("g.u", json!({ "i": i })).priority(3))
        .collect();
    publisher
        .publish_all(&mut pool.acquire().await.unwrap(), &urgent)
        .await
        .expect("publish urgent");
    assert_eq!(claim(pool, "g", 100).await, 100);
    let (packed, rows) = both(pool, "g").await;
    assert_eq!(
        (packed.0, packed.1),
        (520, 100),
        "after a claim inside a pack"
    );
    assert_eq!(packed, rows);

    // B stays open while C commits and claims read past it; then B commits late.
    let late: Vec<NewEvent> = (0..300)
        .map(|i| NewEvent::raw("g.late", json!({ "i": i })))
        .collect();
    let mut open = pool.begin().await.expect("begin");
    publisher
        .publish_all(&mut open, &late)
        .await
        .expect("publish B");
    publish_n(pool, "g.c", 50).await;
    assert!(claim(pool, "g", 700).await > 0);
    let (packed, rows) = both(pool, "g").await;
    assert_eq!(packed, rows, "with a transaction in progress");
    open.commit().await.expect("commit B");
    let (packed, rows) = both(pool, "g").await;
    assert_eq!(packed, rows, "with a late transaction");
    assert!(packed.0 >= 300, "B pending: {packed:?}");
    assert_eq!(claim(pool, "g", 120).await, 120);
    let (after, rows) = both(pool, "g").await;
    assert_eq!(after, rows, "after a claim inside the late packs");
    assert_eq!(
        (after.0, after.1),
        (packed.0 - 120, packed.1 + 120),
        "the claim moved 120 from pending to running"
    );
}
