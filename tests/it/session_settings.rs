//! The settings of the dispatcher's own connections (`src/sql/session_setup.sql`): with
//! sequential scans disabled, a statement that has no index to use keeps its scan at the
//! disabled cost of 10^10, past every JIT threshold; the connections turn JIT off, so that
//! such a statement (the presence reaper's) is not compiled with LLVM on every run, which
//! took 0.5-1.1 s for a reap that runs in under a millisecond.

use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};

use crate::support::database::{db, dispatcher_connection};
use crate::support::tools::missing;

/// The presence locks' namespace (src/dispatcher/presence.rs).
const NAMESPACE: i32 = 0x7067_6273;

/// Runs the reaper's statement for `dispatcher` under EXPLAIN ANALYZE; returns its plan.
async fn explained_reap(conn: &mut PgConnection, dispatcher: i32) -> Value {
    let statement = concat!(
        "EXPLAIN (ANALYZE, FORMAT JSON) ",
        include_str!("../../src/sql/reap_dispatcher.sql")
    );
    let (plan,): (Value,) = sqlx::query_as(statement)
        .bind(NAMESPACE)
        .bind(dispatcher)
        .fetch_one(&mut *conn)
        .await
        .expect("explaining the reap");
    plan
}

async fn gone_dispatcher(conn: &mut PgConnection) -> i32 {
    sqlx::query_scalar("INSERT INTO pgbus.dispatchers (host, pid) VALUES ('gone', 1) RETURNING id")
        .fetch_one(&mut *conn)
        .await
        .expect("registering a dispatcher")
}

#[tokio::test]
async fn the_dispatchers_connections_do_not_compile_their_statements() {
    let db = db().await;
    let mut conn = PgConnection::connect_with(&db.pool().connect_options())
        .await
        .expect("connection");
    let available: bool = sqlx::query_scalar("SELECT pg_jit_available()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    if !available {
        missing("PostgreSQL's JIT provider (llvmjit)");
        return;
    }
    conn.execute("SET jit = on").await.unwrap();
    conn.execute("SET enable_seqscan = off").await.unwrap();
    let id = gone_dispatcher(&mut conn).await;
    let plan = explained_reap(&mut conn, id).await;
    assert!(
        plan[0].get("JIT").is_some(),
        "without the setting, the reap is compiled (else this test shows nothing): {plan}"
    );

    let mut conn = dispatcher_connection(db.pool()).await;
    let id = gone_dispatcher(&mut conn).await;
    let plan = explained_reap(&mut conn, id).await;
    assert!(
        plan[0].get("JIT").is_none(),
        "the reap was compiled: {plan}"
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pgbus.dispatchers")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0, "both reaps removed their dispatcher");
}
