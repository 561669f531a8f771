//! `latency`: events published one at a time by a separate process (this bench re-executed
//! with `PGBUS_BENCH_ROLE=latency-publisher`) while the dispatcher waits; publish commit →
//! handler start. The publisher process, the join of commit and start times and the summary
//! are shared with the scenario's floor (`latency_floor.rs`).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::common::*;
use crate::{DB, SUB, progress};

/// How many of the first deliveries are reported one by one.
const FIRST: i64 = 10;

pub async fn scenario(server: &Server, tuning: &Tuning, rate: f64, secs: f64) -> Res<Value> {
    let (n, publishers) = sizes(rate, secs);
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
    let (meta, commits) = publish_from_child(server, n, rate, publishers, Publish::Pgbus).await?;
    let all = counter.wait(Duration::from_secs(30)).await;
    handle.shutdown().await?;
    pool.close().await;
    let starts = counter.starts.lock().unwrap().clone();
    Ok(summarise(
        Run {
            id: format!("latency_{}", rate as u64),
            name: format!(
                "latency: publish commit → handler start, {} events/s",
                thousands(rate)
            ),
            rate,
            n,
            publishers,
            all,
            meaning: "wall clock at handler start − wall clock right after tx.commit() \
                      returned in the publisher process (joined on a sequence number in the payload)",
        },
        &meta,
        &commits,
        &starts,
    ))
}

/// How many events a run at `rate` for `secs` publishes, and on how many connections.
pub fn sizes(rate: f64, secs: f64) -> (usize, usize) {
    let n = ((rate * secs).round() as usize).max(1);
    (n, ((rate / 200.0).ceil() as usize).clamp(1, 16))
}

/// What the publisher process publishes.
#[derive(Clone, Copy)]
pub enum Publish {
    /// `Publisher::publish`, one event per transaction.
    Pgbus,
    /// The raw SQL floor's row and NOTIFY (`latency_floor.rs`).
    Floor,
}

/// Runs the publisher process and returns its metadata and each event's commit time (ns).
pub async fn publish_from_child(
    server: &Server,
    n: usize,
    rate: f64,
    publishers: usize,
    what: Publish,
) -> Res<(Value, HashMap<i64, i128>)> {
    let out = out_dir().join(format!("latency-publisher-{}.csv", std::process::id()));
    std::fs::create_dir_all(out_dir())?;
    let exe = std::env::current_exe()?;
    let status = tokio::process::Command::new(exe)
        .env("PGBUS_BENCH_ROLE", "latency-publisher")
        .env("PGBUS_BENCH_CHILD_URL", server.url(DB))
        .env("PGBUS_BENCH_CHILD_N", n.to_string())
        .env("PGBUS_BENCH_CHILD_RATE", rate.to_string())
        .env("PGBUS_BENCH_CHILD_PUBLISHERS", publishers.to_string())
        .env(
            "PGBUS_BENCH_CHILD_FLOOR",
            u8::from(matches!(what, Publish::Floor)).to_string(),
        )
        .env("PGBUS_BENCH_CHILD_OUT", &out)
        .status()
        .await?;
    if !status.success() {
        return Err(format!("latency publisher exited with {status}").into());
    }
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
    Ok((meta, commits))
}

/// One latency run, for its summary.
pub struct Run {
    pub id: String,
    pub name: String,
    pub rate: f64,
    pub n: usize,
    pub publishers: usize,
    /// Whether every event arrived in time.
    pub all: bool,
    pub meaning: &'static str,
}

/// Prints and returns the figures of a run from the commit times and the (seq, start ns)
/// pairs of the consumer.
pub fn summarise(
    run: Run,
    meta: &Value,
    commits: &HashMap<i64, i128>,
    starts: &[(i64, i128)],
) -> Value {
    let mut lat = Vec::with_capacity(starts.len());
    // The same without the first deliveries: the steady state.
    let mut steady = Vec::with_capacity(starts.len());
    for (seq, start) in starts {
        if let Some(c) = commits.get(seq) {
            lat.push((start - c) as f64 / 1e6);
            if *seq >= FIRST {
                steady.push((start - c) as f64 / 1e6);
            }
        }
    }
    // The first deliveries after the consumer started, in publish order: they pay for
    // whatever its connections plan or load on first use.
    let started: HashMap<i64, i128> = starts.iter().copied().collect();
    let first: Vec<f64> = (0..FIRST)
        .filter_map(|seq| Some((started.get(&seq)? - commits.get(&seq)?) as f64 / 1e6))
        .collect();
    let first_max = first.iter().copied().fold(0.0_f64, f64::max);
    // The slowest deliveries, by publish order: (seq, ms).
    let mut slowest: Vec<(i64, f64)> = (starts.iter())
        .filter_map(|(seq, start)| Some((*seq, (start - commits.get(seq)?) as f64 / 1e6)))
        .collect();
    slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
    slowest.truncate(env_usize("PGBUS_LAT_SLOWEST", 3));
    let missing = commits.len().saturating_sub(lat.len());
    let summary = latency_summary(lat);
    let steady = latency_summary(steady);
    progress(format!(
        "  p50 {} ms, p90 {} ms, p99 {} ms, max {} ms ({} samples, {missing} missing{})",
        ms(&summary["p50_ms"]),
        ms(&summary["p90_ms"]),
        ms(&summary["p99_ms"]),
        ms(&summary["max_ms"]),
        summary["n"],
        if run.all { "" } else { ", NOT ALL DELIVERED" }
    ));
    progress(format!(
        "  first {FIRST} deliveries after the start: max {first_max:.2} ms ({}); without them p99 {} ms, max {} ms",
        (first.iter().map(|l| format!("{l:.1}")))
            .collect::<Vec<_>>()
            .join(" "),
        ms(&steady["p99_ms"]),
        ms(&steady["max_ms"]),
    ));
    progress(format!(
        "  slowest (publish order of {}: ms): {}",
        run.n,
        (slowest.iter().map(|(seq, l)| format!("#{seq}: {l:.1}")))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    json!({
        "id": run.id,
        "name": run.name,
        "unit": "events/s (offered)",
        "rate": Value::Null,
        "offered_rate": run.rate,
        "achieved_publish_rate": meta["achieved_rate"],
        "publishers": run.publishers,
        "n": run.n,
        "missing": missing,
        "latency": summary,
        "first_deliveries_ms": first,
        "latency_after_first": steady,
        "slowest": slowest,
        "latency_meaning": run.meaning,
    })
}

/// The publisher process of the latency scenario: N events, one per transaction, due at
/// `i / rate` seconds, spread over a few connections so that a slow commit does not delay
/// the next event; writes `seq,commit_ns` lines.
pub async fn publisher_child() -> Res<()> {
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
    let floor = std::env::var("PGBUS_BENCH_CHILD_FLOOR").as_deref() == Ok("1");
    let publisher = publisher()?;
    let tickets = Tickets::new(n, 1);
    let t0 = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::new();
    for mut conn in conns {
        let tickets = tickets.clone();
        let publisher = publisher.clone();
        tasks.push(tokio::spawn(async move {
            let mut rows = Vec::new();
            while let Some(r) = tickets.take() {
                let i = r.start;
                tokio::time::sleep_until(t0 + Duration::from_secs_f64(i as f64 / rate)).await;
                let mut tx = conn.begin().await?;
                if floor {
                    crate::latency_floor::publish(&mut tx, i).await?;
                } else {
                    publisher.publish(&mut tx, noop_event(i)).await?;
                }
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
