//! Publishing bench events (and sharing them out among publishers), registering subscriptions, and checking the deliveries table.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pgbus::{Dispatcher, NewEvent, Publisher, Subscription};
use serde_json::{Value, json};
use sqlx::Executor;
use sqlx::postgres::{PgConnection, PgPool};

use super::{BATCH, Counter, EVENT_TYPE, Noop, Res, env_opt_usize};

pub fn noop_event(seq: usize) -> NewEvent {
    NewEvent::raw(EVENT_TYPE, json!({ "seq": seq }))
}

/// Hands out the indexes `0..n`, `step` at a time, to concurrent workers: each takes the next
/// range when it is free.
#[derive(Debug, Clone)]
pub struct Tickets {
    next: Arc<AtomicUsize>,
    n: usize,
    step: usize,
}

impl Tickets {
    pub fn new(n: usize, step: usize) -> Self {
        Tickets {
            next: Arc::new(AtomicUsize::new(0)),
            n,
            step,
        }
    }

    /// The next range, or `None` once all of `0..n` is taken.
    pub fn take(&self) -> Option<Range<usize>> {
        let i = self.next.fetch_add(self.step, Ordering::SeqCst);
        (i < self.n).then(|| i..(i + self.step).min(self.n))
    }
}

/// The benches' publisher: library defaults, except `PGBUS_NOTIFY=0` (no NOTIFY) and
/// `PGBUS_NOTIFY_DEBOUNCE_MS`.
pub fn publisher() -> Res<Publisher> {
    let mut b = Publisher::builder().source("pgbus-bench");
    if let Some(n) = env_opt_usize("PGBUS_NOTIFY") {
        b = b.notify(n != 0);
    }
    if let Some(ms) = env_opt_usize("PGBUS_NOTIFY_DEBOUNCE_MS") {
        b = b.notify_debounce(Duration::from_millis(ms as u64));
    }
    Ok(b.build()?)
}

/// Publishes `n` events with `publish_all`, [`BATCH`] per statement (autocommit, one
/// transaction per call); returns the per-call latencies in ms and the wall time.
pub async fn enqueue_batches(pool: &PgPool, n: usize) -> Res<(Vec<f64>, Duration)> {
    let publisher = publisher()?;
    let mut conn = pool.acquire().await?;
    let mut lat = Vec::with_capacity(n / BATCH + 1);
    let t0 = Instant::now();
    let mut i = 0;
    while i < n {
        let events: Vec<NewEvent> = (i..(i + BATCH).min(n)).map(noop_event).collect();
        let t = Instant::now();
        publisher.publish_all(&mut conn, &events).await?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        i += events.len();
    }
    Ok((lat, t0.elapsed()))
}

/// Registers subscriptions without running them (start + shutdown of a dispatcher).
pub async fn register(pool: &PgPool, names: &[&str]) -> Res<()> {
    let counter = Counter::new(usize::MAX);
    let mut b = Dispatcher::builder(pool.clone()).listen(false);
    for n in names {
        b = b.subscribe(Subscription::raw(*n, [EVENT_TYPE], Noop(counter.clone())));
    }
    b.build()?.start().await?.shutdown().await?;
    Ok(())
}

/// Polls every 5 ms (from its own connection) until no delivery is pending or running, in
/// `pgbus.deliveries` or in the delivery log (`pgbus.all_deliveries`). Called once the
/// handlers ran: what it waits for is the outcomes being written.
pub async fn wait_no_pending(checker: &mut PgConnection, timeout: Duration) -> Res<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let open: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pgbus.all_deliveries WHERE state < 2")
                .fetch_one(&mut *checker)
                .await?;
        if open == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(
                format!("{open} deliveries still pending/running after {timeout:?}").into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Dead tuples of `pgbus.deliveries`: exact from pgstattuple when it can be installed, and
/// the statistics collector's `n_dead_tup` (flushed first) either way.
pub async fn dead_tuples(conn: &mut PgConnection) -> Res<Value> {
    let has_pgstattuple = conn
        .execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        .await
        .is_ok();
    let exact = if has_pgstattuple {
        let (live, dead, len): (i64, i64, i64) = sqlx::query_as(
            "SELECT tuple_count, dead_tuple_count, table_len FROM pgstattuple('pgbus.deliveries')",
        )
        .fetch_one(&mut *conn)
        .await?;
        json!({ "live": live, "dead": dead, "table_bytes": len })
    } else {
        Value::Null
    };
    let _ = conn.execute("SELECT pg_stat_force_next_flush()").await;
    let (n_dead, n_live): (i64, i64) = sqlx::query_as(
        "SELECT coalesce(n_dead_tup, 0), coalesce(n_live_tup, 0) FROM pg_stat_user_tables
         WHERE schemaname = 'pgbus' AND relname = 'deliveries'",
    )
    .fetch_one(&mut *conn)
    .await?;
    let (total, index): (i64, i64) = sqlx::query_as(
        "SELECT pg_total_relation_size('pgbus.deliveries'), pg_indexes_size('pgbus.deliveries')",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(json!({
        "pgstattuple": exact,
        "n_dead_tup": n_dead,
        "n_live_tup": n_live,
        "total_bytes": total,
        "index_bytes": index,
    }))
}
