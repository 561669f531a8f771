//! How a claim reads its events (migration 0021): through `pgbus.events_in_slot`, which
//! reads one partition of `pgbus.events` by primary key, and only when the claim took
//! something. A claim that finds nothing does not touch `pgbus.events` at all (the lateral
//! subquery of version 20 opened and locked all eight partitions on every claim).

use sqlx::{PgConnection, Row};

use crate::support::database::db;
use crate::support::dispatcher::register;
use crate::support::publishing::publish_n;

/// Per partition of `pgbus.events`, in name order: this backend's (sequential, index) scans
/// that its statistics do not show yet.
async fn scans(conn: &mut PgConnection) -> Vec<(String, i64, i64)> {
    sqlx::query_as(
        "SELECT t.relname::text, t.seq_scan, t.idx_scan FROM pg_stat_xact_user_tables t
         WHERE t.relid IN (SELECT inhrelid FROM pg_inherits
                           WHERE inhparent = 'pgbus.events'::regclass)
         ORDER BY t.relname",
    )
    .fetch_all(conn)
    .await
    .unwrap()
}

/// Runs the dispatcher's log claim of at most `n` deliveries of `audit` from its file, as a
/// named statement, in a transaction that is rolled back, after `warm` earlier calls (the
/// sixth call and later use the generic plan). Returns, from inside the last transaction,
/// the rows it returned, the relations of `pgbus.events` (the table and its partitions) this
/// transaction holds a lock on, and per partition this transaction's (sequential, index)
/// scans.
async fn claim_and_look(
    conn: &mut PgConnection,
    n: i32,
    warm: usize,
) -> (Vec<sqlx::postgres::PgRow>, i64, Vec<(String, i64, i64)>) {
    let claim = async |conn: &mut PgConnection| {
        sqlx::query(include_str!("../../src/sql/claim_log.sql"))
            .bind(vec!["audit"])
            .bind(vec![0_i32])
            .bind(vec![n])
            .bind(vec![30.0_f64])
            .bind(0_i32)
            .fetch_all(conn)
            .await
    };
    for _ in 0..warm {
        sqlx::raw_sql("BEGIN").execute(&mut *conn).await.unwrap();
        claim(&mut *conn).await.expect("claiming");
        sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.unwrap();
    }
    sqlx::raw_sql("BEGIN").execute(&mut *conn).await.unwrap();
    // A backend's counters not yet reported include earlier transactions': the claim's
    // scans are the difference across it, inside one transaction.
    let before = scans(&mut *conn).await;
    let rows = claim(&mut *conn).await.expect("claiming");
    let locked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks l
         WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation'
           AND (l.relation = 'pgbus.events'::regclass
                OR l.relation IN (SELECT inhrelid FROM pg_inherits
                                  WHERE inhparent = 'pgbus.events'::regclass))",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    let after = scans(&mut *conn).await;
    let scans = (after.into_iter().zip(before))
        .map(|((name, seq, idx), (_, seq0, idx0))| (name, seq - seq0, idx - idx0))
        .collect();
    sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.unwrap();
    (rows, locked, scans)
}

/// A claim that finds nothing (most claims of an idle dispatcher) neither locks nor reads
/// `pgbus.events` or any of its partitions, with its custom plans and with its generic one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_that_finds_nothing_does_not_open_the_events_table() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("audit", &["*"])]).await;
    let mut conn = pool.acquire().await.expect("connection");
    for warm in [0, 6] {
        let (rows, locked, scans) = claim_and_look(&mut conn, 100, warm).await;
        assert!(rows.is_empty(), "nothing was published");
        assert_eq!(
            locked, 0,
            "relations of pgbus.events locked (after {warm} calls)"
        );
        assert!(
            scans.iter().all(|(_, seq, idx)| seq + idx == 0),
            "partitions of pgbus.events scanned: {scans:?}"
        );
    }
}

/// A claim of 500 reads their events from their slot's partition by primary key, with the
/// generic plan: one partition scanned, by its index, no sequential scan of any (a pulled-up
/// subquery once made a claim hash every event of the table), and every event returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_reads_its_events_from_one_partition_by_primary_key() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("audit", &["*"])]).await;
    publish_n(pool, "plan.plain", 2000).await;
    sqlx::raw_sql("ANALYZE").execute(pool).await.unwrap();
    let mut conn = pool.acquire().await.expect("connection");
    let (rows, locked, scans) = claim_and_look(&mut conn, 500, 6).await;
    let deliveries = rows
        .iter()
        .filter(|r| r.get::<Option<i64>, _>("id").is_some());
    let events = rows
        .iter()
        .filter(|r| r.get::<Option<String>, _>("data").is_some());
    assert_eq!((deliveries.count(), events.count()), (500, 500));
    assert!(locked >= 1, "the events were read from pgbus.events");
    let read: Vec<&String> = (scans.iter().filter(|(_, _, idx)| *idx > 0))
        .map(|(name, _, _)| name)
        .collect();
    assert_eq!(read.len(), 1, "partitions read by index: {scans:?}");
    assert!(
        scans.iter().all(|(_, seq, _)| *seq == 0),
        "a partition of pgbus.events was scanned sequentially: {scans:?}"
    );
}
