//! Running one delivery: wait for a concurrency slot, run the handler under its timeout,
//! catch panics, turn the result into an outcome for the completer.

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use super::Shared;
use super::complete::{Completion, Kind, Msg};
use crate::handler::{Failure, HandlerError};
use crate::retry;

/// Aborts the wrapped task when dropped, so an abandoned handler does not run on.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the subscription's next queued delivery to an outcome (or leaves it to the
/// shutdown path). One task is spawned per queued delivery; whichever gets a concurrency
/// slot first takes the front of the queue, so deliveries start in claim order.
pub(crate) async fn run(shared: Arc<Shared>, sub_index: usize) {
    let sub = &shared.subs[sub_index];
    let permit = tokio::select! {
        biased;
        _ = shared.stop.cancelled() => None,
        permit = sub.semaphore.clone().acquire_owned() => permit.ok(),
    };
    let next = permit
        .filter(|_| !shared.stop.is_cancelled())
        .and_then(|permit| {
            let delivery = sub
                .queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front()?;
            Some((permit, delivery))
        });
    let Some((permit, delivery)) = next else {
        // Shutting down before it started: the shutdown path releases it uncounted.
        return;
    };
    shared.mark_started(delivery.id);

    let span = tracing::info_span!(
        "pgbus.deliver",
        subscription = %delivery.subscription,
        event_id = %delivery.event.id,
        event_type = %delivery.event.event_type,
        delivery_id = delivery.id,
        attempt = delivery.attempt,
    );
    let handler = sub.sub.handler.clone();
    let id = delivery.id;
    let attempt = delivery.attempt;
    let mut task = AbortOnDrop(tokio::spawn(
        async move { handler.call(&delivery).await }.instrument(span.clone()),
    ));
    let timeout = sub.sub.handler_timeout;
    let result = tokio::select! {
        r = tokio::time::timeout(timeout, &mut task.0) => r,
        _ = shared.abandon.cancelled() => {
            // Shutdown deadline: the handler is aborted (on drop) and the delivery
            // released by the shutdown path, its attempt counted.
            return;
        }
    };
    drop(task);

    let policy = &sub.sub.retry;
    let retry = |message: String, delay: Option<Duration>| {
        if policy.exhausted(attempt) {
            (
                Kind::Dead,
                0.0,
                Some(format!("gave up after {attempt} attempts: {message}")),
            )
        } else {
            let delay = delay.unwrap_or_else(|| policy.delay(attempt, retry::random_unit()));
            (Kind::Retry, delay.as_secs_f64(), Some(message))
        }
    };
    let (kind, delay_secs, error) = match result {
        Ok(Ok(Ok(()))) => (shared.done_kind(), 0.0, None),
        Ok(Ok(Err(Failure::Decode(message)))) => (Kind::Dead, 0.0, Some(message)),
        Ok(Ok(Err(Failure::Handler(HandlerError::Permanent { message })))) => (
            Kind::Dead,
            0.0,
            Some(format!("permanent failure: {message}")),
        ),
        Ok(Ok(Err(Failure::Handler(HandlerError::Retry { message, delay })))) => {
            retry(message, delay)
        }
        Ok(Err(join)) if join.is_panic() => {
            retry(format!("handler panicked: {}", panic_message(join)), None)
        }
        Ok(Err(_)) => retry("handler task was cancelled".to_owned(), None),
        Err(_) => retry(format!("handler timed out after {timeout:?}"), None),
    };
    span.in_scope(|| match kind {
        Kind::Dead => tracing::warn!(error = error.as_deref(), "pgbus: delivery dead"),
        Kind::Retry => {
            tracing::info!(
                error = error.as_deref(),
                retry_in_secs = delay_secs,
                "pgbus: delivery failed; will retry"
            )
        }
        _ => tracing::debug!("pgbus: delivery done"),
    });
    // Not held any more only if the shutdown path already gave it back.
    if let Some(lease) = shared.mark_reported(id) {
        let _ = shared.outcomes.send(Msg::Complete(Completion {
            id,
            lease,
            kind,
            delay_secs,
            error,
        }));
    }
    drop(permit);
    shared.slot_freed.notify_one();
}

fn panic_message(join: tokio::task::JoinError) -> String {
    let payload = join.into_panic();
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
