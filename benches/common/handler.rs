//! The benches' no-op handler and the counter it reports to.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgbus::{Delivery, HandlerError, RawHandler};
use serde_json::Value;

use super::now_ns;

/// One handled event of a [`Counter::recording_age`] counter: the payload's `seq` and `t`
/// (wall clock in ns when it was sent) and the handler's start minus `t`.
#[derive(Debug, Clone, Copy)]
pub struct Age {
    pub seq: i64,
    pub sent_ns: i64,
    pub age_ms: f32,
}

/// Counts handler runs (and optionally records `(seq, start_ns)` from the payload's `seq`, or
/// the latency against the payload's `t` in ns, as [`Age`]s); wakes `wait` at the target count.
#[derive(Debug, Default)]
pub struct Counter {
    pub done: AtomicUsize,
    target: AtomicUsize,
    reached: tokio::sync::Notify,
    pub record_seq: bool,
    pub starts: Mutex<Vec<(i64, i128)>>,
    pub record_age: bool,
    pub ages: Mutex<Vec<Age>>,
}

impl Counter {
    pub fn new(target: usize) -> Arc<Self> {
        Arc::new(Counter {
            target: AtomicUsize::new(target),
            ..Counter::default()
        })
    }

    pub fn recording_seq(target: usize) -> Arc<Self> {
        Arc::new(Counter {
            target: AtomicUsize::new(target),
            record_seq: true,
            starts: Mutex::new(Vec::with_capacity(target)),
            ..Counter::default()
        })
    }

    pub fn recording_age(target: usize) -> Arc<Self> {
        Arc::new(Counter {
            target: AtomicUsize::new(target),
            record_age: true,
            ages: Mutex::new(Vec::with_capacity(target)),
            ..Counter::default()
        })
    }

    /// Waits until the handler ran `target` times, or `timeout` passed (then returns false).
    pub async fn wait(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.reached.notified();
            if self.done.load(Ordering::SeqCst) >= self.target.load(Ordering::SeqCst) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.done.load(Ordering::SeqCst) >= self.target.load(Ordering::SeqCst);
            }
        }
    }

    pub fn count(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    /// Counts one handler run.
    pub fn hit(&self) {
        let done = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        if done >= self.target.load(Ordering::SeqCst) {
            self.reached.notify_waiters();
        }
    }
}

/// A no-op handler over a shared [`Counter`].
#[derive(Debug, Clone)]
pub struct Noop(pub Arc<Counter>);

#[async_trait::async_trait]
impl RawHandler for Noop {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let c = &self.0;
        if c.record_seq {
            let t = now_ns();
            let seq = delivery
                .event
                .data
                .get("seq")
                .and_then(Value::as_i64)
                .unwrap_or(-1);
            c.starts.lock().unwrap().push((seq, t));
        }
        if c.record_age {
            let t = now_ns();
            let data = &delivery.event.data;
            if let Some(sent_ns) = data.get("t").and_then(Value::as_i64) {
                let seq = data.get("seq").and_then(Value::as_i64).unwrap_or(-1);
                c.ages.lock().unwrap().push(Age {
                    seq,
                    sent_ns,
                    age_ms: ((t - sent_ns as i128) as f64 / 1e6) as f32,
                });
            }
        }
        let done = c.done.fetch_add(1, Ordering::SeqCst) + 1;
        if done >= c.target.load(Ordering::SeqCst) {
            c.reached.notify_waiters();
        }
        Ok(())
    }
}
