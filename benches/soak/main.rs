//! pgbus soak test: `cargo bench --bench soak`.
//!
//! Publishes `PGBUS_SOAK_EVENTS` events (default 1,000,000) at a steady `PGBUS_SOAK_RATE`
//! (default 5,000/s) with `publish_all` every `PGBUS_SOAK_TICK_MS` (10 ms), while one
//! dispatcher (same process, its own pool; no-op handler) delivers them. Every
//! `PGBUS_SOAK_SAMPLE_SECS` (5 s) it records `pg_total_relation_size` of each table and index
//! in the `pgbus` schema, the open backlog and dead tuples. At the end it prints each series
//! compactly and compares the largest size with the size at 25% of the run: a queue that
//! levels off stays near it; one that grows with the count does not.
//!
//! Same server as the `throughput` bench (throwaway durable cluster, or `DATABASE_URL`).
//! Results: `target/pgbus-bench/soak-<timestamp>.json` and `soak-latest.json`; plot:
//! `benches/results/pgbus-soak.svg` (`PGBUS_SOAK_SVG` to change; `PGBUS_SOAK_PLOT=<json>`
//! only redraws it).
//!
//! [`sample`] takes and judges the size samples, [`report`] prints them, [`plot`] draws them.

#[path = "../common/mod.rs"]
mod common;

mod plot;
mod report;
mod sample;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use pgbus::NewEvent;
use serde_json::json;
use sqlx::Connection;

const DB: &str = "pgbus_bench_soak";
const SUB: &str = "bench.soak";

#[tokio::main]
async fn main() {
    if let Some(report) = report_to_redraw("PGBUS_SOAK_PLOT") {
        let out = plot::plot(&report)
            .save("PGBUS_SOAK_SVG", "pgbus-soak.svg")
            .expect("write SVG");
        println!("plot written to {}", out.display());
        return;
    }
    run_bench("soak", "soak test", "soak failed", run()).await;
}

async fn run() -> Res<()> {
    init_logging();
    let q = quick();
    let n = env_usize("PGBUS_SOAK_EVENTS", if q { 100_000 } else { 1_000_000 });
    let rate = env_f64("PGBUS_SOAK_RATE", 5_000.0);
    let tick = Duration::from_millis(env_usize("PGBUS_SOAK_TICK_MS", 10) as u64);
    let every =
        Duration::from_secs_f64(env_f64("PGBUS_SOAK_SAMPLE_SECS", if q { 2.0 } else { 5.0 }));
    let tuning = Tuning::from_env();
    let stamp = timestamp();

    let server = Server::start().await?;
    let machine = machine();
    let pg = postgres(&server).await?;
    print_header(&machine, &pg);
    println!(
        "soak: {} events at {}/s (publish_all every {:?}, in-process publisher with its own pool), \
         one in-process dispatcher (pool of 10, settings {}), sampling every {:?}\n",
        thousands(n as f64),
        thousands(rate),
        tick,
        tuning.describe(),
        every
    );

    server.fresh_db(DB).await?;
    server.settle(DB).await?;
    let pool = server.pool(DB, 10).await?;
    let pub_pool = server.pool(DB, 2).await?;
    let counter = Counter::recording_age(n);
    let handle = tuning
        .dispatcher(&pool, vec![tuning.subscription(SUB, Noop(counter.clone()))])?
        .start()
        .await?;

    let t0 = Instant::now();
    let published = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    let sampler = sample::spawn_sampler(
        server.connect(DB).await?,
        t0,
        every,
        published.clone(),
        counter.clone(),
        stop.clone(),
    );

    // Publisher: steady rate, one publish_all per tick with what is due.
    let publisher = publisher()?;
    let mut conn = pub_pool.acquire().await?;
    let mut behind_max = 0usize;
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut i = 0usize;
    while i < n {
        ticker.tick().await;
        let due = ((t0.elapsed().as_secs_f64() * rate) as usize).min(n);
        behind_max = behind_max.max(due.saturating_sub(i));
        while i < due {
            let to = (i + BATCH).min(due);
            let sent = now_ns() as i64;
            let events: Vec<NewEvent> = (i..to)
                .map(|s| NewEvent::raw(EVENT_TYPE, json!({ "seq": s, "t": sent })))
                .collect();
            publisher.publish_all(&mut conn, &events).await?;
            i = to;
            published.store(i, Ordering::SeqCst);
        }
    }
    let publish_secs = t0.elapsed().as_secs_f64();
    drop(conn);
    eprintln!("published {n} events in {publish_secs:.1} s");

    let timeout = Duration::from_secs(120);
    let delivered_all = counter.wait(timeout).await;
    let mut checker = server.connect(DB).await?;
    wait_no_pending(&mut checker, timeout).await?;
    let total_secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let samples = sampler.await??;
    handle.shutdown().await?;
    pool.close().await;
    pub_pool.close().await;
    let (autovacuums, autoanalyzes): (i64, i64) = sqlx::query_as(
        "SELECT autovacuum_count, autoanalyze_count FROM pg_stat_user_tables
         WHERE schemaname = 'pgbus' AND relname = 'deliveries'",
    )
    .fetch_one(&mut checker)
    .await?;
    checker.close().await?;

    let ages: Vec<f64> = counter
        .ages_ms
        .lock()
        .unwrap()
        .iter()
        .map(|&x| x as f64)
        .collect();
    let latency = latency_summary(ages);
    let analysis = sample::analyse(&samples, publish_secs);
    let report = json!({
        "bench": "soak",
        "started_at": chrono::Utc::now().to_rfc3339(),
        "quick": q,
        "machine": machine,
        "postgres": pg,
        "dispatcher": {
            "process": "in-process dispatcher (pool of 10) and in-process publisher (separate pool of 2)",
            "tuning": tuning.describe(),
        },
        "events": n,
        "rate": rate,
        "tick_ms": tick.as_millis() as u64,
        "sample_secs": every.as_secs_f64(),
        "publish_secs": round3(publish_secs),
        "total_secs": round3(total_secs),
        "achieved_publish_rate": (n as f64 / publish_secs).round(),
        "delivered_all": delivered_all,
        "publisher_max_behind_events": behind_max,
        "max_open_backlog": samples.iter().map(|s| s.open).max().unwrap_or(0),
        "deliveries_autovacuum_count": autovacuums,
        "deliveries_autoanalyze_count": autoanalyzes,
        "latency": latency,
        "latency_meaning": "wall clock at handler start − wall clock just before the publish_all call that carried the event",
        "relations": analysis,
        "samples": samples.iter().map(|s| json!({
            "t": round1(s.t), "published": s.published, "delivered": s.delivered,
            "open": s.open, "running": s.running, "n_dead_tup": s.dead, "sizes": s.sizes,
        })).collect::<Vec<_>>(),
    });

    report::print_summary(&report);
    let file = write_results("soak", &stamp, &report)?;
    println!("\nJSON: {} (and soak-latest.json)", file.display());
    let svg = plot::plot(&report).save("PGBUS_SOAK_SVG", "pgbus-soak.svg")?;
    println!("plot: {}", svg.display());
    server.finish().await?;
    if !delivered_all {
        return Err("not every event was delivered in time".into());
    }
    Ok(())
}
