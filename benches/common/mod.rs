//! Shared by the `throughput` and `soak` benches: the server, fresh databases, machine and
//! server description, percentiles, the no-op handler, result files and SVG plots.
//!
//! Not every bench uses every helper.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pgbus::{Delivery, Dispatcher, HandlerError, NewEvent, Publisher, RawHandler, Subscription};
use pgbus_testing::{Cluster, ClusterOptions};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Res<T> = Result<T, BoxError>;

/// The event type every bench publishes, and the pattern its subscriptions match.
pub const EVENT_TYPE: &str = "bench.noop";
/// Events per `publish_all` call when pre-enqueueing.
pub const BATCH: usize = 1000;

// ---------------------------------------------------------------- environment

/// Logs the library's warnings (lease takeovers, failed claims or writes, retries) to stderr
/// with timestamps, so that a stall in a run can be matched with what the dispatcher saw.
/// `RUST_LOG` overrides the level (default `pgbus=warn`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("pgbus=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        _ => default,
    }
}

pub fn env_f64(name: &str, default: f64) -> f64 {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        _ => default,
    }
}

pub fn env_opt_usize(name: &str) -> Option<usize> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|_| env_usize(name, 0))
}

/// `PGBUS_BENCH_STATEMENTS=1`: load pg_stat_statements (throwaway cluster only) and print the
/// top statements of each drain. Off by default: it costs a little on every statement.
pub fn statements_enabled() -> bool {
    std::env::var("PGBUS_BENCH_STATEMENTS").is_ok_and(|v| !v.is_empty() && v != "0")
}

pub fn quick() -> bool {
    std::env::var("PGBUS_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `cargo bench` passes `--bench`; `cargo test --benches` does not. A bench that is run as a
/// test only says how to run it (it would otherwise start a server and run for minutes).
pub fn invoked_as_bench() -> bool {
    std::env::args().any(|a| a == "--bench")
        || std::env::var("PGBUS_BENCH_FORCE").is_ok_and(|v| !v.is_empty() && v != "0")
}

pub fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

pub fn timestamp() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()
}

/// Where result files go: `$PGBUS_BENCH_OUT`, else `target/pgbus-bench` of this crate.
pub fn out_dir() -> PathBuf {
    std::env::var_os("PGBUS_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pgbus-bench"))
}

/// `$var`, else `benches/results/<file>` of this crate.
pub fn svg_path(var: &str, file: &str) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("benches/results")
            .join(file)
    })
}

// ---------------------------------------------------------------- dispatcher tuning

/// Dispatcher and subscription settings: library defaults unless overridden by
/// `PGBUS_BATCH_SIZE`, `PGBUS_CONCURRENCY`, `PGBUS_COMPLETE_BATCH`, `PGBUS_COMPLETE_DELAY_MS`.
#[derive(Debug, Clone, Default)]
pub struct Tuning {
    pub batch_size: Option<usize>,
    pub concurrency: Option<usize>,
    pub complete_batch: Option<usize>,
    pub complete_delay_ms: Option<usize>,
}

impl Tuning {
    pub fn from_env() -> Self {
        Tuning {
            batch_size: env_opt_usize("PGBUS_BATCH_SIZE"),
            concurrency: env_opt_usize("PGBUS_CONCURRENCY"),
            complete_batch: env_opt_usize("PGBUS_COMPLETE_BATCH"),
            complete_delay_ms: env_opt_usize("PGBUS_COMPLETE_DELAY_MS"),
        }
    }

    pub fn describe(&self) -> Value {
        let show = |v: Option<usize>, default: &str| {
            v.map_or_else(|| format!("{default} (default)"), |v| v.to_string())
        };
        json!({
            "batch_size": show(self.batch_size, "500"),
            "concurrency": show(self.concurrency, "32"),
            "complete_batch": show(self.complete_batch, "1000"),
            "complete_delay_ms": show(self.complete_delay_ms, "0"),
            "listen": true,
            "is_default": self.batch_size.is_none() && self.concurrency.is_none()
                && self.complete_batch.is_none() && self.complete_delay_ms.is_none(),
        })
    }

    pub fn subscription(&self, name: &str, handler: impl RawHandler) -> Subscription {
        let sub = Subscription::raw(name, [EVENT_TYPE], handler);
        match self.concurrency {
            Some(c) => sub.concurrency(c),
            None => sub,
        }
    }

    pub fn dispatcher(&self, pool: &PgPool, subs: Vec<Subscription>) -> Res<Dispatcher> {
        let mut b = Dispatcher::builder(pool.clone()).shutdown_timeout(Duration::from_secs(10));
        for s in subs {
            b = b.subscribe(s);
        }
        if let Some(n) = self.batch_size {
            b = b.batch_size(n);
        }
        if let Some(n) = self.complete_batch {
            b = b.complete_batch(n);
        }
        if let Some(ms) = self.complete_delay_ms {
            b = b.complete_delay(Duration::from_millis(ms as u64));
        }
        Ok(b.build()?)
    }
}

// ---------------------------------------------------------------- the no-op handler

/// Counts handler runs (and optionally records `(seq, start_ns)` from the payload's `seq`, or
/// the latency against the payload's `t` in ns); wakes `wait` at the target count.
#[derive(Debug, Default)]
pub struct Counter {
    pub done: AtomicUsize,
    target: AtomicUsize,
    reached: tokio::sync::Notify,
    pub record_seq: bool,
    pub starts: Mutex<Vec<(i64, i128)>>,
    pub record_age: bool,
    pub ages_ms: Mutex<Vec<f32>>,
}

impl Counter {
    pub fn new(target: usize) -> Arc<Self> {
        Arc::new(Counter {
            target: AtomicUsize::new(target),
            ..Counter::default()
        })
    }

    pub fn recording_seq(target: usize) -> Arc<Self> {
        Arc::new(Counter {
            target: AtomicUsize::new(target),
            record_seq: true,
            starts: Mutex::new(Vec::with_capacity(target)),
            ..Counter::default()
        })
    }

    pub fn recording_age(target: usize) -> Arc<Self> {
        Arc::new(Counter {
            target: AtomicUsize::new(target),
            record_age: true,
            ages_ms: Mutex::new(Vec::with_capacity(target)),
            ..Counter::default()
        })
    }

    /// Waits until the handler ran `target` times, or `timeout` passed (then returns false).
    pub async fn wait(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.reached.notified();
            if self.done.load(Ordering::SeqCst) >= self.target.load(Ordering::SeqCst) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.done.load(Ordering::SeqCst) >= self.target.load(Ordering::SeqCst);
            }
        }
    }

    pub fn count(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }
}

/// A no-op handler over a shared [`Counter`].
#[derive(Debug, Clone)]
pub struct Noop(pub Arc<Counter>);

#[async_trait::async_trait]
impl RawHandler for Noop {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let c = &self.0;
        if c.record_seq {
            let t = now_ns();
            let seq = delivery
                .event
                .data
                .get("seq")
                .and_then(Value::as_i64)
                .unwrap_or(-1);
            c.starts.lock().unwrap().push((seq, t));
        }
        if c.record_age {
            let t = now_ns();
            if let Some(sent) = delivery.event.data.get("t").and_then(Value::as_i64) {
                c.ages_ms
                    .lock()
                    .unwrap()
                    .push(((t - sent as i128) as f64 / 1e6) as f32);
            }
        }
        let done = c.done.fetch_add(1, Ordering::SeqCst) + 1;
        if done >= c.target.load(Ordering::SeqCst) {
            c.reached.notify_waiters();
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- the server

/// A throwaway durable cluster, or the server in `DATABASE_URL`.
pub struct Server {
    cluster: Option<Cluster>,
    base: PgConnectOptions,
    /// The database to connect to for CREATE/DROP DATABASE.
    admin_db: String,
    created: Mutex<Vec<String>>,
}

impl Server {
    pub async fn start() -> Res<Server> {
        match pgbus_testing::database_url_from_env() {
            Some(url) => {
                let base = PgConnectOptions::from_str(&url)?.disable_statement_logging();
                let admin_db = base.get_database().unwrap_or("postgres").to_owned();
                eprintln!(
                    "using the server in DATABASE_URL; benches create and drop databases \
                     named pgbus_bench_* on it"
                );
                Ok(Server {
                    cluster: None,
                    base,
                    admin_db,
                    created: Mutex::new(Vec::new()),
                })
            }
            None => {
                eprintln!("starting a throwaway PostgreSQL (ClusterOptions::durable()) ...");
                let mut opts = ClusterOptions::durable();
                if statements_enabled() {
                    opts.extra_settings.push((
                        "shared_preload_libraries".to_owned(),
                        "pg_stat_statements".to_owned(),
                    ));
                }
                let cluster = Cluster::start(opts).await?;
                let base = PgConnectOptions::from_str(&cluster.url("postgres"))?
                    .disable_statement_logging();
                eprintln!(
                    "  {} on port {}",
                    cluster.settings_summary(),
                    cluster.port()
                );
                Ok(Server {
                    cluster: Some(cluster),
                    base,
                    admin_db: "postgres".to_owned(),
                    created: Mutex::new(Vec::new()),
                })
            }
        }
    }

    pub fn is_throwaway(&self) -> bool {
        self.cluster.is_some()
    }

    pub fn options(&self, db: &str) -> PgConnectOptions {
        self.base.clone().database(db)
    }

    pub fn url(&self, db: &str) -> String {
        match &self.cluster {
            Some(c) => c.url(db),
            None => self.options(db).to_url_lossy().to_string(),
        }
    }

    pub async fn admin(&self) -> Res<PgConnection> {
        Ok(PgConnection::connect_with(&self.options(&self.admin_db)).await?)
    }

    /// Drops (if present) and creates database `name`, migrates pgbus into it.
    pub async fn fresh_db(&self, name: &str) -> Res<()> {
        assert!(
            name.starts_with("pgbus_bench"),
            "only pgbus_bench* databases"
        );
        let mut admin = self.admin().await?;
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await?;
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await?;
        admin.close().await?;
        {
            let mut created = self.created.lock().unwrap();
            if !created.iter().any(|n| n == name) {
                created.push(name.to_owned());
            }
        }
        let pool = self.pool(name, 2).await?;
        pgbus::migrate(&pool).await?;
        pool.close().await;
        Ok(())
    }

    pub async fn pool(&self, db: &str, max: u32) -> Res<PgPool> {
        Ok(PgPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(self.options(db))
            .await?)
    }

    pub async fn connect(&self, db: &str) -> Res<PgConnection> {
        Ok(PgConnection::connect_with(&self.options(db)).await?)
    }

    /// The harness's settle step, as in the peers harness: `VACUUM ANALYZE` + `CHECKPOINT`.
    pub async fn settle(&self, db: &str) -> Res<()> {
        let mut c = self.connect(db).await?;
        c.execute("VACUUM ANALYZE").await?;
        c.execute("CHECKPOINT").await?;
        c.close().await?;
        Ok(())
    }

    /// Drops the databases this process created (on a DATABASE_URL server) and stops the
    /// throwaway cluster.
    pub async fn finish(self) -> Res<()> {
        let names = self.created.lock().unwrap().clone();
        if let Ok(mut admin) = self.admin().await {
            for n in names {
                let _ = admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {n} WITH (FORCE)"
                    )))
                    .await;
            }
            let _ = admin.close().await;
        }
        if let Some(c) = self.cluster {
            c.stop_fast().await?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- description

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

pub fn machine() -> Value {
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    json!({
        "nproc": nproc,
        "memory_gib": (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "cpu_model": model,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "loadavg_at_start": read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        "rustc": rustc,
    })
}

const SETTINGS: &[&str] = &[
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_level",
    "shared_buffers",
    "max_connections",
    "max_wal_size",
    "checkpoint_timeout",
    "work_mem",
    "autovacuum",
    "autovacuum_naptime",
    "jit",
    "shared_preload_libraries",
];

pub async fn postgres(server: &Server) -> Res<Value> {
    let mut c = server.admin().await?;
    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(&mut c)
        .await?;
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY($1) ORDER BY name",
    )
    .bind(SETTINGS)
    .fetch_all(&mut c)
    .await?;
    c.close().await?;
    let settings: serde_json::Map<String, Value> = rows
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Ok(json!({
        "version": version,
        "server": if server.is_throwaway() { "throwaway cluster started by the bench (pgbus_testing::ClusterOptions::durable())" } else { "DATABASE_URL" },
        "settings": settings,
    }))
}

pub fn print_header(machine: &Value, pg: &Value) {
    println!(
        "machine: {} vCPU, {} GiB RAM, {} (kernel {}; load average at start {})",
        machine["nproc"],
        machine["memory_gib"],
        machine["cpu_model"].as_str().unwrap_or("?"),
        machine["kernel"].as_str().unwrap_or("?"),
        machine["loadavg_at_start"].as_str().unwrap_or("?"),
    );
    println!("server:  {}", pg["version"].as_str().unwrap_or("?"));
    let s = pg["settings"].as_object().cloned().unwrap_or_default();
    let line: Vec<String> = s
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("?")))
        .collect();
    println!(
        "         {} ({})",
        line.join(" "),
        pg["server"].as_str().unwrap_or("")
    );
}

// ---------------------------------------------------------------- statistics

/// Linear-interpolated percentile of sorted values (as the peers harness computes it).
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let k = (sorted.len() - 1) as f64 * p / 100.0;
    let lo = k.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (k - lo as f64)
}

/// p50/p90/p99/max/mean/min of latencies in ms.
pub fn latency_summary(mut ms: Vec<f64>) -> Value {
    ms.retain(|x| x.is_finite());
    ms.sort_by(|a, b| a.total_cmp(b));
    if ms.is_empty() {
        return json!({ "n": 0 });
    }
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    json!({
        "n": ms.len(),
        "p50_ms": round3(pct(&ms, 50.0)),
        "p90_ms": round3(pct(&ms, 90.0)),
        "p99_ms": round3(pct(&ms, 99.0)),
        "max_ms": round3(ms[ms.len() - 1]),
        "min_ms": round3(ms[0]),
        "mean_ms": round3(mean),
    })
}

pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    }
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// `12,345`
pub fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "—".to_owned();
    }
    let n = x.round() as i64;
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 { format!("-{out}") } else { out }
}

pub fn ms(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) if x >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.2}"),
        None => "—".to_owned(),
    }
}

// ---------------------------------------------------------------- publishing and checking

pub fn noop_event(seq: usize) -> NewEvent {
    NewEvent::raw(EVENT_TYPE, json!({ "seq": seq }))
}

/// The benches' publisher: library defaults, except `PGBUS_NOTIFY=0` (no NOTIFY) and
/// `PGBUS_NOTIFY_DEBOUNCE_MS`.
pub fn publisher() -> Res<Publisher> {
    let mut b = Publisher::builder().source("pgbus-bench");
    if let Some(n) = env_opt_usize("PGBUS_NOTIFY") {
        b = b.notify(n != 0);
    }
    if let Some(ms) = env_opt_usize("PGBUS_NOTIFY_DEBOUNCE_MS") {
        b = b.notify_debounce(Duration::from_millis(ms as u64));
    }
    Ok(b.build()?)
}

/// Publishes `n` events with `publish_all`, [`BATCH`] per statement (autocommit, one
/// transaction per call); returns the per-call latencies in ms and the wall time.
pub async fn enqueue_batches(pool: &PgPool, n: usize) -> Res<(Vec<f64>, Duration)> {
    let publisher = publisher()?;
    let mut conn = pool.acquire().await?;
    let mut lat = Vec::with_capacity(n / BATCH + 1);
    let t0 = Instant::now();
    let mut i = 0;
    while i < n {
        let events: Vec<NewEvent> = (i..(i + BATCH).min(n)).map(noop_event).collect();
        let t = Instant::now();
        publisher.publish_all(&mut conn, &events).await?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        i += events.len();
    }
    Ok((lat, t0.elapsed()))
}

/// Registers subscriptions without running them (start + shutdown of a dispatcher).
pub async fn register(pool: &PgPool, names: &[&str]) -> Res<()> {
    let counter = Counter::new(usize::MAX);
    let mut b = Dispatcher::builder(pool.clone()).listen(false);
    for n in names {
        b = b.subscribe(Subscription::raw(*n, [EVENT_TYPE], Noop(counter.clone())));
    }
    b.build()?.start().await?.shutdown().await?;
    Ok(())
}

/// Polls every 5 ms (from its own connection) until no delivery is pending or running.
pub async fn wait_no_pending(checker: &mut PgConnection, timeout: Duration) -> Res<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let open: i64 = sqlx::query_scalar("SELECT count(*) FROM pgbus.deliveries WHERE state < 2")
            .fetch_one(&mut *checker)
            .await?;
        if open == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(
                format!("{open} deliveries still pending/running after {timeout:?}").into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Dead tuples of `pgbus.deliveries`: exact from pgstattuple when it can be installed, and
/// the statistics collector's `n_dead_tup` (flushed first) either way.
pub async fn dead_tuples(conn: &mut PgConnection) -> Res<Value> {
    let has_pgstattuple = conn
        .execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        .await
        .is_ok();
    let exact = if has_pgstattuple {
        let (live, dead, len): (i64, i64, i64) = sqlx::query_as(
            "SELECT tuple_count, dead_tuple_count, table_len FROM pgstattuple('pgbus.deliveries')",
        )
        .fetch_one(&mut *conn)
        .await?;
        json!({ "live": live, "dead": dead, "table_bytes": len })
    } else {
        Value::Null
    };
    let _ = conn.execute("SELECT pg_stat_force_next_flush()").await;
    let (n_dead, n_live): (i64, i64) = sqlx::query_as(
        "SELECT coalesce(n_dead_tup, 0), coalesce(n_live_tup, 0) FROM pg_stat_user_tables
         WHERE schemaname = 'pgbus' AND relname = 'deliveries'",
    )
    .fetch_one(&mut *conn)
    .await?;
    let (total, index): (i64, i64) = sqlx::query_as(
        "SELECT pg_total_relation_size('pgbus.deliveries'), pg_indexes_size('pgbus.deliveries')",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(json!({
        "pgstattuple": exact,
        "n_dead_tup": n_dead,
        "n_live_tup": n_live,
        "total_bytes": total,
        "index_bytes": index,
    }))
}

// ---------------------------------------------------------------- result files

pub fn write_results(prefix: &str, stamp: &str, report: &Value) -> Res<PathBuf> {
    let dir = out_dir();
    std::fs::create_dir_all(&dir)?;
    let body = serde_json::to_string_pretty(report)?;
    let file = dir.join(format!("{prefix}-{stamp}.json"));
    std::fs::write(&file, &body)?;
    let latest = if prefix == "results" {
        "latest.json".to_owned()
    } else {
        format!("{prefix}-latest.json")
    };
    std::fs::write(dir.join(latest), &body)?;
    Ok(file)
}

// ---------------------------------------------------------------- SVG

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub struct Svg {
    pub body: String,
    pub width: f64,
    pub height: f64,
}

impl Svg {
    pub fn new(width: f64) -> Self {
        Svg {
            body: String::new(),
            width,
            height: 0.0,
        }
    }

    pub fn text(&mut self, x: f64, y: f64, size: f64, anchor: &str, extra: &str, s: &str) {
        let _ = writeln!(
            self.body,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}" text-anchor="{anchor}" {extra}>{}</text>"#,
            esc(s)
        );
    }

    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, title: &str) {
        let _ = writeln!(
            self.body,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{fill}"><title>{}</title></rect>"#,
            w.max(0.5),
            esc(title)
        );
    }

    pub fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str, extra: &str) {
        let _ = writeln!(
            self.body,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{stroke}" {extra}/>"#
        );
    }

    pub fn polyline(&mut self, points: &[(f64, f64)], stroke: &str, title: &str) {
        let pts: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = writeln!(
            self.body,
            r#"<polyline points="{}" fill="none" stroke="{stroke}" stroke-width="2"><title>{}</title></polyline>"#,
            pts.join(" "),
            esc(title)
        );
    }

    pub fn finish(&self) -> String {
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
             font-family=\"Helvetica, Arial, sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{}</svg>\n",
            self.body,
            w = self.width,
            h = self.height.ceil()
        )
    }

    pub fn write(&self, path: &Path) -> Res<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, self.finish())?;
        Ok(())
    }
}

/// Log-scale position helper: maps `v` in `[lo, hi]` to `[0, width]`.
pub fn log_x(v: f64, lo: f64, hi: f64, width: f64) -> f64 {
    let v = v.clamp(lo, hi);
    (v.log10() - lo.log10()) / (hi.log10() - lo.log10()) * width
}

/// Powers of ten from `lo` to `hi`.
pub fn decades(lo: f64, hi: f64) -> Vec<f64> {
    let mut v = Vec::new();
    let mut x = 10f64.powf(lo.log10().floor());
    while x <= hi * 1.0001 {
        if x >= lo * 0.9999 {
            v.push(x);
        }
        x *= 10.0;
    }
    v
}

pub fn short(x: f64) -> String {
    if x >= 1e6 {
        format!("{}M", round1(x / 1e6))
    } else if x >= 1e3 {
        format!("{}k", round1(x / 1e3))
    } else if x >= 1.0 {
        format!("{}", round1(x))
    } else {
        format!("{x}")
    }
}

pub fn describe_header(report: &Value) -> (String, String) {
    let m = &report["machine"];
    let pg = &report["postgres"];
    let s = &pg["settings"];
    let version = pg["version"]
        .as_str()
        .unwrap_or("?")
        .split(" on ")
        .next()
        .unwrap_or("?")
        .to_owned();
    (
        format!(
            "{} vCPU, {} GiB, {}",
            m["nproc"],
            m["memory_gib"],
            m["cpu_model"].as_str().unwrap_or("?")
        ),
        format!(
            "{version}, fsync={} synchronous_commit={} shared_buffers={}; {}",
            s["fsync"].as_str().unwrap_or("?"),
            s["synchronous_commit"].as_str().unwrap_or("?"),
            s["shared_buffers"].as_str().unwrap_or("?"),
            report["started_at"]
                .as_str()
                .map(|t| format!("{} UTC", t.get(..16).unwrap_or(t).replace('T', " ")))
                .unwrap_or_default()
        ),
    )
}
