//! Relay throughput: `cargo bench --bench relay`.
//!
//! Each scenario enqueues `PGBUS_RELAY_N` events (default 100,000; 20,000 with
//! `PGBUS_BENCH_QUICK=1`) for one subscription on a fresh database, then starts one
//! dispatcher (in this process) and times from just before `Dispatcher::start` until
//! `pgbus.all_deliveries` (the deliveries table and the delivery log) has no pending or
//! running row; afterwards it checks that the broker holds every event. That view is polled
//! every 5 ms from another connection only once the handler has succeeded for every event
//! (an in-process count): each poll scans every row, and polling it all along took most of
//! a core away from the dispatcher, PostgreSQL and the broker in the longer scenarios.
//!
//! | id | handler |
//! |---|---|
//! | `drain` | the no-op handler: the core drain, for reference |
//! | `nats` | the NATS JetStream relay to a throwaway `nats-server -js` (file storage) |
//! | `rabbitmq` | the RabbitMQ relay (persistent, publisher confirms, `mandatory`) to a throwaway node, one durable queue bound |
//! | `rabbitmq-structured` | the same, in CloudEvents structured mode (`Format::Structured`: the event as one JSON body, no `ce-*` headers) |
//! | `rabbitmq-direct` | the same relay and broker without pgbus's dispatcher or PostgreSQL: `RabbitMqRelay::relay` called for `n` events held in memory, `PGBUS_RELAY_CONCURRENCY` calls at a time — what the broker takes from the relay on this machine |
//!
//! Select with `PGBUS_BENCH=nats,rabbitmq`. The relay subscriptions run at
//! `PGBUS_RELAY_CONCURRENCY` (default the relay default, 512) with `PGBUS_BATCH_SIZE`
//! (default 500) and `PGBUS_RELAY_CHANNELS` AMQP channels (default 1, the relay's); the RabbitMQ queue
//! is declared with `x-queue-version` = `PGBUS_RABBITMQ_QUEUE_VERSION` when set (RabbitMQ's
//! own default otherwise; Debian 12's 3.10 uses version 1) and lazy with
//! `PGBUS_RABBITMQ_LAZY=1`. The relay scenarios also report how many handler calls were in
//! flight on average (sampled every millisecond). The brokers come from
//! `pgbus_testing` (Debian's `nats-server` and `rabbitmq-server`); PostgreSQL is the benches'
//! usual throwaway durable cluster or `DATABASE_URL`. Results: a table on stdout and
//! `target/pgbus-bench/relay-<timestamp>.json`.

#[path = "../common/mod.rs"]
mod common;

mod brokers;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use pgbus::relay::Format;
use pgbus::{Delivery, HandlerError, RawHandler, Subscription};
use serde_json::{Value, json};

const DB: &str = "pgbus_bench_relay";
const SUB: &str = "bench.relay";
const ALL: &[&str] = &[
    "drain",
    "nats",
    "rabbitmq",
    "rabbitmq-structured",
    "rabbitmq-direct",
];

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
    /// `x-queue-version` of the bench queue (`PGBUS_RABBITMQ_QUEUE_VERSION`), if set.
    pub queue_version: Option<i32>,
    /// `x-queue-mode: lazy` on the bench queue (`PGBUS_RABBITMQ_LAZY=1`).
    pub lazy_queue: bool,
}

impl Settings {
    fn from_env() -> Self {
        Settings {
            n: env_usize("PGBUS_RELAY_N", if quick() { 20_000 } else { 100_000 }),
            concurrency: env_usize("PGBUS_RELAY_CONCURRENCY", pgbus::relay::DEFAULT_CONCURRENCY),
            batch_size: env_usize("PGBUS_BATCH_SIZE", 500),
            channels: env_usize("PGBUS_RELAY_CHANNELS", 1),
            queue_version: std::env::var("PGBUS_RABBITMQ_QUEUE_VERSION")
                .ok()
                .and_then(|v| v.trim().parse().ok()),
            lazy_queue: std::env::var("PGBUS_RABBITMQ_LAZY").is_ok_and(|v| v.trim() == "1"),
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
                let counter = Counter::new(settings.n);
                let sub = Subscription::raw(SUB, [EVENT_TYPE], Noop(counter.clone()));
                drain(&server, &settings, "drain", sub, &counter, None).await?
            }
            "nats" => brokers::nats(&server, &settings).await?,
            "rabbitmq" => brokers::rabbitmq(&server, &settings, Format::Binary, "rabbitmq").await?,
            "rabbitmq-structured" => {
                brokers::rabbitmq(&server, &settings, Format::Structured, id).await?
            }
            _ => brokers::rabbitmq_direct(&settings).await?,
        };
        println!(
            "{:<16} {:>10} events/s  ({:.2} s){}{}",
            scenario["id"].as_str().unwrap_or("?"),
            thousands(scenario["events_per_s"].as_f64().unwrap_or(0.0)),
            scenario["secs"].as_f64().unwrap_or(0.0),
            scenario["in_flight_mean"]
                .as_f64()
                .map(|m| format!("  {m:.0} in flight (mean)"))
                .unwrap_or_default(),
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

/// How many [`Counted`] calls run at this moment (scenarios run one after the other).
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// A handler that counts its successes on a [`Counter`] (which wakes the waiter at
/// `settings.n`) and otherwise is `H`.
pub struct Counted<H>(pub H, pub Arc<Counter>);

#[async_trait::async_trait]
impl<H: RawHandler> RawHandler for Counted<H> {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        counted_in_flight(self.0.handle(delivery)).await?;
        self.1.hit();
        Ok(())
    }
}

/// Runs `call`, counted in [`IN_FLIGHT`] while it runs.
pub async fn counted_in_flight<T>(call: impl std::future::Future<Output = T>) -> T {
    IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
    let outcome = call.await;
    IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    outcome
}

/// Samples [`IN_FLIGHT`] every millisecond until aborted; the mean is read from `mean`
/// (sum and count of the samples).
pub fn sample_in_flight() -> (tokio::task::JoinHandle<()>, Arc<(AtomicUsize, AtomicUsize)>) {
    let mean = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let samples = mean.clone();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        loop {
            tick.tick().await;
            samples
                .0
                .fetch_add(IN_FLIGHT.load(Ordering::Relaxed), Ordering::Relaxed);
            samples.1.fetch_add(1, Ordering::Relaxed);
        }
    });
    (task, mean)
}

/// The mean of [`sample_in_flight`]'s samples, `None` without samples or when nothing
/// was ever in flight (a handler that is not [`Counted`]).
pub fn in_flight_mean(mean: &(AtomicUsize, AtomicUsize)) -> Option<f64> {
    let (sum, n) = (
        mean.0.load(Ordering::Relaxed),
        mean.1.load(Ordering::Relaxed),
    );
    (n > 0 && sum > 0).then(|| sum as f64 / n as f64)
}

/// Enqueues `settings.n` events for `subscription`, drains them with one dispatcher and
/// returns the scenario's figures. `counter` counts the subscription handler's successes
/// (target `settings.n`); `broker` describes the broker, for the report.
pub async fn drain(
    server: &Server,
    settings: &Settings,
    id: &str,
    subscription: Subscription,
    counter: &Counter,
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
    let (sampler, in_flight) = sample_in_flight();
    let handle = dispatcher.start().await?;
    // Every handler call succeeded (at least once per event) before the first poll.
    if !counter.wait(Duration::from_secs(600)).await {
        return Err(format!("{} of {} handled after 600 s", counter.count(), settings.n).into());
    }
    wait_all_done(&mut checker, Duration::from_secs(60)).await?;
    let secs = t0.elapsed().as_secs_f64();
    sampler.abort();
    handle.shutdown().await?;
    pool.close().await;
    Ok(json!({
        "id": id,
        "n": settings.n,
        "secs": secs,
        "events_per_s": settings.n as f64 / secs,
        "in_flight_mean": in_flight_mean(&in_flight),
        "broker": broker,
    }))
}
