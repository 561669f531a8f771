//! The worker process of the process-kill tests.
//!
//! A worker is this test binary run again ([`super::fleet::Fleet`] spawns it) filtered to
//! the ignored test [`worker_main`], its settings ([`WorkerConfig`]) in `PGBUS_FAULT_WORKER_*`
//! environment variables: it then runs one dispatcher until the process is killed. Without
//! those variables (a plain `cargo test -- --ignored`) it returns at once.
//!
//! A worker also exits when its stdin reaches end of file: the test holds the write end of
//! that pipe, so workers never outlive the test process, even if it is killed.

use std::io::Read;
use std::time::Duration;

use async_trait::async_trait;
use pgbus::relay::Destinations;
use pgbus::relay::nats::NatsRelay;
use pgbus::relay::rabbitmq::RabbitMqRelay;
use pgbus::{Delivery, Dispatcher, HandlerError, RawHandler, Subscription};
use sqlx::PgPool;
use tokio::process::Command;

use super::database::lazy_pool;
use super::dispatcher::fault_retry;
use super::env::verbose;
use super::fault_log::{TxRecorder, record};
use super::order_log;

/// The libtest name of [`worker_main`].
pub const WORKER_TEST: &str = "support::worker::worker_main";

const URL: &str = "PGBUS_FAULT_WORKER_URL";
const MODE: &str = "PGBUS_FAULT_WORKER_MODE";
const SUBS: &str = "PGBUS_FAULT_WORKER_SUBS";
const PATTERN: &str = "PGBUS_FAULT_WORKER_PATTERN";
const LEASE_MS: &str = "PGBUS_FAULT_WORKER_LEASE_MS";
const CONCURRENCY: &str = "PGBUS_FAULT_WORKER_CONCURRENCY";
const BATCH: &str = "PGBUS_FAULT_WORKER_BATCH";
const MAX_ATTEMPTS: &str = "PGBUS_FAULT_WORKER_MAX_ATTEMPTS";
const POLL_MS: &str = "PGBUS_FAULT_WORKER_POLL_MS";
const RELAY_URL: &str = "PGBUS_FAULT_WORKER_RELAY_URL";

/// What a worker's handlers do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Record the call in `fault_log`, then succeed.
    Record,
    /// Like `Record`, but abort the whole process on an event whose data has `"poison": true`.
    Poison,
    /// Never return: the worker holds whatever it claims until it is killed.
    Hold,
    /// An ordered subscription: record each call's start and end in `order_log`
    /// (`super::order_log`), then succeed.
    Ordered,
    /// Subscriptions whose name starts with `tx-` record the call in `fault_log` inside a
    /// transactional handler's transaction (`pgbus::RawTxHandler`); the others as `Record`.
    TxRecord,
    /// Relay to the NATS server at `relay_url`: subjects `faults.<type>`, stream `FAULTS`.
    RelayNats,
    /// Relay to the RabbitMQ node at `relay_url`: exchange `pgbus.faults`, routing key the
    /// event type.
    RelayRabbitMq,
}

/// The stream the NATS relay workers publish to (subjects `faults.>`).
pub const FAULT_STREAM: &str = "FAULTS";
/// The exchange the RabbitMQ relay workers publish to.
pub const FAULT_EXCHANGE: &str = "pgbus.faults";

/// How workers are set up.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub url: String,
    pub mode: Mode,
    pub subscriptions: Vec<String>,
    pub pattern: String,
    pub lease: Duration,
    pub concurrency: usize,
    pub batch_size: usize,
    pub max_attempts: u32,
    pub poll_interval: Duration,
    /// The broker of the relay modes.
    pub relay_url: Option<String>,
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl WorkerConfig {
    /// Workers of `mode` serving `subscriptions` of `pattern` on the database at `url`, with
    /// the fault tests' usual settings: a 2 s lease, 8 handlers, batches of 25, 25 attempts,
    /// a 250 ms poll interval, no relay. Tests change what they need with `..`.
    pub fn new(url: &str, mode: Mode, subscriptions: &[&str], pattern: &str) -> Self {
        WorkerConfig {
            url: url.to_owned(),
            mode,
            subscriptions: subscriptions.iter().map(|s| (*s).to_owned()).collect(),
            pattern: pattern.to_owned(),
            lease: Duration::from_secs(2),
            concurrency: 8,
            batch_size: 25,
            max_attempts: 25,
            poll_interval: Duration::from_millis(250),
            relay_url: None,
        }
    }

    /// Passes this configuration to a worker process in its environment.
    pub fn export(&self, cmd: &mut Command) {
        let mode = match self.mode {
            Mode::Record => "record",
            Mode::Poison => "poison",
            Mode::Hold => "hold",
            Mode::Ordered => "ordered",
            Mode::TxRecord => "tx-record",
            Mode::RelayNats => "relay-nats",
            Mode::RelayRabbitMq => "relay-rabbitmq",
        };
        if let Some(url) = &self.relay_url {
            cmd.env(RELAY_URL, url);
        }
        cmd.env(URL, &self.url)
            .env(MODE, mode)
            .env(SUBS, self.subscriptions.join(","))
            .env(PATTERN, &self.pattern)
            .env(LEASE_MS, self.lease.as_millis().to_string())
            .env(CONCURRENCY, self.concurrency.to_string())
            .env(BATCH, self.batch_size.to_string())
            .env(MAX_ATTEMPTS, self.max_attempts.to_string())
            .env(POLL_MS, self.poll_interval.as_millis().to_string());
    }

    /// The configuration [`WorkerConfig::export`] passed, `None` outside a worker process.
    fn import() -> Option<WorkerConfig> {
        Some(WorkerConfig {
            url: std::env::var(URL).ok()?,
            mode: match std::env::var(MODE).as_deref() {
                Ok("poison") => Mode::Poison,
                Ok("hold") => Mode::Hold,
                Ok("ordered") => Mode::Ordered,
                Ok("tx-record") => Mode::TxRecord,
                Ok("relay-nats") => Mode::RelayNats,
                Ok("relay-rabbitmq") => Mode::RelayRabbitMq,
                _ => Mode::Record,
            },
            subscriptions: std::env::var(SUBS)
                .unwrap_or_default()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            pattern: std::env::var(PATTERN).unwrap_or_else(|_| "*".to_owned()),
            lease: Duration::from_millis(env(LEASE_MS, 2000)),
            concurrency: env(CONCURRENCY, 8),
            batch_size: env(BATCH, 50),
            max_attempts: env(MAX_ATTEMPTS, 25),
            poll_interval: Duration::from_millis(env(POLL_MS, 250)),
            relay_url: std::env::var(RELAY_URL).ok(),
        })
    }
}

/// The worker process's entry point (see the module documentation).
#[test]
#[ignore = "the worker process of the fault tests; does nothing unless PGBUS_FAULT_WORKER_URL is set"]
fn worker_main() {
    let Some(config) = WorkerConfig::import() else {
        return;
    };
    // Exit when the test process closes our stdin (or dies).
    std::thread::spawn(|| {
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => std::process::exit(0),
                Ok(_) => {}
            }
        }
    });
    if verbose() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "pgbus=info".into()),
            )
            .with_writer(std::io::stderr)
            .try_init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("worker runtime");
    runtime.block_on(run(config));
}

async fn run(config: WorkerConfig) {
    let pid = std::process::id();
    let dispatch_pool = lazy_pool(&config.url, 6, Duration::from_secs(10));
    let handler_pool = lazy_pool(&config.url, 6, Duration::from_secs(10));
    let relay = relay_subscriber(&config).await;
    let build = || {
        let mut builder = Dispatcher::builder(dispatch_pool.clone())
            .poll_interval(config.poll_interval)
            .batch_size(config.batch_size)
            .shutdown_timeout(Duration::from_secs(1));
        for name in &config.subscriptions {
            let subscription = match &relay {
                Some(relay) => relay(name),
                None if config.mode == Mode::TxRecord && name.starts_with("tx-") => {
                    Subscription::raw_tx(name.as_str(), [config.pattern.as_str()], TxRecorder)
                }
                None => Subscription::raw(
                    name.as_str(),
                    [config.pattern.as_str()],
                    WorkerHandler {
                        pool: handler_pool.clone(),
                        mode: config.mode,
                        pid,
                    },
                ),
            };
            let subscription = if config.mode == Mode::Ordered {
                subscription.ordered()
            } else {
                subscription
            };
            builder = builder.subscribe(
                subscription
                    .lease(config.lease)
                    .concurrency(config.concurrency)
                    .retry(fault_retry().max_attempts(config.max_attempts)),
            );
        }
        builder.build().expect("valid worker settings")
    };
    let mut backoff = Duration::from_millis(50);
    let _handle = loop {
        match build().start().await {
            Ok(handle) => break handle,
            Err(e) => {
                eprintln!("pgbus fault worker {pid}: start failed: {e}; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    };
    println!("pgbus fault worker {pid} running");
    // Run until killed (or until stdin closes).
    std::future::pending::<()>().await;
}

type RelaySubscriber = Box<dyn Fn(&str) -> Subscription>;

/// In the relay modes, what makes a relay subscription of a name.
async fn relay_subscriber(config: &WorkerConfig) -> Option<RelaySubscriber> {
    let url = config.relay_url.clone().unwrap_or_default();
    let pattern = config.pattern.clone();
    match config.mode {
        Mode::RelayNats => {
            let relay = NatsRelay::builder(url)
                .destinations(Destinations::prefix("faults."))
                .stream(FAULT_STREAM)
                .ack_timeout(Duration::from_secs(2))
                .connect()
                .await
                .expect("the NATS relay");
            Some(Box::new(move |name| {
                relay.subscription(name, [pattern.as_str()])
            }))
        }
        Mode::RelayRabbitMq => {
            let relay = RabbitMqRelay::builder(url, FAULT_EXCHANGE)
                .ack_timeout(Duration::from_secs(2))
                .build()
                .expect("the RabbitMQ relay");
            Some(Box::new(move |name| {
                relay.subscription(name, [pattern.as_str()])
            }))
        }
        _ => None,
    }
}

struct WorkerHandler {
    pool: PgPool,
    mode: Mode,
    pid: u32,
}

#[async_trait]
impl RawHandler for WorkerHandler {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        if self.mode == Mode::Hold {
            std::future::pending::<()>().await;
        }
        if self.mode == Mode::Poison && delivery.event.data["poison"] == true {
            eprintln!(
                "pgbus fault worker {}: poison delivery {} (attempt {}): aborting",
                self.pid, delivery.id, delivery.attempt
            );
            std::process::abort();
        }
        if self.mode == Mode::Ordered {
            order_log::run(&self.pool, delivery, self.pid).await?;
            return Ok(());
        }
        record(&self.pool, delivery, self.pid).await?;
        Ok(())
    }
}
