//! pgbus soak test: `cargo bench --bench soak`.
//!
//! Publishes `PGBUS_SOAK_EVENTS` events (default 1,000,000) at a steady `PGBUS_SOAK_RATE`
//! (default 5,000/s) with `publish_all` every `PGBUS_SOAK_TICK_MS` (10 ms), while one
//! dispatcher (same process, its own pool; no-op handler) delivers them. Every
//! `PGBUS_SOAK_SAMPLE_SECS` (5 s) it records the sizes in the `pgbus` schema, the open
//! backlog, dead tuples, the xmin horizon's age and whether the pin is held.
//!
//! What can hold the horizon back or load the queue on top (benches/README.md): the pin
//! (`PGBUS_SOAK_PIN=1`, a REPEATABLE READ transaction with an xid, then the release and
//! `PGBUS_SOAK_AFTER_SECS` more), active readers (`PGBUS_SOAK_READERS=N`) and a burst
//! (`PGBUS_SOAK_BURST=N`). The run is judged per phase against an unpinned reference.
//!
//! Same server as the `throughput` bench (throwaway durable cluster, or `DATABASE_URL`).
//! Results: `target/pgbus-bench/soak[-<mode>]-<timestamp>.json` and `soak[-<mode>]-latest.json`;
//! plot: `benches/results/pgbus-soak[-<mode>].svg` (`PGBUS_SOAK_SVG` to change;
//! `PGBUS_SOAK_PLOT=<json>` only redraws it).
//!
//! [`settings`] reads the environment, [`horizon`] pins and reads, [`load`] publishes,
//! [`sample`] samples, [`phases`] and [`verdict`] judge, [`report`] prints, [`plot`] draws.

#[path = "../common/mod.rs"]
mod common;

mod horizon;
mod load;
mod phases;
mod plot;
mod report;
mod sample;
mod settings;
mod verdict;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use sqlx::Connection;

use load::Progress;
use phases::Windows;
use settings::{Settings, file_names};

const DB: &str = "pgbus_bench_soak";
const SUB: &str = "bench.soak";

#[tokio::main]
async fn main() {
    if let Some(report) = report_to_redraw("PGBUS_SOAK_PLOT") {
        let (_, svg) = file_names(report["settings"]["mode"].as_str().unwrap_or(""));
        let out = plot::plot(&report)
            .save("PGBUS_SOAK_SVG", &svg)
            .expect("write SVG");
        println!("plot written to {}", out.display());
        return;
    }
    run_bench("soak", "soak test", "soak failed", run()).await;
}

fn load_baseline(cfg: &Settings) -> Res<Option<Value>> {
    let Some(path) = &cfg.baseline else {
        return Ok(None);
    };
    let bytes =
        std::fs::read(path).map_err(|e| format!("PGBUS_SOAK_BASELINE {}: {e}", path.display()))?;
    Ok(Some(serde_json::from_slice(&bytes)?))
}

async fn run() -> Res<()> {
    init_logging();
    let cfg = Settings::from_env();
    let baseline = load_baseline(&cfg)?;
    let tuning = Tuning::from_env();
    let stamp = timestamp();

    let (server, machine, pg) = start_described().await?;
    println!(
        "{}\nin-process publisher (own pool), one in-process dispatcher (pool of 10, settings {})\n",
        cfg.line(),
        tuning.describe()
    );

    server.fresh_db(DB).await?;
    if cfg.readers > 0 {
        let mut c = server.connect(DB).await?;
        horizon::create_business_table(&mut c, cfg.reader_rows).await?;
        c.close().await?;
    }
    server.settle(DB).await?;
    let pool = server.pool(DB, 10).await?;
    let pub_pool = server.pool(DB, 3).await?;
    let steady = cfg.steady_events();
    let counter = Counter::recording_age(steady + cfg.burst);
    let handle = tuning
        .dispatcher(&pool, vec![tuning.subscription(SUB, Noop(counter.clone()))])?
        .start()
        .await?;

    let progress = Arc::new(Progress::default());
    // Taken before publishing starts unless PGBUS_SOAK_PIN_AT_SECS says later.
    let mut pin_conn = None;
    if cfg.pin {
        let mut c = server.connect(DB).await?;
        let xid = match cfg.pin_at <= 0.0 {
            true => Some(horizon::begin_pin(&mut c).await?),
            false => None,
        };
        pin_conn = Some((c, xid));
    }
    let reader_conns = server.connections(DB, cfg.readers).await?;
    let sampler_conn = server.connect(DB).await?;

    let t0 = Instant::now();
    let t0_ns = now_ns() as i64;
    let pin = pin_conn.map(|(c, xid)| {
        let held = progress.pin_held.clone();
        horizon::spawn_pin(c, xid, t0, (cfg.pin_at, cfg.pin_secs), held)
    });
    let readers_stop = Arc::new(AtomicBool::new(false));
    let readers = horizon::spawn_readers(reader_conns, cfg.reader_tx_secs, readers_stop.clone());
    let sampler = sample::spawn_sampler(
        sampler_conn,
        t0,
        cfg.every,
        progress.clone(),
        counter.clone(),
    );
    let burst = match cfg.burst {
        0 => None,
        n => Some(load::spawn_burst(
            pub_pool.acquire().await?,
            t0,
            (cfg.burst_at, steady, n),
            progress.clone(),
            counter.clone(),
        )),
    };

    let conn = pub_pool.acquire().await?;
    let (publish_secs, behind_max) =
        load::publish_steady(conn, t0, (cfg.rate, cfg.tick), steady, &progress).await?;
    eprintln!("published {steady} steady events in {publish_secs:.1} s");

    let timeout = Duration::from_secs(600);
    let delivered_all = counter.wait(timeout).await;
    let mut checker = server.connect(DB).await?;
    wait_no_pending(&mut checker, timeout).await?;
    let total_secs = t0.elapsed().as_secs_f64();
    progress.stop.store(true, Ordering::SeqCst);
    readers_stop.store(true, Ordering::SeqCst);
    let samples = sampler.await??;
    let pin = match pin {
        Some(task) => task.await??,
        None => Value::Null,
    };
    let burst = match burst {
        Some(task) => task.await??,
        None => Value::Null,
    };
    let mut reader_stats = Vec::new();
    for r in readers {
        reader_stats.push(r.await??);
    }
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

    let ages = std::mem::take(&mut *counter.ages.lock().unwrap());
    let latency = latency_summary(ages.iter().map(|a| a.age_ms as f64).collect());
    let w = Windows::from_report(&pin, &burst, cfg.readers > 0, publish_secs);
    let phases = phases::latency_by_phase(&ages, t0_ns, steady, &w);
    let reference = verdict::reference(
        cfg.baseline.as_deref().zip(baseline),
        cfg.rate,
        &phases,
        &samples,
        &w,
    );
    let mut report = json!({
        "bench": "soak",
        "started_at": chrono::Utc::now().to_rfc3339(),
        "quick": cfg.quick,
        "machine": machine,
        "postgres": pg,
        "dispatcher": {
            "process": "in-process dispatcher (pool of 10) and in-process publisher (separate pool of 3: steady, burst)",
            "tuning": tuning.describe(),
        },
        "settings": cfg.describe(),
        "events": steady + cfg.burst,
        "rate": cfg.rate,
        "tick_ms": cfg.tick.as_millis() as u64,
        "sample_secs": cfg.every.as_secs_f64(),
        "publish_secs": round3(publish_secs),
        "total_secs": round3(total_secs),
        "achieved_publish_rate": (steady as f64 / publish_secs).round(),
        "delivered_all": delivered_all,
        "publisher_max_behind_events": behind_max,
        "max_open_backlog": samples.iter().map(|s| s.open).max().unwrap_or(0),
        "deliveries_autovacuum_count": autovacuums,
        "deliveries_autoanalyze_count": autoanalyzes,
        "pin": pin,
        "readers": reader_stats,
        "burst": burst,
        "latency": latency,
        "latency_meaning": "wall clock at handler start − wall clock just before the publish_all call that carried the event",
        "phases": phases,
        "latency_series": phases::latency_series(&ages, t0_ns, steady, cfg.every.as_secs_f64()),
        "reference": reference,
        "storage": verdict::storage(&samples, &w, &reference),
        "backlog": verdict::backlog(&samples, &w, cfg.rate),
        "relations": sample::analyse(&samples, publish_secs),
        "samples": samples.iter().map(sample::Sample::to_json).collect::<Vec<_>>(),
    });
    report["verdicts"] = json!(verdict::verdicts(&report, &w));

    report::print_summary(&report);
    let (prefix, svg) = file_names(&cfg.mode());
    let file = write_results(&prefix, &stamp, &report)?;
    println!("\nJSON: {} (and {prefix}-latest.json)", file.display());
    let svg = plot::plot(&report).save("PGBUS_SOAK_SVG", &svg)?;
    println!("plot: {}", svg.display());
    server.finish().await?;
    if !delivered_all {
        return Err("not every event was delivered in time".into());
    }
    Ok(())
}
