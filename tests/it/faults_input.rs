//! Bad input, as property tests: event type names, subjects, keys, headers and payloads
//! (huge, deeply nested, NUL characters, arbitrary unicode, numbers of every kind), and raw
//! bytes that are not UTF-8. Each event is either stored and delivered equal (compared after
//! a round trip through a raw handler) or refused with a typed error, exactly when the
//! documented rules say; nothing panics; a refused publish writes nothing (row counts).
//!
//! Raw input reaches pgbus as a `String` or a `serde_json::Value`, so bytes that are not
//! UTF-8 cannot be handed to it: the property checks that such bytes fail
//! `serde_json::from_slice` before reaching pgbus, and that whatever does parse is stored
//! and delivered equal.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pgbus::{
    Delivery, DispatcherHandle, EventEnvelope, HandlerError, MAX_TEXT_LEN, MAX_TYPE_LEN, NewEvent,
    Publisher, RawHandler, Subscription,
};
use pgbus_testing::TestDatabase;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value};
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::support::database::{db, table_counts};
use crate::support::dispatcher::{dispatcher, start};
use crate::support::env::size;

/// Largest payload the property tests' publisher accepts (small, so that "huge" is cheap).
const LIMIT: usize = 16 * 1024;
/// Deepest nesting of arrays and objects pgbus accepts.
const MAX_DEPTH: usize = 64;

/// Keeps every delivered envelope, by event id.
#[derive(Clone, Default)]
struct Inbox {
    got: Arc<Mutex<HashMap<Uuid, EventEnvelope>>>,
    arrived: Arc<Notify>,
}

#[async_trait]
impl RawHandler for Inbox {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        self.got
            .lock()
            .unwrap()
            .insert(delivery.event.id, delivery.event.clone());
        self.arrived.notify_waiters();
        Ok(())
    }
}

impl Inbox {
    async fn wait(&self, id: Uuid) -> Option<EventEnvelope> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let arrived = self.arrived.notified();
            if let Some(e) = self.got.lock().unwrap().remove(&id) {
                return Some(e);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.got.lock().unwrap().remove(&id);
            }
        }
    }
}

struct Harness {
    db: TestDatabase,
    publisher: Publisher,
    inbox: Inbox,
    dispatcher: Option<DispatcherHandle>,
}

impl Harness {
    async fn new() -> Harness {
        let db = db().await;
        let inbox = Inbox::default();
        let dispatcher = start(
            dispatcher(db.pool())
                .retain_done(true)
                .subscribe(Subscription::raw("inbox", ["*"], inbox.clone())),
        )
        .await;
        let publisher = Publisher::builder()
            .source("faults.input")
            .max_payload_bytes(LIMIT)
            .build()
            .expect("publisher");
        Harness {
            db,
            publisher,
            inbox,
            dispatcher: Some(dispatcher),
        }
    }

    fn pool(&self) -> &PgPool {
        self.db.pool()
    }

    async fn stop(mut self) {
        if let Some(d) = self.dispatcher.take() {
            d.shutdown().await.expect("shutdown");
        }
    }
}

/// An event as generated: every field possibly invalid.
#[derive(Debug, Clone)]
struct Candidate {
    event_type: String,
    subject: Option<String>,
    key: Option<String>,
    dedupe_key: Option<String>,
    headers: BTreeMap<String, String>,
    data: Value,
}

impl Candidate {
    fn to_event(&self) -> NewEvent {
        let mut e = NewEvent::raw(self.event_type.clone(), self.data.clone());
        if let Some(s) = &self.subject {
            e = e.subject(s.clone());
        }
        if let Some(k) = &self.key {
            e = e.key(k.clone());
        }
        if let Some(k) = &self.dedupe_key {
            e = e.dedupe_key(k.clone());
        }
        for (name, value) in &self.headers {
            e = e.header(name.clone(), value.clone());
        }
        e
    }

    /// Why the documented rules refuse it, if they do: which error variant to expect.
    fn refusal(&self) -> Option<&'static str> {
        if !valid_type(&self.event_type) {
            return Some("InvalidEventType");
        }
        let text_ok = |s: &str| !s.is_empty() && s.len() <= MAX_TEXT_LEN && !s.contains('\0');
        for field in [&self.subject, &self.key, &self.dedupe_key]
            .into_iter()
            .flatten()
        {
            if !text_ok(field) {
                return Some("InvalidField");
            }
        }
        for (name, value) in &self.headers {
            if !text_ok(name) || value.len() > MAX_TEXT_LEN || value.contains('\0') {
                return Some("InvalidField");
            }
        }
        if has_nul(&self.data) || depth(&self.data) > MAX_DEPTH {
            return Some("InvalidPayload");
        }
        if serde_json::to_vec(&self.data).unwrap().len() > LIMIT {
            return Some("PayloadTooLarge");
        }
        None
    }
}

fn valid_type(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TYPE_LEN
        && name.split('.').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// Nesting depth counting arrays and objects only (a scalar is depth 0).
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// JSON equality, numbers compared by value: jsonb stores numbers as PostgreSQL `numeric`,
/// so a float written in exponent form comes back in plain digits (`1e16` as
/// `10000000000000000`, which serde_json reads as an integer). The value is the same; a
/// value that changed (even by one unit in the last place) is not.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x.is_f64() || y.is_f64() {
                x.as_f64() == y.as_f64()
            } else {
                x == y
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, va), (kb, vb))| ka == kb && same_json(va, vb))
        }
        _ => a == b,
    }
}

fn variant(e: &pgbus::Error) -> &'static str {
    match e {
        pgbus::Error::InvalidEventType { .. } => "InvalidEventType",
        pgbus::Error::InvalidField { .. } => "InvalidField",
        pgbus::Error::InvalidPayload(_) => "InvalidPayload",
        pgbus::Error::PayloadTooLarge { .. } => "PayloadTooLarge",
        pgbus::Error::Database(_) => "Database",
        _ => "other",
    }
}

// ---- strategies ----

/// Text of any kind: arbitrary unicode, sometimes with a NUL, sometimes long, sometimes empty.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9 _.:-]{1,12}",
        4 => any::<String>(),
        1 => Just(String::new()),
        1 => (any::<String>(), any::<String>()).prop_map(|(a, b)| format!("{a}\0{b}")),
        1 => (1015usize..1035).prop_map(|n| "é".repeat(n / 2) + &"x".repeat(n % 2)),
        1 => "\\PC{0,40}",
    ]
}

fn event_type() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[A-Za-z0-9_-]{1,8}(\\.[A-Za-z0-9_-]{1,8}){0,3}",
        2 => "[A-Za-z0-9_.*% é-]{0,12}",
        2 => any::<String>(),
        1 => (195usize..205).prop_map(|n| {
            // Valid segments, about the length limit.
            let mut s = "a".repeat(n);
            for i in (9..n).step_by(10) {
                s.replace_range(i..=i, ".");
            }
            s
        }),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof![
            Just(0.0f64),
            Just(-0.0),
            Just(1e300),
            Just(5e-324),
            Just(0.1),
            Just(1e16)
        ]
        .prop_map(Value::from),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Deeply nested payloads around the depth limit.
fn deep() -> impl Strategy<Value = Value> {
    (MAX_DEPTH - 3..MAX_DEPTH + 4, any::<bool>()).prop_map(|(levels, objects)| {
        let mut v = Value::from("bottom");
        for _ in 0..levels {
            v = if objects {
                let mut m = Map::new();
                m.insert("k".to_owned(), v);
                Value::Object(m)
            } else {
                Value::Array(vec![v])
            };
        }
        v
    })
}

/// Payloads around the size limit.
fn huge() -> impl Strategy<Value = Value> {
    (LIMIT - 8..LIMIT + 8).prop_map(|n| {
        // {"blob":"xxx…"} is n bytes long.
        Value::Object(
            [("blob".to_owned(), Value::from("x".repeat(n - 11)))]
                .into_iter()
                .collect(),
        )
    })
}

fn payload() -> impl Strategy<Value = Value> {
    prop_oneof![6 => json(), 1 => deep(), 1 => huge()]
}

fn candidate() -> impl Strategy<Value = Candidate> {
    (
        event_type(),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::weighted(0.2, text()),
        proptest::collection::btree_map(text(), text(), 0..4),
        payload(),
    )
        .prop_map(
            |(event_type, subject, key, dedupe_key, headers, data)| Candidate {
                event_type,
                subject,
                key,
                // Unique, so no candidate is a duplicate of an earlier one.
                dedupe_key: dedupe_key.map(|k| format!("{}{k}", Uuid::now_v7().simple())),
                headers,
                data,
            },
        )
}

/// Publishes one candidate and checks: refused exactly when the rules say, with the right
/// typed error and nothing written; else stored and delivered equal.
async fn check_one(h: &Harness, c: &Candidate) -> Result<(), TestCaseError> {
    let before = table_counts(h.pool()).await;
    let event = c.to_event();
    let id = event.id();
    let result = h
        .publisher
        .publish(&mut h.pool().acquire().await.expect("conn"), event)
        .await;
    let expected = c.refusal();
    match result {
        Err(e) => {
            prop_assert_eq!(Some(variant(&e)), expected, "refused with {} ({:?})", e, e);
            prop_assert_eq!(
                table_counts(h.pool()).await,
                before,
                "a refused publish wrote rows"
            );
        }
        Ok(outcome) => {
            prop_assert_eq!(expected, None, "accepted although invalid");
            prop_assert!(!outcome.is_duplicate());
            prop_assert_eq!(outcome.id(), id);
            prop_assert_eq!(
                table_counts(h.pool()).await,
                (before.0 + 1, before.1 + 1, before.2)
            );
            let got = h.inbox.wait(id).await;
            prop_assert!(got.is_some(), "not delivered within 20 s");
            let got = got.unwrap();
            prop_assert_eq!(&got.event_type, &c.event_type);
            prop_assert_eq!(&got.subject, &c.subject);
            prop_assert_eq!(&got.key, &c.key);
            prop_assert_eq!(&got.headers, &c.headers);
            prop_assert_eq!(&got.source, "faults.input");
            prop_assert!(
                same_json(&got.data, &c.data),
                "payload changed in the round trip:\n sent {}\n  got {}",
                c.data,
                got.data
            );
        }
    }
    Ok(())
}

/// Counts of what the cases of a property test turned out to be, printed at the end.
type Tally = Mutex<HashMap<&'static str, usize>>;

fn count_in(tally: &Tally, outcome: &'static str) {
    *tally.lock().unwrap().entry(outcome).or_default() += 1;
}

/// Runs `cases` cases of `strategy` through `test` (given the runtime, one harness for all
/// cases, the case and the tally), prints the tally under `label`, and fails with
/// proptest's report if a case failed.
fn run_property<S: Strategy>(
    label: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(&tokio::runtime::Runtime, &Harness, S::Value, &Tally) -> Result<(), TestCaseError>,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let h = runtime.block_on(Harness::new());
    let tally = Tally::default();
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |value| test(&runtime, &h, value, &tally));
    runtime.block_on(h.stop());
    println!(
        "faults/bad-input ({label}): {cases} cases: {:?}",
        tally.lock().unwrap()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn any_event_is_stored_and_delivered_equal_or_refused_with_a_typed_error() {
    run_property(
        "events",
        size(256, 4096),
        candidate(),
        |runtime, h, c, tally| {
            count_in(tally, c.refusal().unwrap_or("stored and delivered"));
            runtime.block_on(check_one(h, &c))
        },
    );
}

#[test]
fn bytes_that_are_not_utf8_never_reach_pgbus_and_json_that_parses_round_trips() {
    // Arbitrary bytes, valid JSON texts with a byte flipped, and valid JSON texts.
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        (json(), any::<prop::sample::Index>(), 0x80u8..=0xff).prop_map(|(v, at, b)| {
            let mut text = serde_json::to_vec(&v).unwrap();
            let i = at.index(text.len());
            text[i] = b;
            text
        }),
        json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
    ];
    run_property(
        "raw bytes",
        size(256, 4096),
        bytes,
        |runtime, h, raw, tally| {
            let utf8 = std::str::from_utf8(&raw).is_ok();
            let parsed = serde_json::from_slice::<Value>(&raw);
            let outcome = match (&parsed, utf8) {
                (Ok(_), false) => {
                    return Err(TestCaseError::fail(
                        "serde_json accepted bytes that are not UTF-8",
                    ));
                }
                (Err(_), false) => "not UTF-8: refused before pgbus",
                (Err(_), true) => "not JSON: refused before pgbus",
                (Ok(_), true) => "parsed: published",
            };
            count_in(tally, outcome);
            match parsed {
                Ok(data) => runtime.block_on(check_one(
                    h,
                    &Candidate {
                        event_type: "input.raw".to_owned(),
                        subject: None,
                        key: None,
                        dedupe_key: None,
                        headers: BTreeMap::new(),
                        data,
                    },
                )),
                Err(_) => Ok(()),
            }
        },
    );
}

#[test]
fn a_batch_with_one_bad_event_writes_nothing() {
    run_property(
        "batches",
        size(64, 512),
        proptest::collection::vec(candidate(), 1..6),
        |runtime, h, batch, tally| {
            let first_refusal = batch.iter().find_map(Candidate::refusal);
            count_in(tally, first_refusal.unwrap_or("stored and delivered"));
            runtime.block_on(async {
                let before = table_counts(h.pool()).await;
                let events: Vec<NewEvent> = batch.iter().map(Candidate::to_event).collect();
                let result = h
                    .publisher
                    .publish_all(&mut h.pool().acquire().await.expect("conn"), &events)
                    .await;
                match result {
                    Err(e) => {
                        prop_assert_eq!(Some(variant(&e)), first_refusal, "{}", e);
                        prop_assert_eq!(table_counts(h.pool()).await, before, "half-written batch");
                    }
                    Ok(outcomes) => {
                        prop_assert_eq!(first_refusal, None);
                        prop_assert_eq!(outcomes.len(), batch.len());
                        let n = batch.len() as i64;
                        prop_assert_eq!(
                            table_counts(h.pool()).await,
                            (before.0 + n, before.1 + n, before.2)
                        );
                        for (c, e) in batch.iter().zip(&events) {
                            let got = h.inbox.wait(e.id()).await;
                            prop_assert!(got.is_some(), "not delivered");
                            prop_assert!(same_json(&got.unwrap().data, &c.data));
                        }
                    }
                }
                Ok(())
            })
        },
    );
}

/// Floats keep their exact value through jsonb. jsonb prints a number like `9.733040937306484e219`
/// as its 220 plain digits; serde_json's default (fast) float parsing reads such long digit
/// strings up to one unit in the last place off, so pgbus enables serde_json's
/// `float_roundtrip` feature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floats_come_back_with_the_same_value() {
    let h = Harness::new().await;
    let floats = [
        9.733040937306484e219,
        1e300,
        -1.7976931348623157e308,
        2.2250738585072014e-308,
        5e-324,
        0.1,
        1e16,
        -0.0,
        123456789.12345679,
        6.02214076e23,
        1.0000000000000002,
        4.940656458412465e-300,
    ];
    let event = NewEvent::raw("input.floats", serde_json::json!({ "floats": floats }));
    let id = event.id();
    h.publisher
        .publish(&mut h.pool().acquire().await.expect("conn"), event)
        .await
        .expect("publish");
    let got = h.inbox.wait(id).await.expect("delivered");
    let back: Vec<f64> = got.data["floats"]
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_f64().expect("a number"))
        .collect();
    let changed: Vec<(f64, f64)> = floats
        .iter()
        .zip(&back)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| (*a, *b))
        .collect();
    h.stop().await;
    assert!(
        changed.is_empty(),
        "floats changed in the round trip (sent, got): {changed:?}"
    );
}
