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
//! | `drain` | 100,000 pending deliveries, 1 subscription, no-op handler, one dispatcher |
//! | `fanout` | 100,000 events × 3 subscriptions, one dispatcher |
//! | `latency` | one event at a time at 200/s and 2,000/s from another process; commit → handler start |
//! | `pinned` | `drain` while a REPEATABLE READ snapshot is held open (≤ 60 s); dead tuples |
//!
//! Select with `PGBUS_BENCH=drain,latency`; scale with `PGBUS_BENCH_QUICK=1` or the size
//! variables listed in `benches/README.md`. Results: a table on stdout, JSON in
//! `target/pgbus-bench/{results-<timestamp>,latest}.json`, and a plot in
//! `benches/results/pgbus-bench.svg` (`PGBUS_BENCH_SVG` to change). `PGBUS_BENCH_PLOT=<json>`
//! only redraws the plot from a results file.
//!
//! The dispatcher runs inside this process (its own pool of 10 connections); the drain timer
//! runs from just before `Dispatcher::start` until the handler ran N times and
//! `pgbus.deliveries` has no pending or running row (checked every 5 ms from a separate
//! connection), the same method as `../shared/peers/bench.py`.

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection};
use uuid::Uuid;

const DB: &str = "pgbus_bench";
const SUB: &str = "bench.sub";

#[derive(Debug, Clone)]
struct Sizes {
    single_n: usize,
    batch_n: usize,
    drain_n: usize,
    drain_runs: usize,
    fanout_n: usize,
    fanout_runs: usize,
    lat_secs: f64,
    lat_rates: Vec<f64>,
    pin_n: usize,
    pin_cap_secs: f64,
    floor_claim_n: usize,
    floor_single_n: usize,
    claim_batch: usize,
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
    "drain",
    "fanout",
    "latency",
    "pinned",
];

#[tokio::main]
async fn main() {
    if std::env::var("PGBUS_BENCH_ROLE").as_deref() == Ok("latency-publisher") {
        if let Err(e) = latency_publisher_child().await {
            eprintln!("latency publisher failed: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Some(path) = std::env::var_os("PGBUS_BENCH_PLOT") {
        let mut report: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read results"))
                .expect("results JSON");
        let floor = report["floor"].as_array().cloned().unwrap_or_default();
        if let Some(scenarios) = report["scenarios"].as_array_mut() {
            attach_floor_refs(scenarios, &floor);
        }
        print_table(&report);
        let out = svg_path("PGBUS_BENCH_SVG", "pgbus-bench.svg");
        plot(&report).write(&out).expect("write SVG");
        println!("plot written to {}", out.display());
        return;
    }
    if !invoked_as_bench() {
        eprintln!("benchmark: run it with `cargo bench --bench throughput` (skipped)");
        return;
    }
    if let Err(e) = run().await {
        eprintln!("benchmark failed: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Res<()> {
    init_logging();
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
    let server = Server::start().await?;
    let machine = machine();
    let pg = postgres(&server).await?;
    print_header(&machine, &pg);
    println!(
        "dispatcher: in-process (this bench process), pool of 10 connections, settings {}",
        tuning.describe()
    );
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
    });

    if want("floor") {
        floor = run_floor(&server, &sizes).await?;
    }
    if want("publish") {
        for publishers in [1usize, 16] {
            scenarios.push(publish_single(&server, publishers, sizes.single_n).await?);
        }
    }
    if want("publish_all") {
        scenarios.push(publish_batches(&server, sizes.batch_n).await?);
    }
    let mut drain_median = None;
    if want("drain") {
        let s = drain_scenario(
            &server,
            &tuning,
            "drain",
            1,
            sizes.drain_n,
            sizes.drain_runs,
        )
        .await?;
        drain_median = s["rate"].as_f64();
        scenarios.push(s);
    }
    if want("fanout") {
        scenarios.push(
            drain_scenario(
                &server,
                &tuning,
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
            scenarios.push(latency_scenario(&server, &tuning, rate, sizes.lat_secs).await?);
        }
    }
    if want("pinned") {
        scenarios.push(pinned_scenario(&server, &tuning, &sizes, drain_median).await?);
    }

    attach_floor_refs(&mut scenarios, &floor);
    report["scenarios"] = Value::Array(scenarios);
    report["floor"] = Value::Array(floor);
    report["finished_at"] = json!(chrono::Utc::now().to_rfc3339());
    println!();
    print_table(&report);
    let file = write_results("results", &stamp, &report)?;
    println!("\nJSON: {} (and latest.json)", file.display());
    let svg = svg_path("PGBUS_BENCH_SVG", "pgbus-bench.svg");
    plot(&report).write(&svg)?;
    println!("plot: {}", svg.display());
    server.finish().await?;
    Ok(())
}

fn progress(msg: impl AsRef<str>) {
    eprintln!(
        "[{}] {}",
        chrono::Local::now().format("%H:%M:%S"),
        msg.as_ref()
    );
}

// ==================================================================== floor

const FLOOR_INSERT: &str = "
WITH e AS (
    INSERT INTO pgbus.events (id, type, source, data)
    SELECT u.id, 'bench.noop', 'floor', u.data FROM unnest($1::uuid[], $2::jsonb[]) AS u(id, data)
    RETURNING id, priority
)
INSERT INTO pgbus.deliveries (event_id, subscription, priority)
SELECT id, 'bench.sub', priority FROM e";

const PICK: &str = "SELECT id FROM pgbus.deliveries
    WHERE subscription = 'bench.sub' AND state < 2 AND NOT solo AND run_at <= now()
    ORDER BY priority, run_at, id LIMIT $1 FOR UPDATE SKIP LOCKED";

fn lease_sql(payload: bool) -> String {
    let upd = format!(
        "UPDATE pgbus.deliveries d SET state = 1, attempts = d.attempts + 1,
                run_at = now() + interval '30 seconds'
         FROM ({PICK}) s WHERE d.id = s.id RETURNING d.id, d.event_id, d.attempts"
    );
    if payload {
        format!(
            "WITH c AS ({upd})
             SELECT c.id, c.attempts, e.id, e.type, e.source, e.subject, e.key, e.data, e.headers,
                    e.created_at
             FROM c JOIN pgbus.events e ON e.id = c.event_id"
        )
    } else {
        format!("WITH c AS ({upd}) SELECT c.id FROM c")
    }
}

/// The locked rows read in a CTE and joined to their events by primary key. (Written as
/// `WHERE id IN (pick)`, this planned as a hash semi-join over a sequential scan of the
/// deliveries table and understated the floor.)
fn locked_sql(payload: bool) -> String {
    if payload {
        let pick = PICK.replacen("SELECT id FROM", "SELECT id, event_id, attempts FROM", 1);
        format!(
            "WITH d AS ({pick})
             SELECT d.id, d.attempts, e.id, e.type, e.source, e.subject, e.key, e.data, e.headers,
                    e.created_at
             FROM d JOIN pgbus.events e ON e.id = d.event_id"
        )
    } else {
        PICK.to_owned()
    }
}

type PayloadRow = (
    i64,
    i32,
    Uuid,
    String,
    String,
    Option<String>,
    Option<String>,
    Value,
    Value,
    chrono::DateTime<chrono::Utc>,
);

async fn claim_ids(conn: &mut PgConnection, sql: &str, payload: bool, n: i64) -> Res<Vec<i64>> {
    if payload {
        let rows: Vec<PayloadRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(n)
            .fetch_all(&mut *conn)
            .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    } else {
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(n)
            .fetch_all(&mut *conn)
            .await?)
    }
}

#[derive(Clone, Copy)]
enum ClaimKind {
    Lease { payload: bool },
    Locked { payload: bool },
}

impl ClaimKind {
    fn id(self) -> &'static str {
        match self {
            ClaimKind::Lease { payload: false } => "claim_lease",
            ClaimKind::Lease { payload: true } => "claim_lease_payload",
            ClaimKind::Locked { payload: false } => "claim_locked",
            ClaimKind::Locked { payload: true } => "claim_locked_payload",
        }
    }

    fn name(self) -> &'static str {
        match self {
            ClaimKind::Lease { payload: false } => {
                "claim: UPDATE lease (SKIP LOCKED) + commit, then DELETE + commit"
            }
            ClaimKind::Lease { payload: true } => {
                "claim: UPDATE lease joined to events (payload read), then DELETE"
            }
            ClaimKind::Locked { payload: false } => {
                "claim: BEGIN; SELECT FOR UPDATE SKIP LOCKED; DELETE; COMMIT"
            }
            ClaimKind::Locked { payload: true } => {
                "claim: BEGIN; SELECT … FOR UPDATE SKIP LOCKED joined to events; DELETE; COMMIT"
            }
        }
    }
}

async fn claim_worker(mut conn: PgConnection, kind: ClaimKind, batch: i64) -> Res<usize> {
    let mut total = 0;
    match kind {
        ClaimKind::Lease { payload } => {
            let sql = lease_sql(payload);
            loop {
                let ids = claim_ids(&mut conn, &sql, payload, batch).await?;
                if ids.is_empty() {
                    break;
                }
                total += ids.len();
                sqlx::query(
                    "DELETE FROM pgbus.deliveries d USING unnest($1::int8[]) AS u(id)
                     WHERE d.id = u.id AND d.state = 1",
                )
                .bind(&ids)
                .execute(&mut conn)
                .await?;
            }
        }
        ClaimKind::Locked { payload } => {
            let sql = locked_sql(payload);
            loop {
                let mut tx = conn.begin().await?;
                let ids = claim_ids(&mut tx, &sql, payload, batch).await?;
                if ids.is_empty() {
                    tx.commit().await?;
                    break;
                }
                total += ids.len();
                sqlx::query(
                    "DELETE FROM pgbus.deliveries d USING unnest($1::int8[]) AS u(id) WHERE d.id = u.id",
                )
                .bind(&ids)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
        }
    }
    conn.close().await?;
    Ok(total)
}

fn floor_payload(i: usize) -> Value {
    json!({ "seq": i })
}

async fn floor_insert(conn: &mut PgConnection, from: usize, to: usize) -> Res<()> {
    let ids: Vec<Uuid> = (from..to).map(|_| Uuid::now_v7()).collect();
    let data: Vec<Value> = (from..to).map(floor_payload).collect();
    sqlx::query(FLOOR_INSERT)
        .bind(&ids)
        .bind(&data)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn truncate(server: &Server) -> Res<()> {
    let mut c = server.connect(DB).await?;
    c.execute("TRUNCATE pgbus.deliveries, pgbus.events").await?;
    c.close().await?;
    Ok(())
}

async fn run_floor(server: &Server, sizes: &Sizes) -> Res<Vec<Value>> {
    progress("floor: raw SQL on pgbus's own tables and indexes, no library");
    server.fresh_db(DB).await?;
    let mut out = Vec::new();

    // Publish, batched: the rows publish_all writes (event + one delivery), 1,000 per statement.
    for clients in [1usize, 2] {
        truncate(server).await?;
        server.settle(DB).await?;
        let n = sizes.batch_n;
        let mut conns = Vec::new();
        for _ in 0..clients {
            conns.push(server.connect(DB).await?);
        }
        let next = Arc::new(AtomicUsize::new(0));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for mut c in conns {
            let next = next.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(BATCH, Ordering::SeqCst);
                    if i >= n {
                        break;
                    }
                    floor_insert(&mut c, i, (i + BATCH).min(n)).await?;
                }
                c.close().await?;
                Ok::<_, BoxError>(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let secs = t0.elapsed().as_secs_f64();
        out.push(floor_entry(
            &format!("floor_publish_batch_{clients}"),
            &format!(
                "floor publish: INSERT event + delivery, 1,000 rows/statement, {clients} client(s)"
            ),
            "events/s",
            n as f64 / secs,
            n,
            secs,
        ));
    }

    // Publish, one event per statement (autocommit): the commit-bound floor for `publish`.
    for clients in [1usize, 16] {
        truncate(server).await?;
        server.settle(DB).await?;
        let n = sizes.floor_single_n;
        let mut conns = Vec::new();
        for _ in 0..clients {
            conns.push(server.connect(DB).await?);
        }
        let next = Arc::new(AtomicUsize::new(0));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for mut c in conns {
            let next = next.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n {
                        break;
                    }
                    floor_insert(&mut c, i, i + 1).await?;
                }
                c.close().await?;
                Ok::<_, BoxError>(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let secs = t0.elapsed().as_secs_f64();
        out.push(floor_entry(
            &format!("floor_single_{clients}"),
            &format!(
                "floor publish: one event + delivery per statement (autocommit), {clients} client(s)"
            ),
            "events/s",
            n as f64 / secs,
            n,
            secs,
        ));
    }

    // Claim and delete, 500 per batch.
    let kinds = [
        ClaimKind::Lease { payload: false },
        ClaimKind::Lease { payload: true },
        ClaimKind::Locked { payload: false },
        ClaimKind::Locked { payload: true },
    ];
    for kind in kinds {
        for clients in [1usize, 2] {
            truncate(server).await?;
            let n = sizes.floor_claim_n;
            {
                let mut c = server.connect(DB).await?;
                let mut i = 0;
                while i < n {
                    floor_insert(&mut c, i, (i + BATCH).min(n)).await?;
                    i += BATCH;
                }
                c.close().await?;
            }
            server.settle(DB).await?;
            let mut conns = Vec::new();
            for _ in 0..clients {
                conns.push(server.connect(DB).await?);
            }
            let t0 = Instant::now();
            let tasks: Vec<_> = conns
                .into_iter()
                .map(|c| tokio::spawn(claim_worker(c, kind, sizes.claim_batch as i64)))
                .collect();
            let mut total = 0;
            for t in tasks {
                total += t.await??;
            }
            let secs = t0.elapsed().as_secs_f64();
            out.push(floor_entry(
                &format!("floor_{}_{clients}", kind.id()),
                &format!("floor {}, 500/batch, {clients} client(s)", kind.name()),
                "deliveries/s",
                total as f64 / secs,
                total,
                secs,
            ));
        }
    }
    Ok(out)
}

fn floor_entry(id: &str, name: &str, unit: &str, rate: f64, n: usize, secs: f64) -> Value {
    progress(format!("  {name}: {} {unit}", thousands(rate)));
    json!({ "id": id, "name": name, "unit": unit, "rate": rate.round(), "n": n, "secs": round3(secs) })
}

/// Sets `floor_ref`, `floor_rate` and `fraction_of_floor` on each scenario.
fn attach_floor_refs(scenarios: &mut [Value], floor: &[Value]) {
    let by_id: HashMap<&str, &Value> = floor
        .iter()
        .filter_map(|f| Some((f["id"].as_str()?, f)))
        .collect();
    let best_claim = floor
        .iter()
        .filter(|f| {
            f["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("floor_claim"))
        })
        .max_by(|a, b| {
            a["rate"]
                .as_f64()
                .unwrap_or(0.0)
                .total_cmp(&b["rate"].as_f64().unwrap_or(0.0))
        });
    // A dispatcher must read each event, so the drains are compared with the fastest claim
    // floor that reads the payload too (the table lists the others).
    let best_claim_payload = floor
        .iter()
        .filter(|f| {
            f["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("floor_claim") && id.contains("payload"))
        })
        .max_by(|a, b| {
            a["rate"]
                .as_f64()
                .unwrap_or(0.0)
                .total_cmp(&b["rate"].as_f64().unwrap_or(0.0))
        })
        .or(best_claim);
    for s in scenarios.iter_mut() {
        let id = s["id"].as_str().unwrap_or("");
        let reference = match id {
            "publish_1" => by_id.get("floor_single_1").copied(),
            "publish_16" => by_id.get("floor_single_16").copied(),
            "publish_all" => by_id.get("floor_publish_batch_1").copied(),
            "drain" | "fanout" | "pinned" => best_claim_payload,
            _ => None,
        };
        if let (Some(r), Some(rate)) = (reference, s["rate"].as_f64()) {
            let fr = r["rate"].as_f64().unwrap_or(f64::NAN);
            s["floor_ref"] = r["id"].clone();
            s["floor_rate"] = json!(fr);
            s["fraction_of_floor"] = json!(round3(rate / fr));
        }
    }
}

// ==================================================================== publish

async fn publish_single(server: &Server, publishers: usize, n: usize) -> Res<Value> {
    progress(format!(
        "publish: {n} events, one per transaction (BEGIN; publish; COMMIT), {publishers} publisher(s)"
    ));
    server.fresh_db(DB).await?;
    let pool = server.pool(DB, publishers as u32 + 1).await?;
    register(&pool, &[SUB]).await?;
    server.settle(DB).await?;
    let publisher = publisher()?;
    let mut conns = Vec::new();
    for _ in 0..publishers {
        conns.push(pool.acquire().await?);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for mut conn in conns {
        let next = next.clone();
        let publisher = publisher.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    break;
                }
                let t = Instant::now();
                let mut tx = conn.begin().await?;
                publisher.publish(&mut tx, noop_event(i)).await?;
                tx.commit().await?;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
            Ok::<_, BoxError>(lat)
        }));
    }
    let mut lat = Vec::with_capacity(n);
    for t in tasks {
        lat.extend(t.await??);
    }
    let secs = t0.elapsed().as_secs_f64();
    pool.close().await;
    let rate = n as f64 / secs;
    progress(format!("  {} events/s", thousands(rate)));
    Ok(json!({
        "id": format!("publish_{publishers}"),
        "name": format!("publish, 1 event/transaction, {publishers} publisher(s)"),
        "unit": "events/s",
        "rate": rate.round(),
        "n": n,
        "secs": round3(secs),
        "latency": latency_summary(lat),
        "latency_meaning": "BEGIN → publish → COMMIT returned, per event",
    }))
}

async fn publish_batches(server: &Server, n: usize) -> Res<Value> {
    progress(format!(
        "publish_all: {n} events, 1,000 per call, 1 publisher"
    ));
    server.fresh_db(DB).await?;
    let pool = server.pool(DB, 2).await?;
    register(&pool, &[SUB]).await?;
    server.settle(DB).await?;
    let (lat, wall) = enqueue_batches(&pool, n).await?;
    pool.close().await;
    let rate = n as f64 / wall.as_secs_f64();
    progress(format!("  {} events/s", thousands(rate)));
    Ok(json!({
        "id": "publish_all",
        "name": "publish_all, 1,000 events/call (autocommit), 1 publisher",
        "unit": "events/s",
        "rate": rate.round(),
        "n": n,
        "secs": round3(wall.as_secs_f64()),
        "latency": latency_summary(lat),
        "latency_meaning": "one publish_all call of 1,000 events",
    }))
}

// ==================================================================== drain

fn sub_names(subs: usize) -> Vec<String> {
    if subs == 1 {
        vec![SUB.to_owned()]
    } else {
        (1..=subs).map(|i| format!("{SUB}-{i}")).collect()
    }
}

/// One drain: `handled_secs` when the handler had run N times, `secs` when no row was open.
struct DrainRun {
    secs: f64,
    handled_secs: f64,
    deliveries: usize,
    preenqueue_rate: f64,
    dead_after: Option<Value>,
    statements: Option<Value>,
    pinned: Option<Value>,
}

async fn drain_once(
    server: &Server,
    tuning: &Tuning,
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
        let (_, wall) = enqueue_batches(&pool, n).await?;
        pool.close().await;
        let pre = n as f64 / wall.as_secs_f64();
        server.settle(DB).await?;
        drain_run_inner(server, tuning, &names, n, pre, measure_dead, pin_cap).await
    }
}

async fn drain_run_inner(
    server: &Server,
    tuning: &Tuning,
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
        .map(|name| tuning.subscription(name, Noop(counter.clone())))
        .collect();
    let dispatcher = tuning.dispatcher(&pool, subs)?;

    let t0 = Instant::now();
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
        deliveries: total,
        preenqueue_rate,
        dead_after,
        statements,
        pinned,
    })
}

async fn drain_scenario(
    server: &Server,
    tuning: &Tuning,
    id: &str,
    subs: usize,
    n: usize,
    runs: usize,
) -> Res<Value> {
    progress(format!(
        "{id}: {n} events × {subs} subscription(s) pending, one in-process dispatcher, {runs} run(s)"
    ));
    let mut rates = Vec::new();
    let mut details = Vec::new();
    let mut statements = None;
    for run in 0..runs {
        let r = drain_once(server, tuning, subs, n, run == 0, None).await?;
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
        rates.push(rate.round());
        details.push(json!({
            "deliveries": r.deliveries, "secs": round3(r.secs),
            "handler_done_secs": round3(r.handled_secs), "rate": rate.round(),
            "preenqueue_events_per_s": r.preenqueue_rate.round(), "dead_after": r.dead_after,
        }));
    }
    let med = median(&rates);
    Ok(json!({
        "id": id,
        "name": if subs == 1 {
            format!("drain: {} pending, 1 subscription, no-op handler", thousands(n as f64))
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

async fn pinned_scenario(
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
    let r = drain_once(server, tuning, 1, n, false, Some(cap)).await?;
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

// ==================================================================== pg_stat_statements

async fn start_statements(c: &mut PgConnection) -> Res<()> {
    c.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await?;
    c.execute("SELECT pg_stat_statements_reset()").await?;
    Ok(())
}

async fn top_statements(c: &mut PgConnection) -> Res<Value> {
    let rows: Vec<(String, i64, f64, f64, i64)> = sqlx::query_as(
        "SELECT regexp_replace(left(query, 200), '\\s+', ' ', 'g'), calls, total_exec_time,
                mean_exec_time, rows
         FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND query NOT ILIKE '%pg_stat_statements%'
         ORDER BY total_exec_time DESC LIMIT 8",
    )
    .fetch_all(c)
    .await?;
    Ok(Value::Array(
        rows.into_iter()
            .map(|(q, calls, total, mean, rows)| {
                json!({ "query": q, "calls": calls, "total_ms": round1(total),
                        "mean_ms": round3(mean), "rows": rows })
            })
            .collect(),
    ))
}

fn print_statements(s: &Value) {
    eprintln!("    pg_stat_statements (by total time):");
    for r in s.as_array().into_iter().flatten() {
        eprintln!(
            "    {:>9.1} ms total {:>7} calls {:>8.3} ms mean {:>8} rows  {}",
            r["total_ms"].as_f64().unwrap_or(0.0),
            r["calls"],
            r["mean_ms"].as_f64().unwrap_or(0.0),
            r["rows"],
            r["query"].as_str().unwrap_or("")
        );
    }
}

// ==================================================================== latency

async fn latency_scenario(server: &Server, tuning: &Tuning, rate: f64, secs: f64) -> Res<Value> {
    let n = ((rate * secs).round() as usize).max(1);
    let publishers = ((rate / 200.0).ceil() as usize).clamp(1, 16);
    progress(format!(
        "latency: {n} events one at a time at {rate}/s from a separate process ({publishers} publisher connection(s)); dispatcher idle-waiting in this process"
    ));
    server.fresh_db(DB).await?;
    let pool = server.pool(DB, 10).await?;
    let counter = Counter::recording_seq(n);
    let dispatcher =
        tuning.dispatcher(&pool, vec![tuning.subscription(SUB, Noop(counter.clone()))])?;
    let handle = dispatcher.start().await?;
    // As the peers harness: let the dispatcher finish its start-up before publishing.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let out = out_dir().join(format!("latency-publisher-{}.csv", std::process::id()));
    std::fs::create_dir_all(out_dir())?;
    let exe = std::env::current_exe()?;
    let status = tokio::process::Command::new(exe)
        .env("PGBUS_BENCH_ROLE", "latency-publisher")
        .env("PGBUS_BENCH_CHILD_URL", server.url(DB))
        .env("PGBUS_BENCH_CHILD_N", n.to_string())
        .env("PGBUS_BENCH_CHILD_RATE", rate.to_string())
        .env("PGBUS_BENCH_CHILD_PUBLISHERS", publishers.to_string())
        .env("PGBUS_BENCH_CHILD_OUT", &out)
        .status()
        .await?;
    if !status.success() {
        return Err(format!("latency publisher exited with {status}").into());
    }
    let all = counter.wait(Duration::from_secs(30)).await;
    handle.shutdown().await?;
    pool.close().await;

    let text = std::fs::read_to_string(&out)?;
    let _ = std::fs::remove_file(&out);
    let mut lines = text.lines();
    let meta: Value = serde_json::from_str(lines.next().unwrap_or("{}").trim_start_matches('#'))?;
    let commits: HashMap<i64, i128> = lines
        .skip(1)
        .filter_map(|l| {
            let (a, b) = l.split_once(',')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect();
    let starts = counter.starts.lock().unwrap().clone();
    let mut lat = Vec::with_capacity(starts.len());
    for (seq, start) in &starts {
        if let Some(c) = commits.get(seq) {
            lat.push((start - c) as f64 / 1e6);
        }
    }
    let missing = commits.len().saturating_sub(lat.len());
    let summary = latency_summary(lat);
    progress(format!(
        "  p50 {} ms, p90 {} ms, p99 {} ms, max {} ms ({} samples, {missing} missing{})",
        ms(&summary["p50_ms"]),
        ms(&summary["p90_ms"]),
        ms(&summary["p99_ms"]),
        ms(&summary["max_ms"]),
        summary["n"],
        if all { "" } else { ", NOT ALL DELIVERED" }
    ));
    Ok(json!({
        "id": format!("latency_{}", rate as u64),
        "name": format!("latency: publish commit → handler start, {} events/s", thousands(rate)),
        "unit": "events/s (offered)",
        "rate": Value::Null,
        "offered_rate": rate,
        "achieved_publish_rate": meta["achieved_rate"],
        "publishers": publishers,
        "n": n,
        "missing": missing,
        "latency": summary,
        "latency_meaning": "wall clock at handler start − wall clock right after tx.commit() \
                            returned in the publisher process (joined on a sequence number in the payload)",
    }))
}

/// The publisher process of the latency scenario: N events, one per transaction, due at
/// `i / rate` seconds, spread over a few connections so that a slow commit does not delay
/// the next event; writes `seq,commit_ns` lines.
async fn latency_publisher_child() -> Res<()> {
    let url = std::env::var("PGBUS_BENCH_CHILD_URL")?;
    let n: usize = std::env::var("PGBUS_BENCH_CHILD_N")?.parse()?;
    let rate: f64 = std::env::var("PGBUS_BENCH_CHILD_RATE")?.parse()?;
    let publishers: usize = std::env::var("PGBUS_BENCH_CHILD_PUBLISHERS")?.parse()?;
    let out = std::env::var("PGBUS_BENCH_CHILD_OUT")?;
    let opts: sqlx::postgres::PgConnectOptions = url.parse()?;
    let opts = sqlx::ConnectOptions::disable_statement_logging(opts);
    let mut conns: Vec<PgConnection> = Vec::new();
    for _ in 0..publishers {
        conns.push(PgConnection::connect_with(&opts).await?);
    }
    let publisher = publisher()?;
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::new();
    for mut conn in conns {
        let next = next.clone();
        let publisher = publisher.clone();
        tasks.push(tokio::spawn(async move {
            let mut rows = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    break;
                }
                tokio::time::sleep_until(t0 + Duration::from_secs_f64(i as f64 / rate)).await;
                let mut tx = conn.begin().await?;
                publisher.publish(&mut tx, noop_event(i)).await?;
                tx.commit().await?;
                rows.push((i, now_ns()));
            }
            conn.close().await?;
            Ok::<_, BoxError>(rows)
        }));
    }
    let mut rows = Vec::with_capacity(n);
    for t in tasks {
        rows.extend(t.await??);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    rows.sort();
    let mut body = format!(
        "#{}\nseq,commit_ns\n",
        json!({ "achieved_rate": (n as f64 / elapsed).round() })
    );
    for (i, t) in rows {
        body.push_str(&format!("{i},{t}\n"));
    }
    std::fs::write(out, body)?;
    Ok(())
}

// ==================================================================== output

fn print_table(report: &Value) {
    let empty = Vec::new();
    let scenarios = report["scenarios"].as_array().unwrap_or(&empty);
    let floor = report["floor"].as_array().unwrap_or(&empty);
    println!(
        "{:<62} {:>11} {:<13} {:>22} {:>7} {:>7} {:>7} {:>7}  vs floor",
        "scenario", "rate", "unit", "runs", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    println!("{}", "-".repeat(170));
    for s in scenarios {
        let runs = s["runs"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|x| thousands(x.as_f64().unwrap_or(f64::NAN)))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let rate = match s["rate"].as_f64() {
            Some(r) => thousands(r),
            None => format!(
                "{}*",
                thousands(s["offered_rate"].as_f64().unwrap_or(f64::NAN))
            ),
        };
        let l = &s["latency"];
        let vs = match (s["fraction_of_floor"].as_f64(), s["floor_ref"].as_str()) {
            (Some(f), Some(r)) => format!("{:.0}% of {r}", f * 100.0),
            _ => String::new(),
        };
        println!(
            "{:<62} {:>11} {:<13} {:>22} {:>7} {:>7} {:>7} {:>7}  {vs}",
            trunc(s["name"].as_str().unwrap_or(""), 62),
            rate,
            s["unit"]
                .as_str()
                .unwrap_or("")
                .split(' ')
                .next()
                .unwrap_or(""),
            runs,
            ms(&l["p50_ms"]),
            ms(&l["p90_ms"]),
            ms(&l["p99_ms"]),
            ms(&l["max_ms"]),
        );
    }
    if scenarios.iter().any(|s| s["rate"].is_null()) {
        println!(
            "* latency scenarios: offered publish rate; latency = publish commit → handler start"
        );
    }
    for s in scenarios.iter().filter(|s| s["id"] == "drain") {
        let d = &s["run_details"][0]["dead_after"];
        if let Some(dead) = d["pgstattuple"]["dead"]
            .as_i64()
            .or(d["n_dead_tup"].as_i64())
        {
            println!(
                "drain (run 1, no snapshot held): {dead} dead tuples in pgbus.deliveries right after the drain; table + indexes {}",
                d["total_bytes"]
            );
        }
    }
    for s in scenarios.iter().filter(|s| s["id"] == "pinned") {
        println!(
            "pinned horizon: dead tuples in pgbus.deliveries before {}, after drain {}, after release + VACUUM {}; throughput {}× the drain median",
            s["dead_before"],
            s["dead_after_drain"],
            s["dead_after_release_and_vacuum"],
            s["vs_drain_median"]
        );
    }
    if !floor.is_empty() {
        println!("\nraw SQL floor (same server, pgbus's tables and indexes, no library):");
        for f in floor {
            println!(
                "  {:<100} {:>11} {}",
                f["name"].as_str().unwrap_or(""),
                thousands(f["rate"].as_f64().unwrap_or(f64::NAN)),
                f["unit"].as_str().unwrap_or("")
            );
        }
    }
}

fn trunc(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// Throughput bars (log scale) per scenario with its floor, and latency percentiles.
fn plot(report: &Value) -> Svg {
    let empty = Vec::new();
    let scenarios = report["scenarios"].as_array().unwrap_or(&empty);
    let mut svg = Svg::new(960.0);
    let (machine, server) = describe_header(report);
    svg.text(
        20.0,
        28.0,
        18.0,
        "start",
        r#"font-weight="bold""#,
        "pgbus benchmark",
    );
    svg.text(20.0, 48.0, 12.0, "start", r##"fill="#444""##, &machine);
    svg.text(20.0, 64.0, 12.0, "start", r##"fill="#444""##, &server);
    let mut y = 90.0;
    if report["quick"].as_bool() == Some(true) {
        svg.text(
            20.0,
            80.0,
            12.0,
            "start",
            r##"fill="#b00""##,
            "quick mode: reduced sizes",
        );
        y += 6.0;
    }

    // Panel 1: throughput.
    let bars: Vec<&Value> = scenarios
        .iter()
        .filter(|s| s["rate"].as_f64().is_some())
        .collect();
    if !bars.is_empty() {
        let label_w = 360.0;
        let plot_w = svg.width - label_w - 170.0;
        let values: Vec<f64> = bars
            .iter()
            .flat_map(|s| [s["rate"].as_f64(), s["floor_rate"].as_f64()])
            .flatten()
            .filter(|v| *v > 0.0)
            .collect();
        let lo = 10f64.powf(
            values
                .iter()
                .cloned()
                .fold(f64::INFINITY, f64::min)
                .log10()
                .floor(),
        );
        let hi = 10f64.powf(values.iter().cloned().fold(0.0, f64::max).log10().ceil());
        svg.text(
            20.0,
            y + 10.0,
            14.0,
            "start",
            r#"font-weight="bold""#,
            "Throughput (per second, log scale): pgbus (blue) vs raw SQL floor on the same server (grey)",
        );
        y += 24.0;
        let top = y;
        let row_h = 34.0;
        let x0 = label_w;
        for s in &bars {
            let rate = s["rate"].as_f64().unwrap_or(0.0);
            let name = s["name"].as_str().unwrap_or("");
            svg.text(x0 - 8.0, y + 14.0, 11.0, "end", "", &trunc(name, 54));
            let w = log_x(rate, lo, hi, plot_w);
            svg.rect(
                x0,
                y + 3.0,
                w,
                15.0,
                "#2f6db5",
                &format!("{name}: {}", thousands(rate)),
            );
            svg.text(
                x0 + w + 4.0,
                y + 15.0,
                11.0,
                "start",
                "",
                &format!("{} {}", thousands(rate), s["unit"].as_str().unwrap_or("")),
            );
            if let Some(f) = s["floor_rate"].as_f64() {
                let wf = log_x(f, lo, hi, plot_w);
                let fr = s["fraction_of_floor"].as_f64().unwrap_or(0.0);
                svg.rect(
                    x0,
                    y + 20.0,
                    wf,
                    8.0,
                    "#b5b5b5",
                    &format!("floor {}", s["floor_ref"]),
                );
                svg.text(
                    x0 + wf + 4.0,
                    y + 28.0,
                    9.0,
                    "start",
                    r##"fill="#666""##,
                    &format!("floor {} ({:.0}% reached)", thousands(f), fr * 100.0),
                );
            }
            y += row_h;
        }
        for d in decades(lo, hi) {
            let x = x0 + log_x(d, lo, hi, plot_w);
            svg.line(x, top - 2.0, x, y, "#ddd", r#"stroke-dasharray="3,3""#);
            svg.text(x, y + 12.0, 10.0, "middle", r##"fill="#666""##, &short(d));
        }
        y += 30.0;
    }

    // Panel 2: latency percentiles.
    let lats: Vec<&Value> = scenarios
        .iter()
        .filter(|s| {
            s["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("latency_"))
        })
        .filter(|s| s["latency"]["p50_ms"].as_f64().is_some())
        .collect();
    if !lats.is_empty() {
        svg.text(
            20.0,
            y + 10.0,
            14.0,
            "start",
            r#"font-weight="bold""#,
            "Latency, publish commit → handler start (ms, log scale); dashed: targets p50 ≤ 1 ms, p99 ≤ 5 ms",
        );
        y += 24.0;
        let label_w = 360.0;
        let plot_w = svg.width - label_w - 170.0;
        let (lo, hi) = (0.1, 1000.0);
        let top = y;
        let colors = [
            ("p50_ms", "#2f6db5"),
            ("p90_ms", "#5b9bd5"),
            ("p99_ms", "#e08a2c"),
            ("max_ms", "#c0392b"),
        ];
        for s in &lats {
            let name = s["name"].as_str().unwrap_or("");
            svg.text(label_w - 8.0, y + 22.0, 11.0, "end", "", &trunc(name, 54));
            for (i, (key, color)) in colors.iter().enumerate() {
                let v = s["latency"][*key].as_f64().unwrap_or(0.0);
                let yy = y + 2.0 + i as f64 * 10.0;
                let w = log_x(v.max(lo), lo, hi, plot_w);
                svg.rect(label_w, yy, w, 8.0, color, &format!("{key}: {v:.3} ms"));
                svg.text(
                    label_w + w + 4.0,
                    yy + 8.0,
                    9.0,
                    "start",
                    "",
                    &format!("{} {:.2} ms", key.trim_end_matches("_ms"), v),
                );
            }
            y += 50.0;
        }
        for d in decades(lo, hi) {
            let x = label_w + log_x(d, lo, hi, plot_w);
            svg.line(x, top - 2.0, x, y, "#ddd", r#"stroke-dasharray="3,3""#);
            svg.text(
                x,
                y + 12.0,
                10.0,
                "middle",
                r##"fill="#666""##,
                &format!("{} ms", short(d)),
            );
        }
        for (t, label) in [(1.0, "p50 target"), (5.0, "p99 target")] {
            let x = label_w + log_x(t, lo, hi, plot_w);
            svg.line(
                x,
                top - 2.0,
                x,
                y,
                "#2a2",
                r#"stroke-dasharray="6,3" stroke-width="1.5""#,
            );
            svg.text(x + 3.0, top - 5.0, 9.0, "start", r##"fill="#2a2""##, label);
        }
        y += 30.0;
    }
    svg.text(
        20.0,
        y,
        10.0,
        "start",
        r##"fill="#888""##,
        "generated by `cargo bench --bench throughput` (benches/throughput.rs) from its JSON results",
    );
    svg.height = y + 14.0;
    svg
}
