//! Handlers that record every call: what they saw, when, and how many ran at once.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use pgbus::{Delivery, HandlerError, RawHandler};
use tokio::time::Instant;
use uuid::Uuid;

/// A handler call as the handler saw it.
#[derive(Debug, Clone)]
#[allow(dead_code)] // Read in failure messages (`{calls:?}`) when no test names a field.
pub struct Call {
    pub delivery_id: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub subscription: String,
    pub attempt: u32,
    pub source: String,
    pub subject: Option<String>,
    pub key: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub data: serde_json::Value,
    pub at: Instant,
}

impl Call {
    fn of(delivery: &Delivery) -> Call {
        Call {
            delivery_id: delivery.id,
            event_id: delivery.event.id,
            event_type: delivery.event.event_type.clone(),
            subscription: delivery.subscription.to_string(),
            attempt: delivery.attempt,
            source: delivery.event.source.clone(),
            subject: delivery.event.subject.clone(),
            key: delivery.event.key.clone(),
            headers: delivery.event.headers.clone(),
            data: delivery.event.data.clone(),
            at: Instant::now(),
        }
    }
}

/// Records every handler call; its handlers answer with a per-call closure.
#[derive(Debug, Clone, Default)]
pub struct Journal {
    calls: Arc<Mutex<Vec<Call>>>,
    running: Arc<AtomicUsize>,
    most_running: Arc<AtomicUsize>,
}

impl Journal {
    pub fn new() -> Journal {
        Journal::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Call>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().clone()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// The attempt number of each call, in call order.
    pub fn attempts(&self) -> Vec<u32> {
        self.lock().iter().map(|c| c.attempt).collect()
    }

    /// The event id of each call, sorted.
    pub fn sorted_event_ids(&self) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self.lock().iter().map(|c| c.event_id).collect();
        ids.sort();
        ids
    }

    /// Each call's payload field `name` and attempt number, sorted.
    pub fn sorted_names_and_attempts(&self) -> Vec<(String, u32)> {
        let mut seen: Vec<(String, u32)> = (self.lock().iter())
            .map(|c| {
                let name = c.data["name"].as_str().unwrap_or_default();
                (name.to_owned(), c.attempt)
            })
            .collect();
        seen.sort();
        seen
    }

    /// Most handler calls of this journal running at the same time.
    pub fn most_running(&self) -> usize {
        self.most_running.load(Ordering::SeqCst)
    }

    /// A handler that records the call and succeeds.
    pub fn handler(&self) -> impl RawHandler {
        self.handler_with(|_| async { Ok::<(), HandlerError>(()) })
    }

    /// A handler that records the call, then runs `f` (given the delivery).
    pub fn handler_with<F, Fut>(&self, f: F) -> impl RawHandler
    where
        F: Fn(Delivery) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        Recording {
            journal: self.clone(),
            f,
        }
    }
}

struct Recording<F> {
    journal: Journal,
    f: F,
}

/// Decrements the running count even when the handler panics or is aborted.
struct RunningGuard<'a>(&'a AtomicUsize);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl<F, Fut> RawHandler for Recording<F>
where
    F: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let now = self.journal.running.fetch_add(1, Ordering::SeqCst) + 1;
        let _guard = RunningGuard(&self.journal.running);
        self.journal.most_running.fetch_max(now, Ordering::SeqCst);
        self.journal.lock().push(Call::of(delivery));
        (self.f)(delivery.clone()).await
    }
}
