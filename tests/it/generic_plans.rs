//! The hot statements keep one generic plan per connection: PostgreSQL plans a prepared
//! statement five times for its parameters' values, then keeps its generic plan only if that
//! does not look dearer than those; pgbus's statements hide the values from the planner so
//! that it does (src/sql.rs), instead of being planned again on every call. The publish
//! statements are run through the API. The dispatcher's own connections go further
//! (src/dispatcher/connection.rs): every statement keeps its generic plan from its first
//! run; the claims, the close, the outcomes' write and the sweep of expired batches are run
//! here from their files with the dispatcher's parameter types.

use pgbus::{NewEvent, Publisher};
use serde_json::json;
use sqlx::{Connection, PgConnection, Row};

use crate::support::database::{db, dispatcher_connection};
use crate::support::dispatcher::register;
use crate::support::publishing::publish_n;

/// The generic and custom plans so far of this connection's prepared statement `name`.
async fn plans(conn: &mut PgConnection, name: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements
         WHERE statement LIKE '-- name: ' || $1 || '\n%'",
    )
    .bind(name)
    .fetch_one(conn)
    .await
    .expect("the statement is prepared on this connection")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_statements_are_planned_once_per_connection() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("audit", &["*"])]).await;
    let p = Publisher::new("plans-tests").expect("publisher");
    let mut conn = pool.acquire().await.expect("connection");

    for i in 0..12 {
        let plain = NewEvent::raw("plan.plain", json!({ "i": i }));
        p.publish(&mut conn, plain).await.expect("publish");
        let keyed = NewEvent::raw("plan.keyed", json!({ "i": i })).dedupe_key(format!("k{i}"));
        p.publish(&mut conn, keyed)
            .await
            .expect("publish with a dedupe key");
    }
    for name in ["publish_plain", "publish"] {
        let (generic, custom) = plans(&mut conn, name).await;
        assert_eq!(
            (generic, custom),
            (7, 5),
            "{name}: (generic, custom) plans of 12 calls"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dispatchers_statements_are_planned_once_per_connection() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("audit", &["*"])]).await;
    // A connection with the dispatcher's settings (no sequential scans, which made the
    // generic plan of the outcomes' write look dearer than its custom ones).
    let mut conn = dispatcher_connection(pool).await;
    // Retries in pgbus.deliveries, with statistics: the custom plans of a one-row write find
    // it by one index probe, which looked cheaper than the generic plan's bitmap scan.
    sqlx::raw_sql(
        "INSERT INTO pgbus.deliveries (event_id, subscription, state, run_at)
         SELECT gen_random_uuid(), 'audit', 0, now() + interval '1 hour'
         FROM generate_series(1, 1000);
         ANALYZE pgbus.deliveries",
    )
    .execute(&mut conn)
    .await
    .expect("pending retries");

    for _ in 0..12 {
        sqlx::query(include_str!("../../src/sql/claim_log.sql"))
            .bind(vec!["audit"])
            .bind(vec![0_i32])
            .bind(vec![500_i32])
            .bind(vec![30.0_f64])
            .bind(0_i32)
            .fetch_all(&mut conn)
            .await
            .expect("claiming from the log");
        let none: Vec<i64> = Vec::new();
        sqlx::query(include_str!("../../src/sql/close_claims.sql"))
            .bind(&none)
            .bind(&none)
            .bind(&none)
            .bind(&none)
            .bind(&none)
            .fetch_all(&mut conn)
            .await
            .expect("closing batches");
        // One row each (no such delivery): with the arrays' sizes in view, the custom plans
        // looked cheaper than the generic one.
        let one = vec![-1_i64];
        let complete = sqlx::query(include_str!("../../src/sql/complete.sql"));
        let complete = (complete.bind(&one).bind(&one).bind(&one).bind(&one))
            .bind(vec![2_i16])
            .bind(vec![0.0_f64])
            .bind(vec![0_i32])
            .bind(vec![None::<String>])
            .bind(vec![true])
            .bind(vec![false])
            .bind(vec![Some(0.001_f64)]);
        complete
            .fetch_all(&mut conn)
            .await
            .expect("writing outcomes");
        // The statements that run once a poll interval or a second, each of which spent
        // 0.2-1.2 ms planning for its values at every run (over the rings' partitions).
        sqlx::query(include_str!("../../src/sql/claim.sql"))
            .bind(vec!["audit"])
            .bind(vec![0_i32])
            .bind(vec![500_i32])
            .bind(vec![30.0_f64])
            .bind(false)
            .bind(0_i32)
            .fetch_all(&mut conn)
            .await
            .expect("claiming from pgbus.deliveries");
        sqlx::query(include_str!("../../src/sql/solo_due.sql"))
            .bind(vec!["audit"])
            .fetch_one(&mut conn)
            .await
            .expect("looking for crash suspects");
        sqlx::query(include_str!("../../src/sql/sweep_claims.sql"))
            .bind(100_i32)
            .fetch_one(&mut conn)
            .await
            .expect("sweeping expired batches");
    }
    for name in [
        "claim_log",
        "close_claims",
        "complete",
        "claim",
        "solo_due",
        "sweep_claims",
    ] {
        let (generic, custom) = plans(&mut conn, name).await;
        assert_eq!(
            (generic, custom),
            (12, 0),
            "{name}: (generic, custom) plans of 12 calls"
        );
    }
}

/// The log's claim (the PL/pgSQL function `pgbus.claim_log`) keeps a generic plan for each
/// of its statements from their first run (migration 0018): no statement is planned again
/// for its values on the next claims, which made the first claims after a start take 3 to
/// 14 ms. A cached statement that has no cached plan is one still planned per run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_claims_statements_keep_a_plan_from_their_first_run() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("audit", &["*"])]).await;
    publish_n(pool, "plan.plain", 20).await;
    // A connection of its own, used through the simple protocol only: its only cached
    // statements are the function's.
    let mut conn = PgConnection::connect_with(&pool.connect_options())
        .await
        .expect("connection");
    let claimed: i64 = sqlx::raw_sql(
        "SELECT count(*) FROM pgbus.claim_log('audit', 10, 30, 0, pg_current_snapshot())",
    )
    .fetch_one(&mut conn)
    .await
    .expect("claiming from the log")
    .get(0);
    assert_eq!(claimed, 10, "the claim took rows (its statements all ran)");
    let counts: (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE name = 'CachedPlanSource'),
                count(*) FILTER (WHERE name = 'CachedPlanSource' AND NOT EXISTS (
                    SELECT 1 FROM pg_backend_memory_contexts p
                    WHERE p.name = 'CachedPlan' AND p.ident = c.ident))
         FROM pg_backend_memory_contexts c",
    )
    .persistent(false)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(
        counts.0 >= 10,
        "the function's statements are cached: {counts:?}"
    );
    assert_eq!(counts.1, 0, "cached statements without a plan: {counts:?}");
}
