//! `drain` (one subscription), `fanout` (three subscriptions), `drain_insert` and `drain_tx`
//! (one subscription whose handler inserts one row: in autocommit, or in the delivery's
//! transaction) and `pinned` (a drain while a REPEATABLE READ snapshot holds the xmin horizon
//! back).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::{Connection, Executor};

use crate::common::*;
use crate::statements::{print_statements, start_statements, top_statements};
use crate::{DB, SUB, Sizes, progress};

fn sub_names(subs: usize) -> Vec<String> {
    if subs == 1 {
        vec![SUB.to_owned()]
    } else {
        (1..=subs).map(|i| format!("{SUB}-{i}")).collect()
    }
}

/// What the drained subscriptions' handler does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Nothing.
    Noop,
    /// Inserts one row in autocommit (a plain handler).
    Insert,
    /// Inserts one row in the delivery's transaction (a transactional handler).
    TxInsert,
}

impl Work {
    fn describe(self) -> &'static str {
        match self {
            Work::Noop => "no-op handler",
            Work::Insert => "plain handler inserting one row",
            Work::TxInsert => "transactional handler inserting one row",
        }
    }
}

/// One drain: `handled_secs` when the handler had run N times, `secs` when no row was open.
struct DrainRun {
    secs: f64,
    handled_secs: f64,
    /// CPU seconds this process (dispatcher and handlers) used over `secs` (Linux).
    cpu_secs: Option<f64>,
    deliveries: usize,
    preenqueue_rate: f64,
    dead_after: Option<Value>,
    statements: Option<Value>,
    pinned: Option<Value>,
}

#[allow(clippy::too_many_arguments)]
async fn drain_once(
    server: &Server,
    tuning: &Tuning,
    work: Work,
    subs: usize,
    n: usize,
    measure_dead: bool,
    pin_cap: Option<Duration>,
) -> Res<DrainRun> {
    server.fresh_db(DB).await?;
    let names = sub_names(subs);
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    {
        let pool = server.pool(DB, 2).await?;
        register(&pool, &name_refs).await?;
        if work != Work::Noop {
            create_effects(&pool).await?;
        }
        let (_, wall) = enqueue_batches(&pool, n).await?;
        pool.close().await;
        let pre = n as f64 / wall.as_secs_f64();
        server.settle(DB).await?;
        drain_run_inner(server, tuning, work, &names, n, pre, measure_dead, pin_cap).await
    }
}

#[allow(clippy::too_many_arguments)]
async fn drain_run_inner(
    server: &Server,
    tuning: &Tuning,
    work: Work,
    names: &[String],
    n: usize,
    preenqueue_rate: f64,
    measure_dead: bool,
    pin_cap: Option<Duration>,
) -> Res<DrainRun> {
    let total = n * names.len();
    let mut checker = server.connect(DB).await?;
    let dead_before = if pin_cap.is_some() {
        Some(dead_tuples(&mut checker).await?)
    } else {
        None
    };
    let pgss = statements_enabled() && start_statements(&mut checker).await.is_ok();

    // The pinned horizon: a REPEATABLE READ transaction that took its snapshot.
    let mut holder = None;
    if let Some(cap) = pin_cap {
        let mut c = server.connect(DB).await?;
        c.execute("BEGIN ISOLATION LEVEL REPEATABLE READ").await?;
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM pgbus.deliveries")
            .fetch_one(&mut c)
            .await?;
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let t = Instant::now();
            let capped = tokio::select! {
                _ = tokio::time::sleep(cap) => true,
                _ = release_rx => false,
            };
            let held = t.elapsed().as_secs_f64();
            c.execute("ROLLBACK").await?;
            Ok::<_, BoxError>((c, held, capped))
        });
        holder = Some((release_tx, task, seen));
    }

    let pool = server.pool(DB, 10).await?;
    let counter = Counter::new(total);
    let subs = names
        .iter()
        .map(|name| match work {
            Work::Noop => tuning.subscription(name, Noop(counter.clone())),
            Work::Insert => tuning.subscription(name, InsertEffect(counter.clone(), pool.clone())),
            Work::TxInsert => tuning.tx_subscription(name, TxInsertEffect(counter.clone())),
        })
        .collect();
    let dispatcher = tuning.dispatcher(&pool, subs)?;

    let t0 = Instant::now();
    let cpu0 = process_cpu_secs();
    let handle = dispatcher.start().await?;
    let timeout = Duration::from_secs(600);
    if !counter.wait(timeout).await {
        return Err(format!(
            "drain: only {} of {total} handled in {timeout:?}",
            counter.count()
        )
        .into());
    }
    let handled_secs = t0.elapsed().as_secs_f64();
    wait_no_pending(&mut checker, timeout).await?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu_secs = process_cpu_secs().zip(cpu0).map(|(b, a)| b - a);

    let statements = if pgss {
        top_statements(&mut checker).await.ok()
    } else {
        None
    };
    handle.shutdown().await?;
    pool.close().await;

    let mut pinned = None;
    if let Some((release_tx, task, seen)) = holder {
        // Measured while the snapshot is still held (unless the cap released it).
        let after_held = dead_tuples(&mut checker).await?;
        let _ = release_tx.send(());
        let (c, held, capped) = task.await??;
        c.close().await?;
        checker.execute("VACUUM pgbus.deliveries").await?;
        let after_vacuum = dead_tuples(&mut checker).await?;
        pinned = Some(json!({
            "snapshot_rows_seen": seen,
            "held_secs": round3(held),
            "released_by_cap_before_drain_end": capped,
            "dead_before": dead_before,
            "dead_after_drain": after_held,
            "dead_after_release_and_vacuum": after_vacuum,
        }));
    }
    let dead_after = if measure_dead && pinned.is_none() {
        Some(dead_tuples(&mut checker).await?)
    } else {
        None
    };
    checker.close().await?;
    Ok(DrainRun {
        secs,
        handled_secs,
        cpu_secs,
        deliveries: total,
        preenqueue_rate,
        dead_after,
        statements,
        pinned,
    })
}

pub async fn scenario(
    server: &Server,
    tuning: &Tuning,
    work: Work,
    id: &str,
    subs: usize,
    n: usize,
    runs: usize,
) -> Res<Value> {
    progress(format!(
        "{id}: {n} events × {subs} subscription(s) pending, {}, one in-process dispatcher, {runs} run(s)",
        work.describe()
    ));
    let mut rates = Vec::new();
    let mut details = Vec::new();
    let mut statements = None;
    for run in 0..runs {
        let r = drain_once(server, tuning, work, subs, n, run == 0, None).await?;
        let rate = r.deliveries as f64 / r.secs;
        progress(format!(
            "  run {}: {} deliveries in {:.2} s (handler ran N times after {:.2} s) = {} deliveries/s (pre-enqueue {} events/s)",
            run + 1,
            r.deliveries,
            r.secs,
            r.handled_secs,
            thousands(rate),
            thousands(r.preenqueue_rate)
        ));
        if let Some(s) = &r.statements {
            print_statements(s);
            statements.get_or_insert_with(|| s.clone());
        }
        let cpu_us = r
            .cpu_secs
            .map(|c| (c * 1e6 / r.deliveries as f64 * 10.0).round() / 10.0);
        if let Some(us) = cpu_us {
            progress(format!("  this process's CPU: {us} µs per delivery"));
        }
        rates.push(rate.round());
        details.push(json!({
            "deliveries": r.deliveries, "secs": round3(r.secs),
            "cpu_secs": r.cpu_secs.map(round3), "cpu_us_per_delivery": cpu_us,
            "handler_done_secs": round3(r.handled_secs), "rate": rate.round(),
            "preenqueue_events_per_s": r.preenqueue_rate.round(), "dead_after": r.dead_after,
        }));
    }
    let med = median(&rates);
    Ok(json!({
        "id": id,
        "name": if subs == 1 {
            format!("drain: {} pending, 1 subscription, {}", thousands(n as f64), work.describe())
        } else {
            format!("fan-out drain: {} events × {subs} subscriptions", thousands(n as f64))
        },
        "unit": "deliveries/s",
        "rate": med,
        "events_per_s": (med / subs as f64).round(),
        "runs": rates,
        "run_details": details,
        "statements": statements,
        "method": "timer from just before Dispatcher::start until the handler ran N times and \
                   no pending/running row is left (checked every 5 ms from another connection); \
                   VACUUM ANALYZE + CHECKPOINT before; median of runs",
    }))
}

pub async fn pinned(
    server: &Server,
    tuning: &Tuning,
    sizes: &Sizes,
    drain_median: Option<f64>,
) -> Res<Value> {
    let n = sizes.pin_n;
    let cap = Duration::from_secs_f64(sizes.pin_cap_secs);
    progress(format!(
        "pinned: drain of {n} while a REPEATABLE READ snapshot is held (cap {:?})",
        cap
    ));
    let r = drain_once(server, tuning, Work::Noop, 1, n, false, Some(cap)).await?;
    let rate = r.deliveries as f64 / r.secs;
    let p = r.pinned.unwrap_or(Value::Null);
    let dead = |v: &Value| {
        v["pgstattuple"]["dead"]
            .as_i64()
            .or_else(|| v["n_dead_tup"].as_i64())
            .unwrap_or(-1)
    };
    progress(format!(
        "  {} deliveries/s; dead tuples in pgbus.deliveries: before {}, after drain {}, after release + VACUUM {}",
        thousands(rate),
        dead(&p["dead_before"]),
        dead(&p["dead_after_drain"]),
        dead(&p["dead_after_release_and_vacuum"]),
    ));
    if let Some(s) = &r.statements {
        print_statements(s);
    }
    Ok(json!({
        "id": "pinned",
        "name": format!("pinned horizon: drain of {} with a REPEATABLE READ snapshot held", thousands(n as f64)),
        "unit": "deliveries/s",
        "rate": rate.round(),
        "runs": [rate.round()],
        "secs": round3(r.secs),
        "handler_done_secs": round3(r.handled_secs),
        "vs_drain_median": drain_median.map(|m| round3(rate / m)),
        "dead_before": dead(&p["dead_before"]),
        "dead_after_drain": dead(&p["dead_after_drain"]),
        "dead_after_release_and_vacuum": dead(&p["dead_after_release_and_vacuum"]),
        "detail": p,
        "statements": r.statements,
    }))
}

/// CPU time (user + system, every thread) this process has used, from `/proc/self/stat`
/// (Linux, in USER_HZ = 100 ticks per second); `None` elsewhere. Less disturbed than the
/// rate by other work on a shared machine.
fn process_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
    Some((ticks(11)? + ticks(12)?) / 100.0)
}
