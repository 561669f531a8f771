//! pgbus soak test: `cargo bench --bench soak`.
//!
//! Publishes `PGBUS_SOAK_EVENTS` events (default 1,000,000) at a steady `PGBUS_SOAK_RATE`
//! (default 5,000/s) with `publish_all` every `PGBUS_SOAK_TICK_MS` (10 ms), while one
//! dispatcher (same process, its own pool; no-op handler) delivers them. Every
//! `PGBUS_SOAK_SAMPLE_SECS` (5 s) it records `pg_total_relation_size` of each table and index
//! in the `pgbus` schema, the open backlog and dead tuples. At the end it prints each series
//! compactly and compares the largest size with the size at 25% of the run: a queue that
//! levels off stays near it; one that grows with the count does not.
//!
//! Same server as the `throughput` bench (throwaway durable cluster, or `DATABASE_URL`).
//! Results: `target/pgbus-bench/soak-<timestamp>.json` and `soak-latest.json`; plot:
//! `benches/results/pgbus-soak.svg` (`PGBUS_SOAK_SVG` to change; `PGBUS_SOAK_PLOT=<json>`
//! only redraws it).

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use pgbus::NewEvent;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

const DB: &str = "pgbus_bench_soak";
const SUB: &str = "bench.soak";

#[tokio::main]
async fn main() {
    if let Some(path) = std::env::var_os("PGBUS_SOAK_PLOT") {
        let report: Value = serde_json::from_slice(&std::fs::read(&path).expect("read results"))
            .expect("results JSON");
        let out = svg_path("PGBUS_SOAK_SVG", "pgbus-soak.svg");
        plot(&report).write(&out).expect("write SVG");
        println!("plot written to {}", out.display());
        return;
    }
    if !invoked_as_bench() {
        eprintln!("soak test: run it with `cargo bench --bench soak` (skipped)");
        return;
    }
    if let Err(e) = run().await {
        eprintln!("soak failed: {e}");
        std::process::exit(1);
    }
}

#[derive(Debug, Clone)]
struct Sample {
    t: f64,
    published: usize,
    delivered: usize,
    open: i64,
    running: i64,
    dead: i64,
    sizes: BTreeMap<String, i64>,
}

async fn sample(
    c: &mut PgConnection,
    t0: Instant,
    published: usize,
    delivered: usize,
) -> Res<Sample> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT CASE WHEN c.relkind = 'i' THEN i.indrelid::regclass::text || '/' || c.relname
                     ELSE c.relname END,
                pg_total_relation_size(c.oid)
         FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_index i ON i.indexrelid = c.oid
         WHERE n.nspname = 'pgbus' AND c.relkind IN ('r', 'i')
         ORDER BY 1",
    )
    .fetch_all(&mut *c)
    .await?;
    let (open, running): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE state = 1) FROM pgbus.deliveries WHERE state < 2",
    )
    .fetch_one(&mut *c)
    .await?;
    let dead: i64 = sqlx::query_scalar(
        "SELECT coalesce(n_dead_tup, 0) FROM pg_stat_user_tables
         WHERE schemaname = 'pgbus' AND relname = 'deliveries'",
    )
    .fetch_one(&mut *c)
    .await?;
    Ok(Sample {
        t: t0.elapsed().as_secs_f64(),
        published,
        delivered,
        open,
        running,
        dead,
        sizes: rows
            .into_iter()
            .map(|(name, size)| (name.trim_start_matches("pgbus.").to_owned(), size))
            .collect(),
    })
}

async fn run() -> Res<()> {
    init_logging();
    let q = quick();
    let n = env_usize("PGBUS_SOAK_EVENTS", if q { 100_000 } else { 1_000_000 });
    let rate = env_f64("PGBUS_SOAK_RATE", 5_000.0);
    let tick = Duration::from_millis(env_usize("PGBUS_SOAK_TICK_MS", 10) as u64);
    let every =
        Duration::from_secs_f64(env_f64("PGBUS_SOAK_SAMPLE_SECS", if q { 2.0 } else { 5.0 }));
    let tuning = Tuning::from_env();
    let stamp = timestamp();

    let server = Server::start().await?;
    let machine = machine();
    let pg = postgres(&server).await?;
    print_header(&machine, &pg);
    println!(
        "soak: {} events at {}/s (publish_all every {:?}, in-process publisher with its own pool), \
         one in-process dispatcher (pool of 10, settings {}), sampling every {:?}\n",
        thousands(n as f64),
        thousands(rate),
        tick,
        tuning.describe(),
        every
    );

    server.fresh_db(DB).await?;
    server.settle(DB).await?;
    let pool = server.pool(DB, 10).await?;
    let pub_pool = server.pool(DB, 2).await?;
    let counter = Counter::recording_age(n);
    let handle = tuning
        .dispatcher(&pool, vec![tuning.subscription(SUB, Noop(counter.clone()))])?
        .start()
        .await?;

    let t0 = Instant::now();
    let published = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    // Sampler.
    let sampler = {
        let mut c = server.connect(DB).await?;
        let published = published.clone();
        let counter = counter.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut next = tokio::time::Instant::now();
            loop {
                let s = sample(
                    &mut c,
                    t0,
                    published.load(Ordering::SeqCst),
                    counter.count(),
                )
                .await?;
                eprintln!(
                    "[{:>6.1} s] published {:>9} delivered {:>9} open {:>6} (running {:>6}) dead {:>7}  deliveries {:>9} KiB  events {:>9} KiB",
                    s.t,
                    s.published,
                    s.delivered,
                    s.open,
                    s.running,
                    s.dead,
                    s.sizes.get("deliveries").copied().unwrap_or(0) / 1024,
                    s.sizes.get("events").copied().unwrap_or(0) / 1024,
                );
                samples.push(s);
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                next += every;
                tokio::time::sleep_until(next).await;
            }
            c.close().await?;
            Ok::<_, BoxError>(samples)
        })
    };

    // Publisher: steady rate, one publish_all per tick with what is due.
    let publisher = publisher()?;
    let mut conn = pub_pool.acquire().await?;
    let mut behind_max = 0usize;
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut i = 0usize;
    while i < n {
        ticker.tick().await;
        let due = ((t0.elapsed().as_secs_f64() * rate) as usize).min(n);
        behind_max = behind_max.max(due.saturating_sub(i));
        while i < due {
            let to = (i + BATCH).min(due);
            let sent = now_ns() as i64;
            let events: Vec<NewEvent> = (i..to)
                .map(|s| NewEvent::raw(EVENT_TYPE, json!({ "seq": s, "t": sent })))
                .collect();
            publisher.publish_all(&mut conn, &events).await?;
            i = to;
            published.store(i, Ordering::SeqCst);
        }
    }
    let publish_secs = t0.elapsed().as_secs_f64();
    drop(conn);
    eprintln!("published {n} events in {publish_secs:.1} s");

    let timeout = Duration::from_secs(120);
    let delivered_all = counter.wait(timeout).await;
    let mut checker = server.connect(DB).await?;
    wait_no_pending(&mut checker, timeout).await?;
    let total_secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let samples = sampler.await??;
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

    let ages: Vec<f64> = counter
        .ages_ms
        .lock()
        .unwrap()
        .iter()
        .map(|&x| x as f64)
        .collect();
    let latency = latency_summary(ages);
    let analysis = analyse(&samples, publish_secs);
    let report = json!({
        "bench": "soak",
        "started_at": chrono::Utc::now().to_rfc3339(),
        "quick": q,
        "machine": machine,
        "postgres": pg,
        "dispatcher": {
            "process": "in-process dispatcher (pool of 10) and in-process publisher (separate pool of 2)",
            "tuning": tuning.describe(),
        },
        "events": n,
        "rate": rate,
        "tick_ms": tick.as_millis() as u64,
        "sample_secs": every.as_secs_f64(),
        "publish_secs": round3(publish_secs),
        "total_secs": round3(total_secs),
        "achieved_publish_rate": (n as f64 / publish_secs).round(),
        "delivered_all": delivered_all,
        "publisher_max_behind_events": behind_max,
        "max_open_backlog": samples.iter().map(|s| s.open).max().unwrap_or(0),
        "deliveries_autovacuum_count": autovacuums,
        "deliveries_autoanalyze_count": autoanalyzes,
        "latency": latency,
        "latency_meaning": "wall clock at handler start − wall clock just before the publish_all call that carried the event",
        "relations": analysis,
        "samples": samples.iter().map(|s| json!({
            "t": round1(s.t), "published": s.published, "delivered": s.delivered,
            "open": s.open, "running": s.running, "n_dead_tup": s.dead, "sizes": s.sizes,
        })).collect::<Vec<_>>(),
    });

    print_summary(&report);
    let file = write_results("soak", &stamp, &report)?;
    println!("\nJSON: {} (and soak-latest.json)", file.display());
    let svg = svg_path("PGBUS_SOAK_SVG", "pgbus-soak.svg");
    plot(&report).write(&svg)?;
    println!("plot: {}", svg.display());
    server.finish().await?;
    if !delivered_all {
        return Err("not every event was delivered in time".into());
    }
    Ok(())
}

/// Per relation: size at 25% of the publishing phase, max, final, and whether it levelled off.
fn analyse(samples: &[Sample], publish_secs: f64) -> Value {
    let names: Vec<String> = samples
        .last()
        .map(|s| s.sizes.keys().cloned().collect())
        .unwrap_or_default();
    let at = |t: f64, name: &str| {
        samples
            .iter()
            .find(|s| s.t >= t)
            .or(samples.last())
            .and_then(|s| s.sizes.get(name).copied())
            .unwrap_or(0)
    };
    let mut out = serde_json::Map::new();
    for name in names {
        let series: Vec<i64> = samples
            .iter()
            .map(|s| s.sizes.get(&name).copied().unwrap_or(0))
            .collect();
        let max = series.iter().copied().max().unwrap_or(0);
        let q1 = at(publish_secs * 0.25, &name);
        let last = series.last().copied().unwrap_or(0);
        // "Levels off": the largest size stays within 1.5× (or 1 MiB) of the size at 25%.
        let flat = (max as f64) <= (q1 as f64) * 1.5 || max - q1 <= 1 << 20;
        let by_design = name == "events" || name.starts_with("events/");
        out.insert(
            name,
            json!({
                "at_25pct_bytes": q1,
                "max_bytes": max,
                "final_bytes": last,
                "max_over_25pct": if q1 > 0 { round3(max as f64 / q1 as f64) } else { f64::NAN },
                "levels_off": flat,
                "grows_by_design": by_design,
            }),
        );
    }
    Value::Object(out)
}

fn human(bytes: i64) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", b / 1024.0 / 1024.0 / 1024.0)
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    } else {
        format!("{:.0} KiB", b / 1024.0)
    }
}

fn print_summary(report: &Value) {
    println!(
        "\nsoak: {} events, published in {} s ({} events/s achieved; publisher at most {} events behind), all delivered after {} s: {}",
        thousands(report["events"].as_f64().unwrap_or(0.0)),
        report["publish_secs"],
        thousands(report["achieved_publish_rate"].as_f64().unwrap_or(0.0)),
        report["publisher_max_behind_events"],
        report["total_secs"],
        report["delivered_all"]
    );
    let l = &report["latency"];
    println!(
        "publish → handler start: p50 {} ms, p90 {} ms, p99 {} ms, max {} ms; largest open backlog {} deliveries; autovacuum on deliveries {} times",
        ms(&l["p50_ms"]),
        ms(&l["p90_ms"]),
        ms(&l["p99_ms"]),
        ms(&l["max_ms"]),
        report["max_open_backlog"],
        report["deliveries_autovacuum_count"]
    );
    println!(
        "\n{:<40} {:>12} {:>12} {:>12} {:>9}  verdict",
        "relation (pg_total_relation_size)", "at 25%", "max", "final", "max/25%"
    );
    let empty = serde_json::Map::new();
    let rels = report["relations"].as_object().unwrap_or(&empty);
    for (name, r) in rels {
        let verdict = if r["grows_by_design"].as_bool() == Some(true) {
            "grows with the count by design (events are kept for event_retention, 7 days by default)"
        } else if r["levels_off"].as_bool() == Some(true) {
            "levels off"
        } else {
            "GROWS"
        };
        println!(
            "{:<40} {:>12} {:>12} {:>12} {:>9.2}  {verdict}",
            name,
            human(r["at_25pct_bytes"].as_i64().unwrap_or(0)),
            human(r["max_bytes"].as_i64().unwrap_or(0)),
            human(r["final_bytes"].as_i64().unwrap_or(0)),
            r["max_over_25pct"].as_f64().unwrap_or(f64::NAN),
        );
    }
    // Compact series, at most ~24 points per relation, in KiB.
    let samples = report["samples"].as_array().cloned().unwrap_or_default();
    let step = samples.len().div_ceil(24).max(1);
    let picked: Vec<&Value> = samples.iter().step_by(step).collect();
    println!(
        "\nsize series in KiB (every {:.0} s):",
        report["sample_secs"].as_f64().unwrap_or(5.0) * step as f64
    );
    println!(
        "  {:<38} {}",
        "t (s)",
        picked
            .iter()
            .map(|s| format!("{:.0}", s["t"].as_f64().unwrap_or(0.0)))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for name in rels.keys() {
        println!(
            "  {:<38} {}",
            name,
            picked
                .iter()
                .map(|s| (s["sizes"][name].as_i64().unwrap_or(0) / 1024).to_string())
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    println!(
        "  {:<38} {}",
        "running (state 1) deliveries",
        picked
            .iter()
            .map(|s| s["running"].to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "  {:<38} {}",
        "open deliveries",
        picked
            .iter()
            .map(|s| s["open"].to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
}

/// Size over time, one panel per table (its heap+indexes total and each index).
fn plot(report: &Value) -> Svg {
    let mut svg = Svg::new(960.0);
    let (machine, server) = describe_header(report);
    svg.text(
        20.0,
        28.0,
        18.0,
        "start",
        r#"font-weight="bold""#,
        "pgbus soak: relation sizes over time",
    );
    svg.text(20.0, 48.0, 12.0, "start", r##"fill="#444""##, &machine);
    svg.text(20.0, 64.0, 12.0, "start", r##"fill="#444""##, &server);
    let l = &report["latency"];
    svg.text(
        20.0,
        80.0,
        12.0,
        "start",
        r##"fill="#444""##,
        &format!(
            "{} events at {}/s; publish → handler p50 {} ms, p99 {} ms, max {} ms",
            thousands(report["events"].as_f64().unwrap_or(0.0)),
            thousands(report["rate"].as_f64().unwrap_or(0.0)),
            ms(&l["p50_ms"]),
            ms(&l["p99_ms"]),
            ms(&l["max_ms"]),
        ),
    );
    let samples = report["samples"].as_array().cloned().unwrap_or_default();
    let names: Vec<String> = report["relations"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let t_max = samples
        .iter()
        .filter_map(|s| s["t"].as_f64())
        .fold(1.0, f64::max);
    let colors = [
        "#2f6db5", "#e08a2c", "#2a9d4a", "#c0392b", "#8e44ad", "#7f8c8d",
    ];
    let mut y = 100.0;
    for table in ["deliveries", "events"] {
        let rels: Vec<&String> = names
            .iter()
            .filter(|n| *n == table || n.starts_with(&format!("{table}/")))
            .collect();
        if rels.is_empty() {
            continue;
        }
        let v_max = rels
            .iter()
            .flat_map(|n| {
                samples
                    .iter()
                    .filter_map(|s| s["sizes"][n.as_str()].as_i64())
            })
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let (x0, w, h) = (90.0, 500.0, 150.0);
        svg.text(
            20.0,
            y + 12.0,
            14.0,
            "start",
            r#"font-weight="bold""#,
            &format!("pgbus.{table}"),
        );
        let top = y + 22.0;
        for k in 0..=4 {
            let v = v_max * k as f64 / 4.0;
            let yy = top + h - h * k as f64 / 4.0;
            svg.line(x0, yy, x0 + w, yy, "#e5e5e5", "");
            svg.text(
                x0 - 6.0,
                yy + 4.0,
                10.0,
                "end",
                r##"fill="#666""##,
                &human(v as i64),
            );
        }
        for k in 0..=5 {
            let t = t_max * k as f64 / 5.0;
            let xx = x0 + w * k as f64 / 5.0;
            svg.text(
                xx,
                top + h + 14.0,
                10.0,
                "middle",
                r##"fill="#666""##,
                &format!("{t:.0} s"),
            );
        }
        for (i, name) in rels.iter().enumerate() {
            let pts: Vec<(f64, f64)> = samples
                .iter()
                .filter_map(|s| {
                    let t = s["t"].as_f64()?;
                    let v = s["sizes"][name.as_str()].as_i64()? as f64;
                    Some((x0 + w * t / t_max, top + h - h * v / v_max))
                })
                .collect();
            let color = colors[i % colors.len()];
            svg.polyline(&pts, color, name);
            let r = &report["relations"][name.as_str()];
            svg.rect(
                x0 + w + 20.0,
                top + 4.0 + i as f64 * 18.0,
                12.0,
                10.0,
                color,
                name,
            );
            svg.text(
                x0 + w + 38.0,
                top + 13.0 + i as f64 * 18.0,
                10.0,
                "start",
                "",
                &format!(
                    "{}: max {}, {:.2}× at 25%",
                    match name.split_once('/') {
                        Some((_, index)) => format!("index {index}"),
                        None => format!("{name}, heap + indexes"),
                    },
                    human(r["max_bytes"].as_i64().unwrap_or(0)),
                    r["max_over_25pct"].as_f64().unwrap_or(f64::NAN)
                ),
            );
        }
        y = top + h + 36.0;
    }
    svg.text(
        20.0,
        y,
        10.0,
        "start",
        r##"fill="#888""##,
        "generated by `cargo bench --bench soak` (benches/soak.rs) from its JSON results",
    );
    svg.height = y + 14.0;
    svg
}
