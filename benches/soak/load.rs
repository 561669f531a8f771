//! The soak's load: the steady publisher, and the burst on top of it with the watch that says
//! when the burst is drained.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pgbus::{NewEvent, Publisher};
use serde_json::{Value, json};
use sqlx::PgConnection;
use sqlx::pool::PoolConnection;
use sqlx::postgres::Postgres;
use tokio::task::JoinHandle;

use crate::common::{BATCH, BoxError, Counter, EVENT_TYPE, Res, now_ns, publisher, round3};

/// What the tasks of a run share.
#[derive(Debug, Default)]
pub struct Progress {
    /// Steady events published (committed).
    pub steady: AtomicUsize,
    /// Burst events published (committed).
    pub burst: AtomicUsize,
    pub pin_held: Arc<AtomicBool>,
    /// Set when everything is delivered: the sampler takes one more sample, readers stop.
    pub stop: AtomicBool,
}

impl Progress {
    pub fn published(&self) -> usize {
        self.steady.load(Ordering::SeqCst) + self.burst.load(Ordering::SeqCst)
    }
}

/// Events `from..to`, stamped with the wall clock now (ns) in `t`.
async fn publish_range(
    publisher: &Publisher,
    conn: &mut PgConnection,
    from: usize,
    to: usize,
) -> Res<()> {
    let sent = now_ns() as i64;
    let events: Vec<NewEvent> = (from..to)
        .map(|s| NewEvent::raw(EVENT_TYPE, json!({ "seq": s, "t": sent })))
        .collect();
    publisher.publish_all(conn, &events).await?;
    Ok(())
}

/// Publishes events `0..total` at `rate` from `t0`: one `publish_all` per `tick` with what is
/// due. Returns the publishing time (s) and how far (events) it was ever behind schedule.
pub async fn publish_steady(
    mut conn: PoolConnection<Postgres>,
    t0: Instant,
    (rate, tick): (f64, Duration),
    total: usize,
    progress: &Progress,
) -> Res<(f64, usize)> {
    let publisher = publisher()?;
    let mut behind_max = 0usize;
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut i = 0usize;
    while i < total {
        ticker.tick().await;
        let due = ((t0.elapsed().as_secs_f64() * rate) as usize).min(total);
        behind_max = behind_max.max(due.saturating_sub(i));
        while i < due {
            let to = (i + BATCH).min(due);
            publish_range(&publisher, &mut conn, i, to).await?;
            i = to;
            progress.steady.store(i, Ordering::SeqCst);
        }
    }
    Ok((t0.elapsed().as_secs_f64(), behind_max))
}

/// The in-process backlog: published minus handled.
fn backlog(progress: &Progress, counter: &Counter) -> usize {
    progress.published().saturating_sub(counter.count())
}

/// At `at` s after `t0`, publishes events `first..first + n` with `publish_all`, [`BATCH`]
/// per call, from its own task and connection. Its watch polls the in-process backlog every
/// 50 ms: the pre-burst level is the largest backlog of the 2 s before the burst; the burst is
/// drained when, all of it published, the backlog is back to that level.
pub fn spawn_burst(
    mut conn: PoolConnection<Postgres>,
    t0: Instant,
    (at, first, n): (f64, usize, usize),
    progress: Arc<Progress>,
    counter: Arc<Counter>,
) -> JoinHandle<Res<Value>> {
    tokio::spawn(async move {
        let start = tokio::time::Instant::from_std(t0) + Duration::from_secs_f64(at);
        let poll = Duration::from_millis(50);
        tokio::time::sleep_until(start - Duration::from_secs(2)).await;
        let mut pre_level = 0usize;
        while tokio::time::Instant::now() < start {
            pre_level = pre_level.max(backlog(&progress, &counter));
            tokio::time::sleep(poll).await;
        }
        let started = t0.elapsed().as_secs_f64();
        eprintln!(
            "[{started:>6.1} s] burst of {n} events starts (pre-burst backlog ≤ {pre_level})"
        );
        let p = progress.clone();
        let sender = tokio::spawn(async move {
            let publisher = publisher()?;
            let mut i = first;
            while i < first + n {
                let to = (i + BATCH).min(first + n);
                publish_range(&publisher, &mut conn, i, to).await?;
                p.burst.fetch_add(to - i, Ordering::SeqCst);
                i = to;
            }
            Ok::<_, BoxError>(t0.elapsed().as_secs_f64())
        });
        let (mut peak, mut drained) = (0usize, None);
        while !progress.stop.load(Ordering::SeqCst) {
            let b = backlog(&progress, &counter);
            peak = peak.max(b);
            if progress.burst.load(Ordering::SeqCst) >= n && b <= pre_level {
                drained = Some(t0.elapsed().as_secs_f64());
                break;
            }
            tokio::time::sleep(poll).await;
        }
        let published_at = sender.await??;
        match drained {
            Some(d) => eprintln!("[{d:>6.1} s] burst drained ({:.1} s)", d - started),
            None => eprintln!("burst not drained within the run"),
        }
        Ok::<_, BoxError>(json!({
            "events": n,
            "first_seq": first,
            "started_secs": round3(started),
            "published_secs": round3(published_at),
            "publish_rate": (n as f64 / (published_at - started).max(1e-9)).round(),
            "pre_burst_backlog": pre_level,
            "peak_backlog": peak,
            "drained_secs": drained.map(round3),
            "drain_time_secs": drained.map(|d| round3(d - started)),
        }))
    })
}
