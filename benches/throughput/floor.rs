//! `floor`: the same rows inserted, claimed and deleted by raw SQL on pgbus's own tables and
//! indexes, no library; and each library figure as a fraction of its floor.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection};
use uuid::Uuid;

use crate::claim::{ClaimKind, claim_worker};
use crate::common::*;
use crate::{DB, Sizes, progress};

const FLOOR_INSERT: &str = "
WITH e AS (
    INSERT INTO pgbus.events (id, type, source, data)
    SELECT u.id, 'bench.noop', 'floor', u.data FROM unnest($1::uuid[], $2::jsonb[]) AS u(id, data)
    RETURNING id, priority
)
INSERT INTO pgbus.deliveries (event_id, subscription, priority)
SELECT id, 'bench.sub', priority FROM e";

fn floor_payload(i: usize) -> Value {
    json!({ "seq": i })
}

/// Inserts the floor's events `from..to` and one delivery each (payload `{"seq": i}`).
pub async fn floor_insert(conn: &mut PgConnection, from: usize, to: usize) -> Res<()> {
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

/// `n` events and their deliveries inserted by `clients` connections, `per_statement` rows
/// per statement (autocommit); returns the seconds it took.
async fn publish_floor(
    server: &Server,
    clients: usize,
    n: usize,
    per_statement: usize,
) -> Res<f64> {
    truncate(server).await?;
    server.settle(DB).await?;
    let conns = server.connections(DB, clients).await?;
    let tickets = Tickets::new(n, per_statement);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for mut c in conns {
        let tickets = tickets.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(r) = tickets.take() {
                floor_insert(&mut c, r.start, r.end).await?;
            }
            c.close().await?;
            Ok::<_, BoxError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(t0.elapsed().as_secs_f64())
}

pub async fn run(server: &Server, sizes: &Sizes) -> Res<Vec<Value>> {
    progress("floor: raw SQL on pgbus's own tables and indexes, no library");
    server.fresh_db(DB).await?;
    let mut out = Vec::new();

    // Publish, batched: the rows publish_all writes (event + one delivery), 1,000 per statement.
    for clients in [1usize, 2] {
        let n = sizes.batch_n;
        let secs = publish_floor(server, clients, n, BATCH).await?;
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
        let n = sizes.floor_single_n;
        let secs = publish_floor(server, clients, n, 1).await?;
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
            let conns = server.connections(DB, clients).await?;
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

/// The fastest claim floor among those whose id passes `pick`.
fn fastest(floor: &[Value], pick: impl Fn(&str) -> bool) -> Option<&Value> {
    floor
        .iter()
        .filter(|f| f["id"].as_str().is_some_and(&pick))
        .max_by(|a, b| {
            a["rate"]
                .as_f64()
                .unwrap_or(0.0)
                .total_cmp(&b["rate"].as_f64().unwrap_or(0.0))
        })
}

/// Sets `floor_ref`, `floor_rate` and `fraction_of_floor` on each scenario (on a latency run,
/// `floor_ref` and `p99_times_floor`: its p99 over the raw floor's at the same rate).
pub fn attach_floor_refs(scenarios: &mut [Value], floor: &[Value]) {
    let by_id: HashMap<&str, &Value> = floor
        .iter()
        .filter_map(|f| Some((f["id"].as_str()?, f)))
        .collect();
    let best_claim = fastest(floor, |id| id.starts_with("floor_claim"));
    // A dispatcher must read each event, so the drains are compared with the fastest claim
    // floor that reads the payload too (the table lists the others).
    let best_claim_payload = fastest(floor, |id| {
        id.starts_with("floor_claim") && id.contains("payload")
    })
    .or(best_claim);
    // A latency run is compared with its floor at the same rate, when that ran too.
    let latency_floors: HashMap<String, f64> = (scenarios.iter())
        .filter_map(|s| {
            let id = s["id"].as_str()?.strip_prefix("latency_floor_")?;
            Some((format!("latency_{id}"), s["latency"]["p99_ms"].as_f64()?))
        })
        .collect();
    for s in scenarios.iter_mut() {
        let id = s["id"].as_str().unwrap_or("");
        if let (Some(fp99), Some(p99)) = (latency_floors.get(id), s["latency"]["p99_ms"].as_f64()) {
            s["floor_ref"] = json!(format!("latency_floor_{}", &id["latency_".len()..]));
            s["p99_times_floor"] = json!(round3(p99 / fp99));
            continue;
        }
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
