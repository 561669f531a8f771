//! pgbus driver for the peer job-queue benchmark in `../shared/peers/` (see its README), so
//! pgbus can be measured with exactly the method used for graphile-worker, PgQueuer, sqlxmq,
//! pg-boss and procrastinate. `benches/compare.sh` runs it side by side with graphile-worker.
//!
//! A bench target without a harness, built in the bench profile (optimised) by
//! `python3 benches/peers_pgbus.py --build-driver`, which runs
//! `cargo bench --bench peer_driver --no-run` and prints where the executable is (its name
//! carries a hash):
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:55432/bench_pgbus \
//!     "$(python3 benches/peers_pgbus.py --build-driver)" <mode> [args]
//! ```
//!
//! Run by `cargo bench` (which passes `--bench`) or `cargo test --benches` (no arguments), it
//! only prints its usage and exits successfully.
//!
//! Modes (the interface every peer driver has):
//! - `setup`: migrate, and register the subscription `bench.noop` (events published before a
//!   subscription exists are not delivered to it);
//! - `enqueue-single N`: N events, one `publish` per call on an autocommit connection (one
//!   transaction each, like the peers' single-enqueue APIs); prints JSON;
//! - `enqueue-batch N`: N events, `publish_all` with `BATCH_SIZE` (1,000) per call; prints JSON;
//! - `drain N`: one dispatcher (no-op handler) until it ran N times and `pgbus.deliveries` has
//!   no pending or running row (checked every 5 ms from another connection); prints JSON;
//! - `latency-worker N OUT.csv`: a dispatcher that records `seq,start_ns` per handler start;
//!   prints `READY` once started, writes the CSV after N events;
//! - `latency-produce N RATE OUT.csv`: N events one at a time at RATE/s, writing
//!   `seq,commit_ns` taken when each publish (autocommit) returned.
//!
//! `PGBUS_PEER_SUBS` (1) sets how many subscriptions receive every event (`bench.noop`,
//! `bench.noop.2`, ...): with 3, `setup` registers three, `drain N` runs one dispatcher serving
//! all three until their handlers ran 3N times, and its `rate` counts deliveries, not events
//! (the fan-out step of `benches/compare.sh`, `STEPS=...,fanout`).
//!
//! Settings: library defaults, unless `PGBUS_BATCH_SIZE`, `PGBUS_CONCURRENCY`,
//! `PGBUS_COMPLETE_BATCH`, `PGBUS_COMPLETE_DELAY_MS` are set; `POOL_SIZE` (10) for the
//! dispatcher's pool.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::*;
use pgbus::NewEvent;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

const SUB: &str = "bench.noop";

/// The subscriptions every event goes to: `bench.noop`, then `bench.noop.2`, ... up to
/// `PGBUS_PEER_SUBS` (1).
fn subscriptions() -> Vec<String> {
    (1..=env_usize("PGBUS_PEER_SUBS", 1).max(1))
        .map(|i| {
            if i == 1 {
                SUB.to_owned()
            } else {
                format!("{SUB}.{i}")
            }
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let mode = std::env::args().nth(1);
    if mode.as_deref().is_none_or(|m| m.starts_with("--")) {
        eprintln!(
            "{} (skipped: the peers harness runs it, see benches/compare.sh)",
            usage()
        );
        return;
    }
    if let Err(e) = run().await {
        eprintln!("peer_driver: {e}");
        std::process::exit(1);
    }
}

fn usage() -> BoxError {
    "usage: peer_driver setup | enqueue-single N | enqueue-batch N | drain N | \
     latency-worker N OUT.csv | latency-produce N RATE OUT.csv (DATABASE_URL selects the database)"
        .into()
}

async fn run() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().ok_or_else(usage)?.as_str();
    let arg = |i: usize| args.get(i).cloned().ok_or_else(usage);
    let n = || -> Res<usize> { Ok(arg(1)?.parse()?) };
    let url = std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL not set")?;
    let opts: PgConnectOptions = url.parse::<PgConnectOptions>()?.disable_statement_logging();
    let pool_size = env_usize("POOL_SIZE", 10) as u32;
    let pool = PgPoolOptions::new()
        .max_connections(pool_size)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(opts.clone())
        .await?;
    let tuning = Tuning::from_env();
    let subs = subscriptions();
    match mode {
        "setup" => {
            pgbus::migrate(&pool).await?;
            register(&pool, &subs.iter().map(String::as_str).collect::<Vec<_>>()).await?;
        }
        "enqueue-single" => {
            let n = n()?;
            let publisher = publisher()?;
            let mut conn = pool.acquire().await?;
            let t0 = Instant::now();
            for i in 0..n {
                publisher.publish(&mut conn, noop_event(i)).await?;
            }
            let secs = t0.elapsed().as_secs_f64();
            report(
                json!({"mode": mode, "jobs": n, "secs": secs, "rate": n as f64 / secs, "batch": 1}),
            );
        }
        "enqueue-batch" => {
            let n = n()?;
            let batch = env_usize("BATCH_SIZE", BATCH);
            let publisher = publisher()?;
            let mut conn = pool.acquire().await?;
            let t0 = Instant::now();
            let mut i = 0;
            while i < n {
                let events: Vec<NewEvent> = (i..(i + batch).min(n)).map(noop_event).collect();
                publisher.publish_all(&mut conn, &events).await?;
                i += events.len();
            }
            let secs = t0.elapsed().as_secs_f64();
            report(
                json!({"mode": mode, "jobs": n, "secs": secs, "rate": n as f64 / secs, "batch": batch}),
            );
        }
        "drain" | "latency-worker" => {
            let n = n()?;
            let record = mode == "latency-worker";
            // Every event is delivered once to each subscription: the handlers run n × subs.
            let deliveries = n * subs.len();
            let counter = if record {
                Counter::recording_seq(deliveries)
            } else {
                Counter::new(deliveries)
            };
            let mut checker = PgConnection::connect_with(&opts).await?;
            let served = (subs.iter())
                .map(|s| tuning.subscription(s, Noop(counter.clone())))
                .collect();
            let dispatcher = tuning.dispatcher(&pool, served)?;
            let t0 = Instant::now();
            let handle = dispatcher.start().await?;
            if record {
                println!("READY");
                std::io::stdout().flush()?;
            }
            let timeout = Duration::from_secs(1200);
            if !counter.wait(timeout).await {
                return Err(format!(
                    "only {} of {deliveries} handled within {timeout:?}",
                    counter.count()
                )
                .into());
            }
            let handled_secs = t0.elapsed().as_secs_f64();
            wait_no_pending(&mut checker, timeout).await?;
            let secs = t0.elapsed().as_secs_f64();
            handle.shutdown().await?;
            checker.close().await?;
            if record {
                let mut body = String::from("seq,start_ns\n");
                for (seq, t) in counter.starts.lock().unwrap().iter() {
                    body.push_str(&format!("{seq},{t}\n"));
                }
                std::fs::write(arg(2)?, body)?;
            } else {
                report(json!({"mode": mode, "jobs": n, "subscriptions": subs.len(),
                              "deliveries": deliveries, "secs": secs,
                              "rate": deliveries as f64 / secs,
                              "handler_done_secs": handled_secs, "pool_size": pool_size, "settings": tuning.describe()}));
            }
        }
        "latency-produce" => {
            let n = n()?;
            let rate: f64 = arg(2)?.parse()?;
            let out = arg(3)?;
            produce(&pool, n, rate, &out).await?;
        }
        _ => return Err(usage()),
    }
    pool.close().await;
    Ok(())
}

/// One event at a time at `rate`/s, each publish its own autocommit transaction; records
/// the wall clock when each publish returned (after its commit).
async fn produce(pool: &PgPool, n: usize, rate: f64, out: &str) -> Res<()> {
    let publisher = publisher()?;
    let mut conn = pool.acquire().await?;
    let mut rows = Vec::with_capacity(n);
    let t0 = tokio::time::Instant::now();
    for i in 0..n {
        tokio::time::sleep_until(t0 + Duration::from_secs_f64(i as f64 / rate)).await;
        publisher.publish(&mut conn, noop_event(i)).await?;
        rows.push((i, now_ns()));
    }
    let mut body = String::from("seq,commit_ns\n");
    for (i, t) in rows {
        body.push_str(&format!("{i},{t}\n"));
    }
    std::fs::write(out, body)?;
    Ok(())
}

fn report(v: serde_json::Value) {
    println!("{v}");
}
