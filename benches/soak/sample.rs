//! The soak's samples: relation sizes, backlog, dead tuples, the horizon's age and whether
//! the pin is held, every few seconds; and whether each relation levelled off.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use tokio::task::JoinHandle;

use crate::common::{BoxError, Counter, Res, round1, round3};
use crate::load::Progress;

#[derive(Debug, Clone)]
pub struct Sample {
    pub t: f64,
    pub published: usize,
    pub delivered: usize,
    pub open: i64,
    pub running: i64,
    pub dead: i64,
    /// `pg_relation_size` and `pg_indexes_size` of `pgbus.deliveries`.
    pub heap: i64,
    pub indexes: i64,
    /// `pg_total_relation_size` summed over the `pgbus` schema's tables.
    pub schema: i64,
    /// The largest `age(backend_xmin)` of the other sessions, in transactions.
    pub horizon_age: i64,
    pub pin_held: bool,
    /// `pg_total_relation_size` per table (`deliveries`) and index (`deliveries/<index>`).
    pub sizes: BTreeMap<String, i64>,
}

/// The tables that hold deliveries: `pgbus.deliveries`, the delivery log's slots, the
/// batches (`pgbus.claims`) and the log's ring; their sum is sampled as `delivery_storage`.
pub const DELIVERY_STORAGE: [&str; 7] = [
    "deliveries",
    "delivery_log_0",
    "delivery_log_1",
    "delivery_log_2",
    "delivery_log_3",
    "claims",
    "log_ring",
];

impl Sample {
    /// The delivery storage (heap + indexes of the [`DELIVERY_STORAGE`] tables);
    /// `pgbus.deliveries` alone for a schema without the delivery log.
    pub fn deliveries(&self) -> i64 {
        (self.sizes.get("delivery_storage"))
            .or_else(|| self.sizes.get("deliveries"))
            .copied()
            .unwrap_or(0)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "t": round1(self.t), "published": self.published, "delivered": self.delivered,
            "open": self.open, "running": self.running, "n_dead_tup": self.dead,
            "deliveries_heap": self.heap, "deliveries_indexes": self.indexes,
            "schema_total": self.schema, "horizon_age_xids": self.horizon_age,
            "pin_held": self.pin_held, "sizes": self.sizes,
        })
    }
}

async fn sample(
    c: &mut PgConnection,
    t0: Instant,
    published: usize,
    delivered: usize,
    pin_held: bool,
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
        "SELECT count(*), count(*) FILTER (WHERE state = 1) FROM pgbus.all_deliveries
         WHERE state < 2",
    )
    .fetch_one(&mut *c)
    .await?;
    let dead: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(n_dead_tup), 0)::int8 FROM pg_stat_user_tables
         WHERE schemaname = 'pgbus' AND relname = ANY ($1)",
    )
    .bind(DELIVERY_STORAGE)
    .fetch_one(&mut *c)
    .await?;
    let (heap, indexes, schema, horizon_age): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT pg_relation_size('pgbus.deliveries'), pg_indexes_size('pgbus.deliveries'),
                (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'pgbus' AND c.relkind = 'r'),
                (SELECT coalesce(max(age(backend_xmin)), 0)::bigint FROM pg_stat_activity
                 WHERE pid <> pg_backend_pid())",
    )
    .fetch_one(&mut *c)
    .await?;
    let mut sizes: BTreeMap<String, i64> = rows
        .into_iter()
        .map(|(name, size)| (name.trim_start_matches("pgbus.").to_owned(), size))
        .collect();
    let storage = DELIVERY_STORAGE.iter().filter_map(|t| sizes.get(*t)).sum();
    sizes.insert("delivery_storage".to_owned(), storage);
    Ok(Sample {
        t: t0.elapsed().as_secs_f64(),
        published,
        delivered,
        open,
        running,
        dead,
        heap,
        indexes,
        schema,
        horizon_age,
        pin_held,
        sizes,
    })
}

/// Samples every `every` from `c` until `progress.stop` is set (one sample after it),
/// printing each.
pub fn spawn_sampler(
    mut c: PgConnection,
    t0: Instant,
    every: Duration,
    progress: Arc<Progress>,
    counter: Arc<Counter>,
) -> JoinHandle<Res<Vec<Sample>>> {
    tokio::spawn(async move {
        let mut samples = Vec::new();
        let mut next = tokio::time::Instant::now();
        loop {
            let pin_held = progress.pin_held.load(Ordering::SeqCst);
            let s = sample(&mut c, t0, progress.published(), counter.count(), pin_held).await?;
            eprintln!(
                "[{:>6.1} s] published {:>9} delivered {:>9} open {:>6} (running {:>5}) dead {:>8} horizon {:>7} xids{}  delivery storage {:>7} KiB (deliveries heap {:>7}, indexes {:>7})  schema {:>8} KiB",
                s.t,
                s.published,
                s.delivered,
                s.open,
                s.running,
                s.dead,
                s.horizon_age,
                if s.pin_held { " PIN" } else { "    " },
                s.deliveries() / 1024,
                s.heap / 1024,
                s.indexes / 1024,
                s.schema / 1024,
            );
            samples.push(s);
            if progress.stop.load(Ordering::SeqCst) {
                break;
            }
            next += every;
            tokio::time::sleep_until(next).await;
        }
        c.close().await?;
        Ok::<_, BoxError>(samples)
    })
}

/// Per relation: size at 25% of the publishing phase, max, final, and whether it levelled off.
pub fn analyse(samples: &[Sample], publish_secs: f64) -> Value {
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
