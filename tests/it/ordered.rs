//! Ordered subscriptions (`Subscription::ordered`), in process: one key's deliveries run one
//! at a time in publish order across dispatchers, from Rust and SQL publishers alike; the
//! helpers the other ordered tests share. Retrying and dead keys are `ordered_blocked.rs`,
//! the same model under `kill -9` is `faults_ordered.rs`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgbus::{HandlerError, NewEvent, Publisher, Subscription};
use serde_json::json;
use sqlx::PgPool;
use tokio::time::Instant;

use crate::support::database::{count, db};
use crate::support::dispatcher::{dispatcher, quick_retry, start, stop};
use crate::support::journal::Journal;
use crate::support::publishing::publish_events;
use crate::support::wait::{SOON, wait_until};

/// One handler call of a keyed event: its key, its position in the key, when it ran.
#[derive(Debug, Clone)]
pub struct Span {
    pub key: String,
    pub seq: i64,
    pub start: Instant,
    pub end: Instant,
}

/// Spans recorded by every handler of one test.
#[derive(Debug, Clone, Default)]
pub struct Spans(Arc<Mutex<Vec<Span>>>);

impl Spans {
    fn push(&self, span: Span) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(span);
    }

    pub fn all(&self) -> Vec<Span> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// An event of key `key` at position `seq`.
pub fn keyed(key: &str, seq: i64) -> NewEvent {
    NewEvent::raw("fifo.step", json!({ "k": key, "seq": seq })).key(key)
}

/// Checks that every key's calls, by start time, never overlap and follow `0..per_key`
/// (`allow_repeat`: a call repeated right after itself counts as the same position).
pub fn check_order(spans: &[(String, i64, u128, Option<u128>)], per_key: i64, allow_repeat: bool) {
    // Per key: (position, start, end).
    type Timed = (i64, u128, Option<u128>);
    let mut by_key: BTreeMap<&str, Vec<Timed>> = BTreeMap::new();
    for (k, seq, start, end) in spans {
        by_key.entry(k).or_default().push((*seq, *start, *end));
    }
    for (key, mut calls) in by_key {
        calls.sort_by_key(|c| c.1);
        for pair in calls.windows(2) {
            if let Some(end) = pair[0].2 {
                assert!(
                    pair[1].1 >= end,
                    "key {key}: call of seq {} started before seq {} ended: {calls:?}",
                    pair[1].0,
                    pair[0].0
                );
            }
        }
        let mut seqs: Vec<i64> = calls.iter().map(|c| c.0).collect();
        if allow_repeat {
            seqs.dedup();
        }
        let expected: Vec<i64> = (0..per_key).collect();
        assert_eq!(
            seqs, expected,
            "key {key}: handled order differs from publish order"
        );
    }
}

fn as_tuples(spans: &[Span], origin: Instant) -> Vec<(String, i64, u128, Option<u128>)> {
    (spans.iter())
        .map(|s| {
            let at = |t: Instant| t.duration_since(origin).as_micros();
            (s.key.clone(), s.seq, at(s.start), Some(at(s.end)))
        })
        .collect()
}

/// An ordered subscription whose handler records spans and sleeps 0-2 ms.
fn recording(name: &str, spans: &Spans, unkeyed: &Arc<AtomicUsize>) -> Subscription {
    let spans = spans.clone();
    let unkeyed = unkeyed.clone();
    let handler = Journal::new().handler_with(move |d| {
        let spans = spans.clone();
        let unkeyed = unkeyed.clone();
        async move {
            let start = Instant::now();
            let seq = d.event.data["seq"].as_i64().unwrap_or(-1);
            tokio::time::sleep(Duration::from_micros((seq as u64 * 7919) % 2000)).await;
            match d.event.key.clone() {
                Some(key) => spans.push(Span {
                    key,
                    seq,
                    start,
                    end: Instant::now(),
                }),
                None => {
                    unkeyed.fetch_add(1, Ordering::SeqCst);
                }
            }
            Ok::<(), HandlerError>(())
        }
    });
    Subscription::raw(name, ["fifo.*"], handler)
        .ordered()
        .concurrency(16)
        .retry(quick_retry())
}

/// Publishes `per_key` rounds; round `seq` publishes position `seq` of every key, spread
/// over `txs` concurrent transactions (keys interleaved between them), plus one unkeyed
/// event per transaction.
pub async fn publish_rounds(pool: &PgPool, keys: usize, per_key: i64, txs: usize) {
    let publisher = Publisher::new("fifo").expect("publisher");
    for seq in 0..per_key {
        let mut tasks = Vec::new();
        for t in 0..txs {
            let (pool, publisher) = (pool.clone(), publisher.clone());
            tasks.push(tokio::spawn(async move {
                let mut events: Vec<NewEvent> = (0..keys)
                    .filter(|k| k % txs == t)
                    .map(|k| keyed(&format!("key-{k:04}"), seq))
                    .collect();
                events.push(NewEvent::raw("fifo.step", json!({ "seq": seq })));
                let mut tx = pool.begin().await.expect("begin");
                publisher
                    .publish_all(&mut tx, &events)
                    .await
                    .expect("publish");
                tx.commit().await.expect("commit");
            }));
        }
        for t in tasks {
            t.await.expect("publisher task");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_at_a_time_in_publish_order_across_two_dispatchers() {
    let db = db().await;
    let pool = db.pool();
    let (spans, unkeyed) = (Spans::default(), Arc::new(AtomicUsize::new(0)));
    let a = start(dispatcher(pool).subscribe(recording("fifo", &spans, &unkeyed))).await;
    let b = start(dispatcher(pool).subscribe(recording("fifo", &spans, &unkeyed))).await;
    let origin = Instant::now();
    let (keys, per_key, txs) = (200, 10, 4);
    publish_rounds(pool, keys, per_key, txs).await;
    let total = keys * per_key as usize;
    wait_until("every keyed delivery to run", SOON, || async {
        spans.len() >= total
    })
    .await;
    wait_until("the unkeyed ones too", SOON, || async {
        unkeyed.load(Ordering::SeqCst) >= txs * per_key as usize
    })
    .await;
    stop(pool, a).await;
    stop(pool, b).await;
    let all = spans.all();
    assert_eq!(
        all.len(),
        total,
        "a keyed delivery ran twice without a fault"
    );
    check_order(&as_tuples(&all, origin), per_key, false);
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.deliveries").await,
        0,
        "done deliveries are deleted"
    );
}

/// An ordered subscription whose handler asks `fail(key, seq, attempt)` for an error, and
/// records the span of every call that succeeded.
pub fn failing<F>(name: &str, spans: &Spans, fail: F) -> Subscription
where
    F: Fn(&str, i64, u32) -> Option<HandlerError> + Send + Sync + 'static,
{
    let spans = spans.clone();
    let fail = Arc::new(fail);
    let handler = Journal::new().handler_with(move |d| {
        let (spans, fail) = (spans.clone(), fail.clone());
        async move {
            let start = Instant::now();
            let key = d.event.key.clone().unwrap_or_default();
            let seq = d.event.data["seq"].as_i64().unwrap_or(-1);
            if let Some(e) = fail(&key, seq, d.attempt) {
                return Err(e);
            }
            let end = Instant::now();
            spans.push(Span {
                key,
                seq,
                start,
                end,
            });
            Ok(())
        }
    });
    Subscription::raw(name, ["fifo.*"], handler)
        .ordered()
        .concurrency(8)
        .retry(quick_retry().max_attempts(50))
}

/// The positions handled for `key`, in the order they started.
pub fn seqs_of(spans: &Spans, key: &str) -> Vec<i64> {
    let mut calls: Vec<Span> = spans.all().into_iter().filter(|s| s.key == key).collect();
    calls.sort_by_key(|s| s.start);
    calls.iter().map(|s| s.seq).collect()
}

/// `keys` keys of `per_key` events each, interleaved, in one transaction.
pub async fn publish_keys(pool: &PgPool, keys: &[&str], per_key: i64) {
    let events: Vec<NewEvent> = (0..per_key)
        .flat_map(|seq| keys.iter().map(move |k| keyed(k, seq)))
        .collect();
    publish_events(pool, &events).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_from_sql_are_ordered_like_those_from_rust() {
    let db = db().await;
    let pool = db.pool();
    let spans = Spans::default();
    // Registered, then stopped: the events wait in the delivery log.
    let handle = start(dispatcher(pool).subscribe(failing("fifo", &spans, |_, _, _| None))).await;
    stop(pool, handle).await;
    let publisher = Publisher::new("fifo").expect("publisher");
    for seq in 0..6_i64 {
        if seq % 2 == 0 {
            sqlx::query("SELECT pgbus.publish('fifo.step', jsonb_build_object('seq', $1::int8), 'sql', key => 'k')")
                .bind(seq)
                .execute(pool)
                .await
                .expect("SQL publish");
        } else {
            let mut conn = pool.acquire().await.expect("conn");
            publisher
                .publish(&mut conn, keyed("k", seq))
                .await
                .expect("publish");
        }
    }
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM pgbus.delivery_log WHERE seq IS NOT NULL AND key = 'k'"
        )
        .await,
        6,
        "both paths write ordered deliveries to the log with a publish position"
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.deliveries").await,
        0
    );
    let handle = start(dispatcher(pool).subscribe(failing("fifo", &spans, |_, _, _| None))).await;
    wait_until("the key to be handled", SOON, || async { spans.len() == 6 }).await;
    stop(pool, handle).await;
    assert_eq!(seqs_of(&spans, "k"), [0, 1, 2, 3, 4, 5]);
}

/// Within a key, publish order wins over priority: a key's second event, published with a
/// smaller priority (which runs first across keys), still runs after its first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn within_a_key_publish_order_wins_over_priority() {
    let db = db().await;
    let pool = db.pool();
    let spans = Spans::default();
    // Registered, then stopped: the events wait until a dispatcher starts again.
    let handle = start(dispatcher(pool).subscribe(failing("fifo", &spans, |_, _, _| None))).await;
    stop(pool, handle).await;
    let keys: Vec<String> = (0..20).map(|k| format!("p{k:02}")).collect();
    let events: Vec<NewEvent> = (0..2_i64)
        .flat_map(|seq| {
            keys.iter()
                .map(move |k| keyed(k, seq).priority(if seq == 0 { 10 } else { -10 }))
        })
        .collect();
    publish_events(pool, &events).await;
    let handle = start(dispatcher(pool).subscribe(failing("fifo", &spans, |_, _, _| None))).await;
    wait_until("every key to be handled", SOON, || async {
        spans.len() >= keys.len() * 2
    })
    .await;
    stop(pool, handle).await;
    for k in &keys {
        assert_eq!(seqs_of(&spans, k), [0, 1], "key {k}");
    }
}
