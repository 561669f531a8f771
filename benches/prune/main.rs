//! Event retention at scale: `cargo bench --bench prune`.
//!
//! Fills `pgbus.events` with `PGBUS_PRUNE_EVENTS` (default 5,000,000) fully delivered events,
//! of which `PGBUS_PRUNE_KEEP_PCT` percent (default 10) are recent and the rest older than the
//! retention: the old ones in the events ring's first slot, dated as closed two days ago, the
//! recent ones in the next slot. Then it starts one dispatcher (`event_retention` 1 day,
//! maintenance every 100 ms) and measures how long its retention takes to remove the old
//! ones (one TRUNCATE of the old slot), how the table's size and dead tuples change, and,
//! with `PGBUS_PRUNE_PIN=1`, the same while a REPEATABLE READ transaction that took an xid
//! is held open. Same server as the other benches (a throwaway durable cluster, or
//! `DATABASE_URL`); results in `target/pgbus-bench/prune-<timestamp>.json`.

#[path = "../common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use sqlx::{Connection, PgPool};

const DB: &str = "pgbus_bench_prune";
const SUB: &str = "bench.prune";
/// Events inserted per statement while filling.
const FILL_CHUNK: i64 = 250_000;

#[tokio::main]
async fn main() {
    run_bench("prune", "event retention", "prune bench failed", run()).await;
}

async fn events_size(pool: &PgPool) -> Res<(i64, i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT (SELECT count(*) FROM pgbus.events),
                (SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0)::int8
                 FROM pg_inherits i WHERE i.inhparent = 'pgbus.events'::regclass),
                coalesce((SELECT sum(n_dead_tup)::int8 FROM pg_stat_user_tables
                          WHERE schemaname = 'pgbus' AND relname LIKE 'events\\_%'), 0)",
    )
    .fetch_one(pool)
    .await?)
}

async fn run() -> Res<()> {
    init_logging();
    let n = env_usize(
        "PGBUS_PRUNE_EVENTS",
        if quick() { 500_000 } else { 5_000_000 },
    ) as i64;
    let keep = n * env_usize("PGBUS_PRUNE_KEEP_PCT", 10) as i64 / 100;
    let pin = std::env::var("PGBUS_PRUNE_PIN").as_deref() == Ok("1");
    let (server, machine, pg) = start_described().await?;
    println!(
        "prune: {} events, {} of them older than the retention; pinned horizon: {pin}\n",
        thousands(n as f64),
        thousands((n - keep) as f64)
    );
    server.fresh_db(DB).await?;
    let pool = server.pool(DB, 10).await?;

    let fill = Instant::now();
    let mut done = 0;
    while done < n {
        if done == n - keep {
            // The old events' slot closed two days ago; the recent ones go to the next.
            sqlx::raw_sql(
                "UPDATE pgbus.events_ring SET opened_at = now() - interval '3 days';
                 INSERT INTO pgbus.events_ring (generation, slot, opened_at)
                 SELECT generation + 1, (slot + 1) % 8, now() - interval '2 days'
                 FROM pgbus.events_ring ORDER BY generation DESC LIMIT 1",
            )
            .execute(&pool)
            .await?;
        }
        let end = if done < n - keep { n - keep } else { n };
        let chunk = FILL_CHUNK.min(end - done);
        sqlx::query(
            "INSERT INTO pgbus.events (id, type, source, data, created_at)
             SELECT gen_random_uuid(), 'bench.noop', 'bench', jsonb_build_object('i', i),
                    CASE WHEN i > $2 THEN now() ELSE now() - interval '2 days' END
             FROM generate_series($1 + 1, $1 + $3) AS i",
        )
        .bind(done)
        .bind(n - keep)
        .bind(chunk)
        .execute(&pool)
        .await?;
        done += chunk;
    }
    server.settle(DB).await?;
    let (rows, before, _) = events_size(&pool).await?;
    println!(
        "filled {} events in {:.1} s: pgbus.events {}",
        thousands(rows as f64),
        fill.elapsed().as_secs_f64(),
        human(before)
    );

    let mut pinner = server.connect(DB).await?;
    if pin {
        sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT txid_current();")
            .execute(&mut pinner)
            .await?;
    }
    let counter = Counter::new(usize::MAX);
    let handle = pgbus::Dispatcher::builder(pool.clone())
        .subscribe(pgbus::Subscription::raw(SUB, [EVENT_TYPE], Noop(counter)))
        .event_retention(Some(Duration::from_secs(24 * 3600)))
        .maintenance_interval(Duration::from_millis(100))
        .build()?
        .start()
        .await?;
    let started = Instant::now();
    let mut samples = Vec::new();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (left, size, dead) = events_size(&pool).await?;
        let at = started.elapsed().as_secs_f64();
        samples.push(json!({ "secs": round3(at), "events": left, "bytes": size, "dead": dead }));
        if left <= keep || at > 1_800.0 {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    handle.shutdown().await?;
    let (left, after, dead) = events_size(&pool).await?;
    if pin {
        sqlx::raw_sql("COMMIT").execute(&mut pinner).await?;
    }
    pinner.close().await?;
    sqlx::query("VACUUM pgbus.events").execute(&pool).await?;
    let (_, vacuumed, _) = events_size(&pool).await?;
    let pruned = (rows - left) as f64;
    println!(
        "pruned {} events in {:.1} s ({}/s; the first maintenance after up to 100 ms, sampled every 0.5 s); pgbus.events {} \
         after pruning ({} dead tuples), {} after VACUUM{}",
        thousands(pruned),
        secs,
        thousands(pruned / secs),
        human(after),
        thousands(dead as f64),
        human(vacuumed),
        if pin {
            " (after the pin's release)"
        } else {
            ""
        }
    );
    let report = json!({
        "machine": machine, "postgres": pg, "events": n, "old": n - keep, "pinned": pin,
        "pruned": rows - left, "secs": round3(secs), "per_sec": (pruned / secs).round(),
        "bytes_before": before, "bytes_after": after, "dead_after": dead,
        "bytes_after_vacuum": vacuumed, "samples": samples,
    });
    let path = write_results("prune", &timestamp(), &report)?;
    println!("JSON: {}", path.display());
    server.finish().await
}
