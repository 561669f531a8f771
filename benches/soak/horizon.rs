//! What holds the xmin horizon back: the pin (one REPEATABLE READ transaction with an xid,
//! held, then committed: the release) and the active readers (REPEATABLE READ counts of a
//! business table, back to back).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection};
use tokio::task::JoinHandle;

use crate::common::{BoxError, Res, round3};

/// `BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT txid_current();` on `c`; returns the xid.
pub async fn begin_pin(c: &mut PgConnection) -> Res<i64> {
    c.execute("BEGIN ISOLATION LEVEL REPEATABLE READ").await?;
    Ok(sqlx::query_scalar("SELECT txid_current()")
        .fetch_one(&mut *c)
        .await?)
}

/// Holds the pin on `c` from `at` (s after `t0`; already begun when `xid` is given) until
/// `at + secs`, then commits it; `held` says whether it is held.
pub fn spawn_pin(
    mut c: PgConnection,
    mut xid: Option<i64>,
    t0: Instant,
    (at, secs): (f64, f64),
    held: Arc<AtomicBool>,
) -> JoinHandle<Res<Value>> {
    // Already held when the run starts (the sampler's first sample says so).
    held.store(xid.is_some(), Ordering::SeqCst);
    tokio::spawn(async move {
        let t0 = tokio::time::Instant::from_std(t0);
        let mut started = 0.0;
        if xid.is_none() {
            tokio::time::sleep_until(t0 + Duration::from_secs_f64(at)).await;
            xid = Some(begin_pin(&mut c).await?);
            started = t0.elapsed().as_secs_f64();
        }
        held.store(true, Ordering::SeqCst);
        eprintln!("[{started:>6.1} s] pin held (xid {})", xid.unwrap_or(0));
        tokio::time::sleep_until(t0 + Duration::from_secs_f64(at + secs)).await;
        c.execute("COMMIT").await?;
        held.store(false, Ordering::SeqCst);
        let released = t0.elapsed().as_secs_f64();
        eprintln!("[{released:>6.1} s] pin released (COMMIT)");
        c.close().await?;
        Ok::<_, BoxError>(json!({
            "xid": xid,
            "started_secs": round3(started),
            "released_secs": round3(released),
        }))
    })
}

/// The readers' business table: `rows` orders.
pub async fn create_business_table(c: &mut PgConnection, rows: usize) -> Res<()> {
    c.execute(
        "CREATE TABLE soak_orders (id bigint PRIMARY KEY, customer int NOT NULL,
           amount numeric(12, 2) NOT NULL, note text NOT NULL)",
    )
    .await?;
    sqlx::query(
        "INSERT INTO soak_orders
         SELECT g, g % 997, (g % 10000) / 100.0, 'order ' || g FROM generate_series(1, $1) g",
    )
    .bind(rows as i64)
    .execute(&mut *c)
    .await?;
    c.execute("ANALYZE soak_orders").await?;
    Ok(())
}

/// `conns.len()` readers, reader `i` starting `i/n` of a transaction late, each looping
/// `BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM soak_orders` (again every
/// 500 ms) `… COMMIT` with transactions of `tx_secs`, until `stop`.
pub fn spawn_readers(
    conns: Vec<PgConnection>,
    tx_secs: f64,
    stop: Arc<AtomicBool>,
) -> Vec<JoinHandle<Res<Value>>> {
    let n = conns.len();
    let tx = Duration::from_secs_f64(tx_secs);
    conns
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep(tx.mul_f64(i as f64 / n as f64)).await;
                let (mut txs, mut queries, mut held) = (0usize, 0usize, 0.0f64);
                while !stop.load(Ordering::SeqCst) {
                    c.execute("BEGIN ISOLATION LEVEL REPEATABLE READ").await?;
                    let t = Instant::now();
                    loop {
                        let _: i64 = sqlx::query_scalar("SELECT count(*) FROM soak_orders")
                            .fetch_one(&mut c)
                            .await?;
                        queries += 1;
                        let left = tx.saturating_sub(t.elapsed());
                        if left.is_zero() || stop.load(Ordering::SeqCst) {
                            break;
                        }
                        tokio::time::sleep(left.min(Duration::from_millis(500))).await;
                    }
                    c.execute("COMMIT").await?;
                    held += t.elapsed().as_secs_f64();
                    txs += 1;
                }
                c.close().await?;
                Ok::<_, BoxError>(json!({
                    "reader": i,
                    "transactions": txs,
                    "counts": queries,
                    "mean_tx_secs": round3(held / txs.max(1) as f64),
                }))
            })
        })
        .collect()
}
