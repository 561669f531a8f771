//! `latency_floor`: the latency scenario's floor. The same publisher process, at the same
//! rate, writes each event and one delivery row with plain SQL and a NOTIFY in its
//! transaction; this process LISTENs and, on each notification, claims and deletes what is
//! there with one `FOR UPDATE SKIP LOCKED` statement on its own connection (asynchronous
//! commit, as the dispatcher's), reading each row's event. No lease, no log, no library:
//! what a wake-up and a claim cost on this machine, commit → rows in hand.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use sqlx::postgres::PgListener;
use sqlx::{Executor, PgConnection, Postgres, Row, Transaction};
use tokio_util::sync::CancellationToken;

use crate::claim::PICK;
use crate::common::*;
use crate::floor::floor_insert;
use crate::latency::{Publish, Run, publish_from_child, sizes, summarise};
use crate::{DB, progress};

/// The floor's notification channel.
const CHANNEL: &str = "pgbus_bench_floor";

/// Rows claimed per statement.
const CLAIM_N: i64 = 500;

/// Publishes event `seq` the floor's way, in `tx` (the publisher process): the floor's rows
/// (`floor.rs`) and the NOTIFY.
pub async fn publish(tx: &mut Transaction<'_, Postgres>, seq: usize) -> Res<()> {
    floor_insert(tx, seq, seq + 1).await?;
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn scenario(server: &Server, rate: f64, secs: f64) -> Res<Value> {
    let (n, publishers) = sizes(rate, secs);
    progress(format!(
        "latency floor: {n} raw rows + NOTIFY at {rate}/s from a separate process; LISTEN and a SKIP LOCKED delete here"
    ));
    server.fresh_db(DB).await?;
    let pool = server.pool(DB, 2).await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(CHANNEL).await?;
    let mut conn = pool.acquire().await?.detach();
    conn.execute("SET synchronous_commit = off").await?;
    let starts = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let stop = CancellationToken::new();
    let consumer = tokio::spawn(consume(listener, conn, starts.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (meta, commits) = publish_from_child(server, n, rate, publishers, Publish::Floor).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while starts.lock().unwrap().len() < n && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    consumer.await??;
    pool.close().await;
    let starts = starts.lock().unwrap().clone();
    Ok(summarise(
        Run {
            id: format!("latency_floor_{}", rate as u64),
            name: format!(
                "latency floor: raw row + NOTIFY → SKIP LOCKED delete, {} events/s",
                thousands(rate)
            ),
            rate,
            n,
            publishers,
            all: starts.len() >= n,
            meaning: "wall clock when the claiming statement returned − wall clock right after \
                      the publisher's commit returned (joined on a sequence number in the payload)",
        },
        &meta,
        &commits,
        &starts,
    ))
}

/// Claims until nothing is left after each notification (and every 100 ms, in case one was
/// missed), recording (seq, ns) as each statement returns.
async fn consume(
    mut listener: PgListener,
    mut conn: PgConnection,
    starts: Arc<Mutex<Vec<(i64, i128)>>>,
    stop: CancellationToken,
) -> Res<()> {
    let claim = format!(
        "WITH c AS (DELETE FROM pgbus.deliveries d USING ({PICK}) s WHERE d.id = s.id
                    RETURNING d.event_id)
         SELECT (e.data->>'seq')::int8 FROM c JOIN pgbus.events e ON e.id = c.event_id"
    );
    while !stop.is_cancelled() {
        tokio::select! {
            r = listener.recv() => { r?; }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stop.cancelled() => break,
        }
        loop {
            let rows = sqlx::query(sqlx::AssertSqlSafe(claim.as_str()))
                .bind(CLAIM_N)
                .fetch_all(&mut conn)
                .await?;
            let t = now_ns();
            let mut got = starts.lock().unwrap();
            for row in &rows {
                got.push((row.try_get(0)?, t));
            }
            if (rows.len() as i64) < CLAIM_N {
                break;
            }
        }
    }
    Ok(())
}
