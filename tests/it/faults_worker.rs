//! The worker process of the process-kill tests, and the fleet that runs it.
//!
//! A worker is this test binary run again (`std::env::current_exe()`) with
//! `--exact faults_worker::worker_main --ignored` and its settings in `PGBUS_FAULT_WORKER_*`
//! environment variables: [`worker_main`] then runs one dispatcher until the process is
//! killed. Without those variables (a plain `cargo test -- --ignored`) it returns at once.
//!
//! A worker also exits when its stdin reaches end of file: the test holds the write end of
//! that pipe, so workers never outlive the test process, even if it is killed.

use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use pgbus::{Delivery, Dispatcher, HandlerError, RawHandler, RetryPolicy, Subscription};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::process::{Child, Command};

use crate::faults_support::{record, verbose};

const URL: &str = "PGBUS_FAULT_WORKER_URL";
const MODE: &str = "PGBUS_FAULT_WORKER_MODE";
const SUBS: &str = "PGBUS_FAULT_WORKER_SUBS";
const PATTERN: &str = "PGBUS_FAULT_WORKER_PATTERN";
const LEASE_MS: &str = "PGBUS_FAULT_WORKER_LEASE_MS";
const CONCURRENCY: &str = "PGBUS_FAULT_WORKER_CONCURRENCY";
const BATCH: &str = "PGBUS_FAULT_WORKER_BATCH";
const MAX_ATTEMPTS: &str = "PGBUS_FAULT_WORKER_MAX_ATTEMPTS";
const POLL_MS: &str = "PGBUS_FAULT_WORKER_POLL_MS";

/// What a worker's handlers do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Record the call in `fault_log`, then succeed.
    Record,
    /// Like `Record`, but abort the whole process on an event whose data has `"poison": true`.
    Poison,
}

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
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The worker process's entry point (see the module documentation).
#[test]
#[ignore = "the worker process of the fault tests; does nothing unless PGBUS_FAULT_WORKER_URL is set"]
fn worker_main() {
    let Ok(url) = std::env::var(URL) else {
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
    let config = WorkerConfig {
        url,
        mode: if std::env::var(MODE).as_deref() == Ok("poison") {
            Mode::Poison
        } else {
            Mode::Record
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
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("worker runtime");
    runtime.block_on(run(config));
}

async fn run(config: WorkerConfig) {
    let pid = std::process::id();
    let pool = |n| {
        PgPoolOptions::new()
            .max_connections(n)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy(&config.url)
            .expect("worker pool")
    };
    let dispatch_pool = pool(6);
    let handler_pool = pool(6);
    let build = || {
        let mut builder = Dispatcher::builder(dispatch_pool.clone())
            .poll_interval(config.poll_interval)
            .batch_size(config.batch_size)
            .shutdown_timeout(Duration::from_secs(1));
        for name in &config.subscriptions {
            builder = builder.subscribe(
                Subscription::raw(
                    name.as_str(),
                    [config.pattern.as_str()],
                    WorkerHandler {
                        pool: handler_pool.clone(),
                        mode: config.mode,
                        pid,
                    },
                )
                .lease(config.lease)
                .concurrency(config.concurrency)
                .retry(
                    RetryPolicy::default()
                        .max_attempts(config.max_attempts)
                        .base_delay(Duration::from_millis(50))
                        .max_delay(Duration::from_millis(500)),
                ),
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

struct WorkerHandler {
    pool: PgPool,
    mode: Mode,
    pid: u32,
}

#[async_trait]
impl RawHandler for WorkerHandler {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        if self.mode == Mode::Poison && delivery.event.data["poison"] == true {
            eprintln!(
                "pgbus fault worker {}: poison delivery {} (attempt {}): aborting",
                self.pid, delivery.id, delivery.attempt
            );
            std::process::abort();
        }
        record(&self.pool, delivery, self.pid).await?;
        Ok(())
    }
}

/// A set of worker processes; every one still running is killed when this is dropped
/// (also on panic), and each exits by itself if the test process dies.
#[derive(Debug)]
pub struct Fleet {
    config: WorkerConfig,
    exe: PathBuf,
    /// (pid, process) of the running workers.
    workers: Vec<(u32, Child)>,
    /// Pids of the workers this fleet killed.
    pub killed: HashSet<u32>,
    /// Workers that exited by themselves: (pid, exit status).
    pub exited: Vec<(u32, String)>,
    spawned: usize,
}

impl Fleet {
    pub fn new(config: WorkerConfig) -> Fleet {
        Fleet {
            config,
            exe: std::env::current_exe().expect("the test binary's path"),
            workers: Vec::new(),
            killed: HashSet::new(),
            exited: Vec::new(),
            spawned: 0,
        }
    }

    /// Starts one more worker.
    pub fn spawn(&mut self) -> u32 {
        let c = &self.config;
        let mut cmd = Command::new(&self.exe);
        cmd.args([
            "--exact",
            "faults_worker::worker_main",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(URL, &c.url)
        .env(
            MODE,
            match c.mode {
                Mode::Record => "record",
                Mode::Poison => "poison",
            },
        )
        .env(SUBS, c.subscriptions.join(","))
        .env(PATTERN, &c.pattern)
        .env(LEASE_MS, c.lease.as_millis().to_string())
        .env(CONCURRENCY, c.concurrency.to_string())
        .env(BATCH, c.batch_size.to_string())
        .env(MAX_ATTEMPTS, c.max_attempts.to_string())
        .env(POLL_MS, c.poll_interval.as_millis().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(if verbose() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .kill_on_drop(true);
        let child = cmd.spawn().expect("spawning a worker process");
        let pid = child.id().expect("a running worker has a pid");
        self.workers.push((pid, child));
        self.spawned += 1;
        pid
    }

    /// How many workers were started in all.
    pub fn spawned(&self) -> usize {
        self.spawned
    }

    /// How many workers run now.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Kills worker `index` with SIGKILL and waits for it; returns its pid.
    pub async fn kill(&mut self, index: usize) -> u32 {
        let (pid, mut child) = self.workers.swap_remove(index);
        let _ = child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        self.killed.insert(pid);
        pid
    }

    /// Forgets workers that exited by themselves (recording them in `exited`); returns
    /// how many did.
    pub fn reap(&mut self) -> usize {
        let mut n = 0;
        let mut i = 0;
        while i < self.workers.len() {
            match self.workers[i].1.try_wait() {
                Ok(Some(status)) => {
                    let (pid, _) = self.workers.swap_remove(i);
                    self.exited.push((pid, status.to_string()));
                    n += 1;
                }
                _ => i += 1,
            }
        }
        n
    }

    /// Kills every worker.
    pub async fn kill_all(&mut self) {
        while !self.workers.is_empty() {
            self.kill(0).await;
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (_, child) in &mut self.workers {
            let _ = child.start_kill();
        }
    }
}
