//! `drain_ordered`: the same keyed backlog (`PGBUS_ORDERED_N` events over
//! `PGBUS_ORDERED_KEYS` distinct keys, interleaved) drained by an unordered and by an ordered
//! subscription, alternately, `PGBUS_ORDERED_ROUNDS` rounds; reports both rates and their
//! ratio. Each round also drains, ordered, a backlog whose keys come in a random order (a
//! fixed-seed sequence), where a claim's batch meets keys that earlier batches still hold. `hot_key`: `PGBUS_HOT_N` events of one key, an ordered subscription whose handler
//! sleeps `PGBUS_HOT_SLEEP_MS`: the rate next to the handler's own pace and the poll
//! interval's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pgbus::{Delivery, Dispatcher, HandlerError, NewEvent, RawHandler, Subscription};
use serde_json::{Value, json};
use sqlx::Connection;

use crate::common::*;
use crate::{DB, SUB, progress};

/// A no-op handler that first sleeps.
struct Sleepy(Arc<Counter>, Duration);

#[pgbus::async_trait]
impl RawHandler for Sleepy {
    async fn handle(&self, d: &Delivery) -> Result<(), HandlerError> {
        tokio::time::sleep(self.1).await;
        Noop(self.0.clone()).handle(d).await
    }
}

/// Registers the bench subscription, ordered or not.
async fn register_one(pool: &sqlx::PgPool, ordered: bool) -> Res<()> {
    let sub = Subscription::raw(SUB, [EVENT_TYPE], Noop(Counter::new(usize::MAX)));
    let sub = if ordered { sub.ordered() } else { sub };
    let d = Dispatcher::builder(pool.clone())
        .listen(false)
        .subscribe(sub);
    d.build()?.start().await?.shutdown().await?;
    Ok(())
}

/// How the keys of a backlog follow each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyOrder {
    /// Event `i` keyed `i % keys`.
    RoundRobin,
    /// Each event's key drawn from a fixed-seed pseudo-random sequence.
    Random,
}

/// Publishes `n` events over `keys` keys in `order`, [`BATCH`] per call.
async fn enqueue_keyed(pool: &sqlx::PgPool, n: usize, keys: usize, order: KeyOrder) -> Res<()> {
    let publisher = publisher()?;
    let mut conn = pool.acquire().await?;
    // xorshift64: the same sequence every run.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut key_of = |s: usize| match order {
        KeyOrder::RoundRobin => s % keys,
        KeyOrder::Random => {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % keys as u64) as usize
        }
    };
    let mut i = 0;
    while i < n {
        let events: Vec<NewEvent> = (i..(i + BATCH).min(n))
            .map(|s| noop_event(s).key(format!("key-{}", key_of(s))))
            .collect();
        publisher.publish_all(&mut conn, &events).await?;
        i += events.len();
    }
    Ok(())
}

/// One drain of a fresh backlog; returns deliveries/s.
async fn drain(
    server: &Server,
    tuning: &Tuning,
    n: usize,
    keys: usize,
    order: KeyOrder,
    ordered: bool,
    sleep: Option<Duration>,
) -> Res<f64> {
    server.fresh_db(DB).await?;
    {
        let pool = server.pool(DB, 2).await?;
        register_one(&pool, ordered).await?;
        enqueue_keyed(&pool, n, keys, order).await?;
        pool.close().await;
    }
    server.settle(DB).await?;
    let mut checker = server.connect(DB).await?;
    let pool = server.pool(DB, 10).await?;
    let counter = Counter::new(n);
    let sub = match sleep {
        Some(s) => tuning.subscription(SUB, Sleepy(counter.clone(), s)),
        None => tuning.subscription(SUB, Noop(counter.clone())),
    };
    let sub = if ordered { sub.ordered() } else { sub };
    let dispatcher = tuning.dispatcher(&pool, vec![sub])?;
    let t0 = Instant::now();
    let handle = dispatcher.start().await?;
    let timeout = Duration::from_secs(600);
    if !counter.wait(timeout).await {
        return Err(format!("only {} of {n} handled in {timeout:?}", counter.count()).into());
    }
    wait_no_pending(&mut checker, timeout).await?;
    let secs = t0.elapsed().as_secs_f64();
    handle.shutdown().await?;
    pool.close().await;
    checker.close().await?;
    Ok(n as f64 / secs)
}

pub async fn drain_ordered(server: &Server, tuning: &Tuning) -> Res<Value> {
    let n = env_usize("PGBUS_ORDERED_N", if quick() { 20_000 } else { 100_000 });
    let keys = env_usize("PGBUS_ORDERED_KEYS", 10_000);
    let rounds = env_usize("PGBUS_ORDERED_ROUNDS", 2);
    progress(format!(
        "drain_ordered: {n} events over {keys} keys, unordered then ordered, {rounds} round(s)"
    ));
    let (mut plain, mut ordered, mut random) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let rr = KeyOrder::RoundRobin;
        let p = drain(server, tuning, n, keys, rr, false, None).await?;
        let o = drain(server, tuning, n, keys, rr, true, None).await?;
        let r = drain(server, tuning, n, keys, KeyOrder::Random, true, None).await?;
        progress(format!(
            "  round {}: unordered {} deliveries/s, ordered {} deliveries/s ({:.2}x), \
             ordered with keys in random order {} ({:.2}x)",
            round + 1,
            thousands(p),
            thousands(o),
            o / p,
            thousands(r),
            r / p
        ));
        plain.push(p.round());
        ordered.push(o.round());
        random.push(r.round());
    }
    let ratio = median(&ordered) / median(&plain);
    let random_ratio = median(&random) / median(&plain);
    Ok(json!({
        "id": "drain_ordered",
        "name": format!("ordered drain: {} over {} keys (vs unordered)", thousands(n as f64), thousands(keys as f64)),
        "unit": "deliveries/s",
        "rate": median(&ordered),
        "runs": ordered,
        "unordered_runs": plain,
        "unordered_rate": median(&plain),
        "ratio_ordered_to_unordered": (ratio * 1000.0).round() / 1000.0,
        "random_order_runs": random,
        "random_order_ratio": (random_ratio * 1000.0).round() / 1000.0,
        "method": "each run on a fresh database: the same keyed backlog published, then drained \
                   by one in-process dispatcher (as `drain`); unordered and ordered alternate",
    }))
}

pub async fn hot_key(server: &Server, tuning: &Tuning) -> Res<Value> {
    let n = env_usize("PGBUS_HOT_N", if quick() { 1_000 } else { 3_000 });
    let sleep = Duration::from_millis(env_usize("PGBUS_HOT_SLEEP_MS", 1) as u64);
    progress(format!(
        "hot_key: {n} events of one key, ordered, handler sleeps {sleep:?}"
    ));
    let rate = drain(
        server,
        tuning,
        n,
        1,
        KeyOrder::RoundRobin,
        true,
        Some(sleep),
    )
    .await?;
    let nominal = 1.0 / sleep.as_secs_f64().max(1e-6);
    // The handler's own pace here: the same sleep, one call after the other, no database.
    let t = Instant::now();
    let calls = 500;
    for _ in 0..calls {
        tokio::time::sleep(sleep).await;
    }
    let pace = calls as f64 / t.elapsed().as_secs_f64();
    progress(format!(
        "  {} deliveries/s; the handler alone, one call after another: {} a second (nominal {})",
        thousands(rate),
        thousands(pace),
        thousands(nominal)
    ));
    Ok(json!({
        "id": "hot_key",
        "name": format!("hot key: {} events of one key, handler sleeps {:?}", thousands(n as f64), sleep),
        "unit": "deliveries/s",
        "rate": rate.round(),
        "runs": [rate.round()],
        "handler_pace_per_s": pace.round(),
        "handler_nominal_per_s": nominal.round(),
        "fraction_of_handler_pace": (rate / pace * 1000.0).round() / 1000.0,
        "method": "one key: each delivery runs only after the previous one's outcome is written; \
                   the dispatcher's default poll interval is 1 s",
    }))
}
