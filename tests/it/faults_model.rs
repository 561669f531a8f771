//! A model of the delivery state machine, checked by a property test against a real
//! dispatcher and a real database.
//!
//! Each case is a script: a retry policy, and for a few events, when each is published and
//! what its handler does on each attempt (succeed, fail with a retry, fail with a retry
//! after a given delay, fail permanently, panic, hang past the handler timeout, lose its
//! lease, or be interrupted by a shutdown). A scripted handler plays it; a trigger on
//! `pgbus.deliveries` records every row change; the recorded changes are then replayed
//! against a small model: attempts, state, `last_error`, `solo`, the backoff of each retry
//! (`run_at` never in the past, within the policy's jitter band), and dead exactly when the
//! policy says.
//!
//! The subscription runs one handler at a time, so which attempt a lease expiry or a
//! shutdown hits is decided by the script, not by timing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pgbus::{
    Delivery, DispatcherHandle, HandlerError, NewEvent, Publisher, RawHandler, RetryPolicy,
    Subscription,
};
use pgbus_testing::TestDatabase;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::support::deliveries::{delivery, delivery_count_in};
use crate::support::dispatcher::{dispatcher, shutdown, start};
use crate::support::env::size;
use crate::support::states::{DEAD, DONE, PENDING, RUNNING, State};

/// What the handler does on one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Ok,
    Retry,
    /// Retry after this many milliseconds.
    RetryAfter(u16),
    Permanent,
    Panic,
    /// Never returns: the handler timeout ends it.
    Timeout,
    /// Its lease expires while it runs (as if its process froze); its late `Ok` must be
    /// ignored.
    LeaseExpiry,
    /// The dispatcher is shut down while it runs (and it does not finish in time).
    Shutdown,
}

#[derive(Debug, Clone)]
struct EventScript {
    publish_after_ms: u16,
    steps: Vec<Step>,
}

#[derive(Debug, Clone)]
struct Script {
    max_attempts: u32,
    events: Vec<EventScript>,
}

impl Script {
    fn step(&self, event: usize, attempt: u32) -> Step {
        self.events[event]
            .steps
            .get(attempt as usize - 1)
            .copied()
            .unwrap_or(Step::Ok)
    }
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Ok),
        3 => Just(Step::Retry),
        1 => (10u16..200).prop_map(Step::RetryAfter),
        1 => Just(Step::Permanent),
        2 => Just(Step::Panic),
        1 => Just(Step::Timeout),
        2 => Just(Step::LeaseExpiry),
        1 => Just(Step::Shutdown),
    ]
}

fn script() -> impl Strategy<Value = Script> {
    (1u32..=4).prop_flat_map(|max_attempts| {
        let event = (
            0u16..400,
            proptest::collection::vec(step(), 0..=(max_attempts as usize + 1)),
        )
            .prop_map(|(publish_after_ms, steps)| EventScript {
                publish_after_ms,
                steps,
            });
        proptest::collection::vec(event, 1..=3).prop_map(move |events| Script {
            max_attempts,
            events,
        })
    })
}

const LEASE: Duration = Duration::from_secs(5);
const HANDLER_TIMEOUT: Duration = Duration::from_millis(1000);
const BASE_DELAY: Duration = Duration::from_millis(50);
const MAX_DELAY: Duration = Duration::from_millis(200);
const JITTER: f64 = 0.5;
const EXPIRED: &str = "its worker was lost (killed, crashed, or hung past its lease)";
const INTERRUPTED: &str = "interrupted by dispatcher shutdown";

fn policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(max_attempts)
        .base_delay(BASE_DELAY)
        .max_delay(MAX_DELAY)
        .jitter(JITTER)
}

/// Something the handler asks the test driver to do.
#[derive(Debug)]
enum Signal {
    /// Expire this delivery's lease, then notify.
    ExpireLease {
        id: i64,
        attempt: u32,
        release: Arc<Notify>,
    },
    /// Shut the dispatcher down.
    Shutdown,
}

struct Scripted {
    script: Arc<Script>,
    calls: Arc<Mutex<Vec<(usize, u32)>>>,
    signals: mpsc::UnboundedSender<Signal>,
}

fn message(what: &str, event: usize, attempt: u32) -> String {
    format!("scripted {what} of event {event} attempt {attempt}")
}

#[async_trait]
impl RawHandler for Scripted {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let event = delivery.event.data["event"].as_u64().expect("event index") as usize;
        let attempt = delivery.attempt;
        self.calls.lock().unwrap().push((event, attempt));
        match self.script.step(event, attempt) {
            Step::Ok => Ok(()),
            Step::Retry => Err(HandlerError::retry(message("retry", event, attempt))),
            Step::RetryAfter(ms) => Err(HandlerError::retry_after(
                message("retry", event, attempt),
                Duration::from_millis(ms.into()),
            )),
            Step::Permanent => Err(HandlerError::permanent(message("failure", event, attempt))),
            Step::Panic => panic!("{}", message("panic", event, attempt)),
            Step::Timeout => std::future::pending().await,
            Step::LeaseExpiry => {
                let release = Arc::new(Notify::new());
                let _ = self.signals.send(Signal::ExpireLease {
                    id: delivery.id,
                    attempt,
                    release: release.clone(),
                });
                release.notified().await;
                // Too late: another attempt owns the delivery now.
                Ok(())
            }
            Step::Shutdown => {
                let _ = self.signals.send(Signal::Shutdown);
                std::future::pending().await
            }
        }
    }
}

/// One change of a delivery row, as the audit trigger saw it.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Change {
    delivery: i64,
    op: String,
    old_state: Option<State>,
    new_state: Option<State>,
    old_attempts: Option<i32>,
    new_attempts: Option<i32>,
    new_solo: Option<bool>,
    new_run_at: Option<DateTime<Utc>>,
    new_last_error: Option<String>,
    tx_now: DateTime<Utc>,
    event: i32,
}

const AUDIT_SQL: &str = r#"
CREATE TABLE audit (
    n              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery       bigint NOT NULL,
    op             text NOT NULL,
    old_state      int2, new_state int2,
    old_attempts   int,  new_attempts int,
    new_solo       bool,
    new_run_at     timestamptz,
    new_last_error text,
    tx_now         timestamptz NOT NULL DEFAULT now(),
    at             timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION audit_delivery() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO audit (delivery, op, old_state, old_attempts)
        VALUES (OLD.id, 'D', OLD.state, OLD.attempts);
    ELSE
        INSERT INTO audit (delivery, op, old_state, new_state, old_attempts, new_attempts,
                           new_solo, new_run_at, new_last_error)
        VALUES (NEW.id, left(TG_OP, 1),
                CASE WHEN TG_OP = 'UPDATE' THEN OLD.state END, NEW.state,
                CASE WHEN TG_OP = 'UPDATE' THEN OLD.attempts END, NEW.attempts,
                NEW.solo, NEW.run_at, NEW.last_error);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON pgbus.deliveries
    FOR EACH ROW EXECUTE FUNCTION audit_delivery();
"#;

async fn start_model(pool: &PgPool, handler: Scripted, max_attempts: u32) -> DispatcherHandle {
    start(
        dispatcher(pool)
            .shutdown_timeout(Duration::from_millis(200))
            .retain_done(true)
            // One delivery per claim: a first attempt runs under its batch's lease, and the
            // model expires one delivery's lease at a time.
            .batch_size(1)
            .subscribe(
                Subscription::raw("model", ["model.*"], handler)
                    .concurrency(1)
                    .lease(LEASE)
                    .handler_timeout(HANDLER_TIMEOUT)
                    .retry(policy(max_attempts)),
            ),
    )
    .await
}

/// Plays one script against a real dispatcher; returns the recorded changes, the handler
/// calls, and how many shutdowns and lease expiries happened.
async fn play(script: &Script) -> Result<(Vec<Change>, Vec<(usize, u32)>), TestCaseError> {
    let db = TestDatabase::create()
        .await
        .map_err(|e| TestCaseError::fail(format!("test database: {e}")))?;
    let pool = db.pool().clone();
    sqlx::raw_sql(AUDIT_SQL)
        .execute(&pool)
        .await
        .map_err(|e| TestCaseError::fail(format!("audit trigger: {e}")))?;
    let script_arc = Arc::new(script.clone());
    let calls = Arc::new(Mutex::new(Vec::new()));
    let (signals, mut signal_rx) = mpsc::unbounded_channel();
    let handler = || Scripted {
        script: script_arc.clone(),
        calls: calls.clone(),
        signals: signals.clone(),
    };
    let mut handle = Some(start_model(&pool, handler(), script.max_attempts).await);

    // Publish each event at its time.
    let publisher = {
        let pool = pool.clone();
        let events: Vec<(u16, usize)> = script
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| (e.publish_after_ms, i))
            .collect();
        tokio::spawn(async move {
            let publisher = Publisher::new("faults.model").expect("publisher");
            let began = Instant::now();
            let mut events = events;
            events.sort();
            let mut event_ids = Vec::new();
            for (after, i) in events {
                tokio::time::sleep_until(began + Duration::from_millis(after.into())).await;
                let event = NewEvent::raw("model.event", json!({ "event": i }));
                event_ids.push((event.id(), i));
                publisher
                    .publish(&mut pool.acquire().await.expect("conn"), event)
                    .await
                    .expect("publish");
            }
            event_ids
        })
    };

    let deadline = Instant::now() + Duration::from_secs(60);
    let total = script.events.len() as i64;
    let mut published = false;
    loop {
        if Instant::now() > deadline {
            return Err(TestCaseError::fail(format!(
                "the script did not finish in 60 s; calls {:?}",
                calls.lock().unwrap()
            )));
        }
        tokio::select! {
            signal = signal_rx.recv() => match signal.expect("senders live") {
                Signal::ExpireLease { id, attempt, release } => {
                    // Expire the lease (again, if the dispatcher's lease extension pushed it
                    // forward) until a claim takes the delivery back, for up to 300 ms;
                    // then let the handler return `Ok`. Whether a claim got there first
                    // is for the audit trail to tell: a crash suspect (solo) is never taken
                    // back here, as the only dispatcher is busy running it; an ordinary
                    // delivery is, unless the dispatcher waits to run a suspect alone.
                    // A first attempt claimed from the delivery log runs under its batch's
                    // lease, which expires the same way.
                    // Bounded by time, well within the handler's timeout, however slow the
                    // machine: the handler must return its own outcome if not taken over.
                    let until = Instant::now() + Duration::from_millis(300);
                    while Instant::now() < until {
                        sqlx::query(
                            "UPDATE pgbus.deliveries SET run_at = now() - interval '1 second'
                             WHERE id = $1 AND state = $2 AND attempts = $3",
                        )
                        .bind(id)
                        .bind(RUNNING)
                        .bind(attempt as i32)
                        .execute(&pool)
                        .await
                        .expect("expiring a lease");
                        sqlx::query(
                            "UPDATE pgbus.claims c SET lease_until = now() - interval '1 second'
                             WHERE c.closed_at IS NULL
                               AND EXISTS (SELECT 1 FROM pgbus.claim_rows(c) r WHERE r.id = $1)",
                        )
                        .bind(id)
                        .execute(&pool)
                        .await
                        .expect("expiring a batch's lease");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        let still = delivery(&pool, id).await.is_some_and(|r| {
                            r.state == RUNNING && r.attempts == attempt as i32
                        });
                        if !still {
                            break;
                        }
                    }
                    release.notify_one();
                }
                Signal::Shutdown => {
                    let report = shutdown(handle.take().expect("a running dispatcher")).await;
                    prop_assert!(!report.finished_in_time, "{report:?}");
                    let running = delivery_count_in(&pool, &[RUNNING]).await;
                    prop_assert_eq!(running, 0, "rows left running after a shutdown");
                    handle = Some(start_model(&pool, handler(), script.max_attempts).await);
                }
            },
            _ = tokio::time::sleep(Duration::from_millis(50)) => {
                published = published || publisher.is_finished();
                if published && delivery_count_in(&pool, &[DONE, DEAD]).await == total {
                    break;
                }
            }
        }
    }
    let event_ids = publisher.await.expect("publisher");
    if let Some(h) = handle.take() {
        let report = shutdown(h).await;
        prop_assert_eq!(report.released, 0);
    }
    let index: HashMap<uuid::Uuid, i32> = event_ids
        .into_iter()
        .map(|(id, i)| (id, i as i32))
        .collect();
    let changes: Vec<(i64, uuid::Uuid)> =
        sqlx::query_as("SELECT id, event_id FROM pgbus.deliveries")
            .fetch_all(&pool)
            .await
            .expect("deliveries");
    let event_of: HashMap<i64, i32> = changes
        .into_iter()
        .map(|(id, event)| (id, index[&event]))
        .collect();
    let mut audit: Vec<Change> = sqlx::query_as(
        "SELECT delivery, op, old_state, new_state, old_attempts, new_attempts, new_solo,
                new_run_at, new_last_error, tx_now, 0 AS event
         FROM audit ORDER BY n",
    )
    .fetch_all(&pool)
    .await
    .expect("audit");
    for c in &mut audit {
        c.event = event_of[&c.delivery];
    }
    let calls = calls.lock().unwrap().clone();
    drop(pool);
    let _ = db.drop_database().await;
    Ok((audit, calls))
}

/// The model's view of one delivery.
#[derive(Debug)]
struct Model {
    attempts: u32,
    state: State,
    last_error: Option<String>,
    solo: bool,
    /// Attempts whose handler was started (counted claims).
    counted: u32,
}

impl Default for Model {
    fn default() -> Model {
        Model {
            attempts: 0,
            state: PENDING,
            last_error: None,
            solo: false,
            counted: 0,
        }
    }
}

fn delay_band(attempt: u32) -> (f64, f64) {
    let raw = BASE_DELAY.as_secs_f64() * f64::from(1u32 << (attempt - 1).min(20));
    let capped = raw.min(MAX_DELAY.as_secs_f64());
    (capped * (1.0 - JITTER), capped * (1.0 + JITTER))
}

/// Replays the recorded changes of every delivery against the model.
fn check(script: &Script, audit: &[Change], calls: &[(usize, u32)]) -> Result<(), TestCaseError> {
    let max = script.max_attempts;
    let mut models: HashMap<i64, (usize, Model)> = HashMap::new();
    let eps = 0.002;
    for c in audit {
        let event = c.event as usize;
        let ctx = || {
            format!(
                "event {event}, change {c:?}, script {:?}",
                script.events[event]
            )
        };
        let (_, m) = models
            .entry(c.delivery)
            .or_insert_with(|| (event, Model::default()));
        let (old_state, old_attempts) = match c.op.as_str() {
            // Not started yet: published with a deliver_at, or a row of the delivery log
            // given back unstarted (its attempt not counted).
            "I" if c.new_state == Some(PENDING) && c.new_attempts == Some(0) => continue,
            // A row of the delivery log leaving its batch: its first attempt ran under the
            // batch's lease, and this is its outcome (or its own lease, when taken back or
            // detached).
            "I" => {
                m.state = RUNNING;
                m.attempts = 1;
                (RUNNING, 1)
            }
            "D" => return Err(TestCaseError::fail(format!("row deleted: {}", ctx()))),
            _ => (c.old_state.unwrap(), c.old_attempts.unwrap()),
        };
        let (new_state, new_attempts) = (c.new_state.unwrap(), c.new_attempts.unwrap());
        prop_assert_eq!(old_state, m.state, "model state: {}", ctx());
        prop_assert_eq!(old_attempts as u32, m.attempts, "model attempts: {}", ctx());
        match (old_state, new_state) {
            // Lease extension (or the test expiring a lease).
            (RUNNING, RUNNING) => {
                prop_assert_eq!(new_attempts, old_attempts, "{}", ctx());
                continue;
            }
            // Claim: the attempt is counted, the lease written.
            (PENDING, RUNNING) => {
                prop_assert!(m.state == PENDING, "claimed a finished delivery: {}", ctx());
                prop_assert_eq!(new_attempts, old_attempts + 1, "{}", ctx());
                let lease = (c.new_run_at.unwrap() - c.tx_now).as_seconds_f64();
                prop_assert!(
                    (lease - LEASE.as_secs_f64()).abs() < eps,
                    "lease: {}",
                    ctx()
                );
                prop_assert!(m.attempts < max, "more attempts than the policy: {}", ctx());
                m.attempts += 1;
                m.state = RUNNING;
                continue;
            }
            // Released without having run (shutdown before it started): not counted.
            (RUNNING, PENDING) if new_attempts == old_attempts - 1 => {
                prop_assert_eq!(&c.new_last_error, &m.last_error, "{}", ctx());
                m.attempts -= 1;
                m.state = PENDING;
                continue;
            }
            (RUNNING, _) => {}
            _ => return Err(TestCaseError::fail(format!("unexpected change: {}", ctx()))),
        }
        // The outcome of attempt n.
        let n = m.attempts;
        m.counted += 1;
        prop_assert_eq!(new_attempts as u32, n, "{}", ctx());
        let step = script.step(event, n);
        let failed = |msg: String| {
            if n >= max {
                (
                    DEAD,
                    Some(format!("gave up after {n} attempts: {msg}")),
                    false,
                )
            } else {
                (PENDING, Some(msg), false)
            }
        };
        let (state, last_error, solo) = match step {
            Step::Ok => (DONE, m.last_error.clone(), false),
            Step::Retry | Step::RetryAfter(_) => failed(message("retry", event, n)),
            Step::Panic => failed(format!("handler panicked: {}", message("panic", event, n))),
            Step::Timeout => failed(format!("handler timed out after {HANDLER_TIMEOUT:?}")),
            Step::Permanent => (
                DEAD,
                Some(format!(
                    "permanent failure: {}",
                    message("failure", event, n)
                )),
                false,
            ),
            // Not taken over before the handler returned: its own outcome (Ok) stands.
            Step::LeaseExpiry if c.new_state == Some(DONE) => (DONE, m.last_error.clone(), false),
            Step::LeaseExpiry => (
                if n >= max { DEAD } else { PENDING },
                Some(format!(
                    "lease expired during attempt {n} of {max}: {EXPIRED}"
                )),
                true,
            ),
            Step::Shutdown => {
                if n >= max {
                    (
                        DEAD,
                        Some(format!("gave up after {n} attempts: {INTERRUPTED}")),
                        false,
                    )
                } else {
                    (PENDING, Some(INTERRUPTED.to_owned()), m.solo)
                }
            }
        };
        prop_assert_eq!(new_state, state, "state after {:?}: {}", step, ctx());
        prop_assert_eq!(
            &c.new_last_error,
            &last_error,
            "last_error after {:?}: {}",
            step,
            ctx()
        );
        prop_assert_eq!(c.new_solo, Some(solo), "solo after {:?}: {}", step, ctx());
        let run_at = c.new_run_at.unwrap();
        let wait = (run_at - c.tx_now).as_seconds_f64();
        if state == PENDING {
            match step {
                Step::RetryAfter(ms) => {
                    prop_assert!((wait - f64::from(ms) / 1000.0).abs() < eps, "{}", ctx());
                }
                Step::Retry | Step::Panic | Step::Timeout => {
                    let (lo, hi) = delay_band(n);
                    prop_assert!(
                        wait >= lo - eps && wait <= hi + eps,
                        "backoff {wait} s outside [{lo}, {hi}]: {}",
                        ctx()
                    );
                }
                // Taken back or released: due at once.
                _ => prop_assert!(wait.abs() < eps, "{}", ctx()),
            }
            if matches!(
                step,
                Step::Retry | Step::RetryAfter(_) | Step::Panic | Step::Timeout
            ) {
                // Due after the failure: the statement that wrote it started after the
                // handler returned.
                prop_assert!(
                    run_at > c.tx_now,
                    "a retry's run_at is in the past: {}",
                    ctx()
                );
            }
        }
        m.state = state;
        m.last_error = last_error;
        m.solo = solo;
    }

    // Every event got its delivery; no attempt ran twice.
    prop_assert_eq!(models.len(), script.events.len());
    let mut seen_calls: HashSet<(usize, u32)> = HashSet::new();
    for call in calls {
        prop_assert!(seen_calls.insert(*call), "attempt run twice: {call:?}");
    }
    for (event, m) in models.values() {
        // Each transition was checked against the policy above; here: it ended, and the
        // handler ran exactly once per counted attempt.
        prop_assert!(
            m.state == DONE || m.state == DEAD,
            "event {event} not finished: {m:?}"
        );
        prop_assert!(m.attempts <= max, "attempts of event {}: {:?}", event, m);
        let ran = calls.iter().filter(|(e, _)| e == event).count() as u32;
        prop_assert_eq!(ran, m.counted, "handler runs of event {}", event);
    }
    Ok(())
}

/// Keeps scripted panics quiet: printing a panic (with a backtrace, under
/// `RUST_BACKTRACE=1`, symbolised from a large debug binary) can take longer than the
/// handler timeout, which would turn a scripted panic into a timeout. Other panics go to
/// the hook that was installed before.
fn quiet_scripted_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or_default();
            if !message.starts_with("scripted panic") {
                previous(info);
            }
        }));
    });
}

#[test]
fn delivery_state_machine_matches_the_model() {
    quiet_scripted_panics();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let cases = size(20, 200);
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 32,
        failure_persistence: None,
        ..Config::default()
    });
    let began = std::time::Instant::now();
    let stats = Arc::new(Mutex::new(HashMap::<&'static str, usize>::new()));
    let result = runner.run(&script(), |script| {
        let (audit, calls) = runtime.block_on(play(&script))?;
        {
            let mut stats = stats.lock().unwrap();
            *stats.entry("lease taken back").or_default() += audit
                .iter()
                .filter(|c| {
                    c.old_state == Some(RUNNING)
                        && matches!(c.new_state, Some(PENDING | DEAD))
                        && c.new_attempts == c.old_attempts
                        && c.new_last_error
                            .as_deref()
                            .is_some_and(|e| e.starts_with("lease expired"))
                })
                .count();
            *stats.entry("events").or_default() += script.events.len();
            *stats.entry("handler runs").or_default() += calls.len();
            for (event, attempt) in &calls {
                let name = match script.step(*event, *attempt) {
                    Step::Ok => "ok",
                    Step::Retry | Step::RetryAfter(_) => "retry",
                    Step::Permanent => "permanent",
                    Step::Panic => "panic",
                    Step::Timeout => "timeout",
                    Step::LeaseExpiry => "lease expiry",
                    Step::Shutdown => "shutdown",
                };
                *stats.entry(name).or_default() += 1;
            }
        }
        check(&script, &audit, &calls)
    });
    let stats = stats.lock().unwrap();
    let mut stats: Vec<_> = stats.iter().collect();
    stats.sort();
    println!(
        "faults/state-machine model: {cases} cases in {:.1} s; {stats:?}",
        began.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
