//! pgbus throughput and latency benchmark: `cargo bench --bench throughput`.
//!
//! Starts its own throwaway PostgreSQL with `ClusterOptions::durable()` (fsync and
//! synchronous_commit on, shared_buffers 512MB: the peers harness's settings) unless
//! `DATABASE_URL` is set, and runs, each on a freshly created and migrated database:
//!
//! | id | scenario |
//! |---|---|
//! | `floor` | raw SQL floor: the same rows inserted, claimed and deleted by plain batched SQL |
//! | `publish` | one event per transaction (BEGIN, publish, COMMIT), 1 and 16 publishers |
//! | `publish_all` | `publish_all`, 1,000 events per call (100,000 events) |
//! | `publish_dedupe` | `publish_all` with a dedupe key on every event, one in ten a duplicate |
//! | `drain` | 100,000 pending deliveries, 1 subscription, no-op handler, one dispatcher |
//! | `drain_insert` | `drain` with a plain handler that inserts one row (autocommit) |
//! | `drain_tx` | `drain` with a transactional handler that inserts one row in the delivery's transaction |
//! | `fanout` | 100,000 events × 3 subscriptions, one dispatcher |
//! | `latency` | one event at a time at 200/s and 2,000/s from another process; commit → handler start |
//! | `latency_floor` | the same publisher writing a raw row and a NOTIFY; LISTEN and one `SKIP LOCKED` delete; commit → rows returned |
//! | `pinned` | `drain` while a REPEATABLE READ snapshot is held open (≤ 60 s); dead tuples |
//! | `drain_ordered` | 100,000 events over 10,000 keys drained unordered and ordered (keys round robin, then in random order), alternately, 2 rounds |
//! | `hot_key` | 3,000 events of one key, ordered, a handler that sleeps 1 ms |
//!
//! Select with `PGBUS_BENCH=drain,latency`; `PGBUS_BENCH_METRICS=prometheus` runs with the
//! Prometheus recorder installed ([`recorder`]); scale with `PGBUS_BENCH_QUICK=1` or the size
//! variables listed in `benches/README.md`. Results: a table on stdout, JSON in
//! `target/pgbus-bench/{results-<timestamp>,latest}.json`, and a plot in
//! `benches/results/pgbus-bench.svg` (`PGBUS_BENCH_SVG` to change). `PGBUS_BENCH_PLOT=<json>`
//! only redraws the plot from a results file.
//!
//! The dispatcher runs inside this process (its own pool of 10 connections); the drain timer
//! runs from just before `Dispatcher::start` until the handler ran N times and
//! `pgbus.deliveries` has no pending or running row (checked every 5 ms from a separate
//! connection), the same method as `../shared/peers/bench.py`.
//!
//! One module a scenario family: [`floor`] (with the claim statements in [`claim`]),
//! [`publish`], [`drain`] (drain, drain_insert, drain_tx, fanout, pinned), [`latency`] (and its floor,
//! [`latency_floor`]); the results table in
//! [`report`], the plot in [`plot`], pg_stat_statements in [`statements`].

#[path = "../common/mod.rs"]
mod common;

mod claim;
mod drain;
mod floor;
mod latency;
mod latency_floor;
mod ordered;
mod plot;
mod publish;
mod recorder;
mod report;
mod statements;

use common::*;
use serde_json::{Value, json};

pub const DB: &str = "pgbus_bench";
pub const SUB: &str = "bench.sub";

#[derive(Debug, Clone)]
pub struct Sizes {
    pub single_n: usize,
    pub batch_n: usize,
    pub drain_n: usize,
    pub drain_runs: usize,
    pub fanout_n: usize,
    pub fanout_runs: usize,
    pub lat_secs: f64,
    pub lat_rates: Vec<f64>,
    pub pin_n: usize,
    pub pin_cap_secs: f64,
    pub floor_claim_n: usize,
    pub floor_single_n: usize,
    pub claim_batch: usize,
}

impl Sizes {
    fn from_env() -> Self {
        let q = quick();
        let drain_n = env_usize("PGBUS_DRAIN_N", if q { 20_000 } else { 100_000 });
        let single_n = env_usize("PGBUS_SINGLE_N", if q { 2_000 } else { 20_000 });
        let rates = std::env::var("PGBUS_LAT_RATES").unwrap_or_else(|_| "200,2000".to_owned());
        Sizes {
            single_n,
            batch_n: env_usize("PGBUS_BATCH_N", if q { 20_000 } else { 100_000 }),
            drain_n,
            drain_runs: env_usize("PGBUS_DRAIN_RUNS", if q { 1 } else { 3 }),
            fanout_n: env_usize("PGBUS_FANOUT_N", drain_n),
            fanout_runs: env_usize("PGBUS_FANOUT_RUNS", if q { 1 } else { 3 }),
            lat_secs: env_f64("PGBUS_LAT_SECS", if q { 3.0 } else { 5.0 }),
            lat_rates: rates
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().parse().expect("PGBUS_LAT_RATES: numbers"))
                .collect(),
            pin_n: env_usize("PGBUS_PIN_N", drain_n),
            pin_cap_secs: env_f64("PGBUS_PIN_SECS", 60.0),
            floor_claim_n: env_usize("PGBUS_FLOOR_N", drain_n),
            floor_single_n: env_usize("PGBUS_FLOOR_SINGLE_N", single_n),
            claim_batch: 500,
        }
    }

    fn describe(&self) -> Value {
        json!({
            "single_n": self.single_n, "batch_n": self.batch_n, "batch_size": BATCH,
            "drain_n": self.drain_n, "drain_runs": self.drain_runs,
            "fanout_n": self.fanout_n, "fanout_subscriptions": 3, "fanout_runs": self.fanout_runs,
            "latency_secs_per_rate": self.lat_secs, "latency_rates": self.lat_rates,
            "pinned_n": self.pin_n, "pinned_cap_secs": self.pin_cap_secs,
            "floor_claim_n": self.floor_claim_n, "floor_single_n": self.floor_single_n,
            "floor_claim_batch": self.claim_batch,
        })
    }
}

const ALL: &[&str] = &[
    "floor",
    "publish",
    "publish_all",
    "publish_dedupe",
    "drain",
    "drain_insert",
    "drain_tx",
    "fanout",
    "latency",
    "latency_floor",
    "pinned",
    "drain_ordered",
    "hot_key",
];

#[tokio::main]
async fn main() {
    if std::env::var("PGBUS_BENCH_ROLE").as_deref() == Ok("latency-publisher") {
        recorder::install();
        if let Err(e) = latency::publisher_child().await {
            eprintln!("latency publisher failed: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Some(mut report) = report_to_redraw("PGBUS_BENCH_PLOT") {
        let floor = report["floor"].as_array().cloned().unwrap_or_default();
        if let Some(scenarios) = report["scenarios"].as_array_mut() {
            floor::attach_floor_refs(scenarios, &floor);
        }
        report::print_table(&report);
        let out = plot::plot(&report)
            .save("PGBUS_BENCH_SVG", "pgbus-bench.svg")
            .expect("write SVG");
        println!("plot written to {}", out.display());
        return;
    }
    run_bench("throughput", "benchmark", "benchmark failed", run()).await;
}

async fn run() -> Res<()> {
    init_logging();
    let metrics = recorder::install();
    let selected: Vec<String> = match std::env::var("PGBUS_BENCH") {
        Ok(s) if !s.trim().is_empty() => s.split(',').map(|s| s.trim().to_owned()).collect(),
        _ => ALL.iter().map(|s| (*s).to_owned()).collect(),
    };
    for s in &selected {
        if !ALL.contains(&s.as_str()) {
            return Err(format!("unknown scenario {s:?}; known: {}", ALL.join(",")).into());
        }
    }
    let want = |s: &str| selected.iter().any(|x| x == s);
    let sizes = Sizes::from_env();
    let tuning = Tuning::from_env();
    let stamp = timestamp();
    let (server, machine, pg) = start_described().await?;
    println!(
        "dispatcher: in-process (this bench process), pool of 10 connections, settings {}",
        tuning.describe()
    );
    println!("metrics recorder: {metrics} (PGBUS_BENCH_METRICS)");
    if quick() {
        println!("QUICK MODE (PGBUS_BENCH_QUICK): reduced sizes, single runs");
    }
    println!();

    let mut scenarios: Vec<Value> = Vec::new();
    let mut floor: Vec<Value> = Vec::new();
    let mut report = json!({
        "bench": "throughput",
        "started_at": chrono::Utc::now().to_rfc3339(),
        "quick": quick(),
        "machine": machine,
        "postgres": pg,
        "dispatcher": {
            "process": "in-process: the dispatcher runs inside the bench process (pool of 10); \
                        latency publishers run in a separate process",
            "tuning": tuning.describe(),
        },
        "sizes": sizes.describe(),
        "metrics": metrics,
    });

    if want("floor") {
        floor = floor::run(&server, &sizes).await?;
    }
    if want("publish") {
        for publishers in [1usize, 16] {
            scenarios.push(publish::single(&server, publishers, sizes.single_n).await?);
        }
    }
    if want("publish_all") {
        scenarios.push(publish::batches(&server, sizes.batch_n).await?);
    }
    if want("publish_dedupe") {
        scenarios.push(publish::dedupe_batches(&server, sizes.batch_n).await?);
    }
    let mut drain_median = None;
    if want("drain") {
        let s = drain::scenario(
            &server,
            &tuning,
            drain::Work::Noop,
            "drain",
            1,
            sizes.drain_n,
            sizes.drain_runs,
        )
        .await?;
        drain_median = s["rate"].as_f64();
        scenarios.push(s);
    }
    for (id, work) in [
        ("drain_insert", drain::Work::Insert),
        ("drain_tx", drain::Work::TxInsert),
    ] {
        if want(id) {
            let s = drain::scenario(
                &server,
                &tuning,
                work,
                id,
                1,
                sizes.drain_n,
                sizes.drain_runs,
            );
            scenarios.push(s.await?);
        }
    }
    if want("fanout") {
        scenarios.push(
            drain::scenario(
                &server,
                &tuning,
                drain::Work::Noop,
                "fanout",
                3,
                sizes.fanout_n,
                sizes.fanout_runs,
            )
            .await?,
        );
    }
    if want("latency") {
        for &rate in &sizes.lat_rates {
            scenarios.push(latency::scenario(&server, &tuning, rate, sizes.lat_secs).await?);
        }
    }
    if want("latency_floor") {
        for &rate in &sizes.lat_rates {
            scenarios.push(latency_floor::scenario(&server, rate, sizes.lat_secs).await?);
        }
    }
    if want("pinned") {
        scenarios.push(drain::pinned(&server, &tuning, &sizes, drain_median).await?);
    }
    if want("drain_ordered") {
        scenarios.push(ordered::drain_ordered(&server, &tuning).await?);
    }
    if want("hot_key") {
        scenarios.push(ordered::hot_key(&server, &tuning).await?);
    }

    floor::attach_floor_refs(&mut scenarios, &floor);
    report["scenarios"] = Value::Array(scenarios);
    report["floor"] = Value::Array(floor);
    report["finished_at"] = json!(chrono::Utc::now().to_rfc3339());
    println!();
    report::print_table(&report);
    let file = write_results("results", &stamp, &report)?;
    println!("\nJSON: {} (and latest.json)", file.display());
    let svg = plot::plot(&report).save("PGBUS_BENCH_SVG", "pgbus-bench.svg")?;
    println!("plot: {}", svg.display());
    server.finish().await?;
    Ok(())
}

pub fn progress(msg: impl AsRef<str>) {
    eprintln!(
        "[{}] {}",
        chrono::Local::now().format("%H:%M:%S"),
        msg.as_ref()
    );
}
