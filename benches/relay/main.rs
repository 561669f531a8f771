//! Relay throughput: `cargo bench --bench relay`.
//!
//! Each scenario enqueues `PGBUS_RELAY_N` events (default 100,000; 20,000 with
//! `PGBUS_BENCH_QUICK=1`) for one subscription on a fresh database, then starts one
//! dispatcher (in this process) and times from just before `Dispatcher::start` until
//! `pgbus.all_deliveries` (the deliveries table and the delivery log) has no pending or
//! running row (polled every 5 ms from another connection); afterwards it checks that the broker holds every event.
//!
//! | id | handler |
//! |---|---|
//! | `drain` | the no-op handler: the core drain, for reference |
//! | `nats` | the NATS JetStream relay to a throwaway `nats-server -js` (file storage) |
//! | `rabbitmq` | the RabbitMQ relay (persistent, publisher confirms, `mandatory`) to a throwaway node, one durable queue bound |
//!
//! Select with `PGBUS_BENCH=nats,rabbitmq`. The relay subscriptions run at
//! `PGBUS_RELAY_CONCURRENCY` (default the relay default, 512) with `PGBUS_BATCH_SIZE`
//! (default 500) and `PGBUS_RELAY_CHANNELS` AMQP channels (default 4). The brokers come from
//! `pgbus_testing` (Debian's `nats-server` and `rabbitmq-server`); PostgreSQL is the benches'
//! usual throwaway durable cluster or `DATABASE_URL`. Results: a table on stdout and
//! `target/pgbus-bench/relay-<timestamp>.json`.

#[path = "../common/mod.rs"]
mod common;

mod brokers;

use std::time::{Duration, Instant};

use common::*;
use pgbus::Subscription;
use serde_json::{Value, json};

const DB: &str = "pgbus_bench_relay";
const SUB: &str = "bench.relay";
const ALL: &[&str] = &["drain", "nats", "rabbitmq"];

#[tokio::main]
async fn main() {
    run_bench("relay", "relay throughput", "relay bench failed", run()).await;
}

/// The relay scenarios' settings.
pub struct Settings {
    pub n: usize,
    pub concurrency: usize,
    pub batch_size: usize,
    pub channels: usize,
}

impl Settings {
    fn from_env() -> Self {
        Settings {
            n: env_usize("PGBUS_RELAY_N", if quick() { 20_000 } else { 100_000 }),
            concurrency: env_usize("PGBUS_RELAY_CONCURRENCY", pgbus::relay::DEFAULT_CONCURRENCY),
            batch_size: env_usize("PGBUS_BATCH_SIZE", 500),
            channels: env_usize("PGBUS_RELAY_CHANNELS", 4),
        }
    }
}

async fn run() -> Res<()> {
    init_logging();
    let selected: Vec<String> = match std::env::var("PGBUS_BENCH") {
        Ok(s) if !s.trim().is_empty() => s.split(',').map(|s| s.trim().to_owned()).collect(),
        _ => ALL.iter().map(|s| (*s).to_owned()).collect(),
    };
    if let Some(s) = selected.iter().find(|s| !ALL.contains(&s.as_str())) {
        return Err(format!("unknown scenario {s:?}; known: {}", ALL.join(",")).into());
    }
    let settings = Settings::from_env();
    let (server, machine, pg) = start_described().await?;
    println!(
        "relay: {} events per scenario, 1 subscription, dispatcher in-process (pool of 10), \
         batch_size {}, relay concurrency {}, AMQP channels {}\n",
        thousands(settings.n as f64),
        settings.batch_size,
        settings.concurrency,
        settings.channels
    );
    let mut scenarios = Vec::new();
    for id in &selected {
        let scenario = match id.as_str() {
            "drain" => {
                let counter = Counter::new(usize::MAX);
                let sub = Subscription::raw(SUB, [EVENT_TYPE], Noop(counter));
                drain(&server, &settings, "drain", sub, None).await?
            }
            "nats" => brokers::nats(&server, &settings).await?,
            _ => brokers::rabbitmq(&server, &settings).await?,
        };
        println!(
            "{:<10} {:>10} events/s  ({:.2} s){}",
            scenario["id"].as_str().unwrap_or("?"),
            thousands(scenario["events_per_s"].as_f64().unwrap_or(0.0)),
            scenario["secs"].as_f64().unwrap_or(0.0),
            scenario["broker"]
                .as_str()
                .map(|b| format!("  {b}"))
                .unwrap_or_default()
        );
        scenarios.push(scenario);
    }
    let report = json!({
        "bench": "relay",
        "started_at": chrono::Utc::now().to_rfc3339(),
        "machine": machine,
        "postgres": pg,
        "settings": {
            "n": settings.n, "batch_size": settings.batch_size,
            "concurrency": settings.concurrency, "amqp_channels": settings.channels,
        },
        "scenarios": scenarios,
    });
    let file = write_results("relay", &timestamp(), &report)?;
    println!("\nresults written to {}", file.display());
    server.finish().await?;
    Ok(())
}

/// Polls every 5 ms (from its own connection) until no delivery, in the deliveries table or
/// the delivery log (`pgbus.all_deliveries`), is pending or running.
async fn wait_all_done(checker: &mut sqlx::PgConnection, timeout: Duration) -> Res<()> {
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
            return Err(format!("{open} deliveries still open after {timeout:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Enqueues `settings.n` events for `subscription`, drains them with one dispatcher and
/// returns the scenario's figures. `broker` describes the broker, for the report.
pub async fn drain(
    server: &Server,
    settings: &Settings,
    id: &str,
    subscription: Subscription,
    broker: Option<String>,
) -> Res<Value> {
    server.fresh_db(DB).await?;
    let pool = server.pool(DB, 10).await?;
    register(&pool, &[SUB]).await?;
    enqueue_batches(&pool, settings.n).await?;
    server.settle(DB).await?;
    let mut checker = server.connect(DB).await?;
    let dispatcher = pgbus::Dispatcher::builder(pool.clone())
        .batch_size(settings.batch_size)
        .shutdown_timeout(Duration::from_secs(10))
        .subscribe(subscription.concurrency(settings.concurrency))
        .build()?;
    let t0 = Instant::now();
    let handle = dispatcher.start().await?;
    wait_all_done(&mut checker, Duration::from_secs(600)).await?;
    let secs = t0.elapsed().as_secs_f64();
    handle.shutdown().await?;
    pool.close().await;
    Ok(json!({
        "id": id,
        "n": settings.n,
        "secs": secs,
        "events_per_s": settings.n as f64 / secs,
        "broker": broker,
    }))
}
