//! `publish` (one event per transaction, 1 and 16 publishers), `publish_all` (1,000 events
//! per call) and `publish_dedupe` (the same with a dedupe key on every event, one in ten a
//! duplicate of an earlier call's).

use std::time::Instant;

use pgbus::NewEvent;

use serde_json::{Value, json};
use sqlx::Connection;

use crate::common::*;
use crate::{DB, SUB, progress};

pub async fn single(server: &Server, publishers: usize, n: usize) -> Res<Value> {
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
    let tickets = Tickets::new(n, 1);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for mut conn in conns {
        let tickets = tickets.clone();
        let publisher = publisher.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while let Some(r) = tickets.take() {
                let i = r.start;
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

pub async fn batches(server: &Server, n: usize) -> Res<Value> {
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

pub async fn dedupe_batches(server: &Server, n: usize) -> Res<Value> {
    progress(format!(
        "publish_dedupe: {n} events with dedupe keys (one in ten a duplicate), 1,000 per call"
    ));
    server.fresh_db(DB).await?;
    let pool = server.pool(DB, 2).await?;
    register(&pool, &[SUB]).await?;
    server.settle(DB).await?;
    let publisher = publisher()?;
    let mut conn = pool.acquire().await?;
    let mut lat = Vec::with_capacity(n / BATCH + 1);
    let mut duplicates = 0usize;
    let t0 = Instant::now();
    let mut i = 0;
    while i < n {
        // Every tenth key repeats one of the previous call's.
        let events: Vec<NewEvent> = (i..(i + BATCH).min(n))
            .map(|seq| {
                let key = if seq % 10 == 9 && seq >= BATCH {
                    seq - BATCH
                } else {
                    seq
                };
                noop_event(seq).dedupe_key(format!("bench-{key}"))
            })
            .collect();
        let t = Instant::now();
        let outcomes = publisher.publish_all(&mut conn, &events).await?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        duplicates += outcomes.iter().filter(|o| o.is_duplicate()).count();
        i += events.len();
    }
    let wall = t0.elapsed();
    drop(conn);
    pool.close().await;
    let rate = n as f64 / wall.as_secs_f64();
    progress(format!(
        "  {} events/s ({duplicates} duplicates)",
        thousands(rate)
    ));
    Ok(json!({
        "id": "publish_dedupe",
        "name": "publish_all with dedupe keys, 1,000 events/call, 1 in 10 a duplicate",
        "unit": "events/s",
        "rate": rate.round(),
        "n": n,
        "duplicates": duplicates,
        "secs": round3(wall.as_secs_f64()),
        "latency": latency_summary(lat),
        "latency_meaning": "one publish_all call of 1,000 events",
    }))
}
