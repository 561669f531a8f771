//! Running one delivery: wait for a concurrency slot, run the handler under its timeout,
//! catch panics, and report what happened.

use std::sync::Arc;

use tracing::Instrument;

use super::shared::Shared;
use super::tx::{self, Fence, Ran};
use crate::handler::{Failure, HandlerError};
use crate::state::Cause;
use crate::telemetry;
use crate::tx_handler::Handling;

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
    let signals = &shared.signals;
    let permit = tokio::select! {
        biased;
        _ = signals.stop.cancelled() => None,
        permit = sub.semaphore.clone().acquire_owned() => permit.ok(),
    };
    let next = permit
        .filter(|_| !signals.stop.is_cancelled())
        .and_then(|permit| {
            let delivery = sub
                .queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front()?;
            Some((permit, delivery))
        });
    let Some((permit, (key, delivery))) = next else {
        // Shutting down before it started: the shutdown path gives it back uncounted.
        return;
    };
    shared.mark_started(key);

    let span = tracing::info_span!(
        "pgbus.deliver",
        subscription = %delivery.subscription,
        event_id = %delivery.event.id,
        event_type = %delivery.event.event_type,
        delivery_id = delivery.id,
        attempt = delivery.attempt,
    );
    telemetry::trace_context::adopt(&span, &delivery.event.headers);
    let run = telemetry::metrics::Run::start(&delivery, &sub.metrics);
    let mut task = AbortOnDrop(match sub.sub.handler.clone() {
        Handling::Plain(handler) => tokio::spawn(
            async move { Ran::Handled(handler.call(&delivery).await) }.instrument(span.clone()),
        ),
        Handling::Tx(handler) => {
            let fence = Fence::of(&shared, key, &delivery);
            let pool = shared.pool.clone();
            tokio::spawn(tx::run(pool, handler, delivery, fence).instrument(span.clone()))
        }
    });
    let timeout = sub.sub.handler_timeout;
    let result = tokio::select! {
        r = tokio::time::timeout(timeout, &mut task.0) => r,
        _ = signals.abandon.cancelled() => {
            // Shutdown deadline: the handler is aborted (on drop) and the shutdown path
            // reports the delivery as interrupted.
            return;
        }
    };
    drop(task);
    let ran = run.elapsed();

    let failed = |message: String| Cause::Failed {
        message,
        delay: None,
    };
    // Err(committed): settled in a transactional handler's transaction (committed, or its
    // fence failed), so nothing is left for the completer to write.
    let cause: Result<Cause, bool> = match result {
        Ok(Ok(Ran::Committed)) => Err(true),
        Ok(Ok(Ran::Lost)) => Err(false),
        Ok(Ok(Ran::Handled(Ok(())))) => Ok(Cause::Succeeded),
        Ok(Ok(Ran::Handled(Err(Failure::Decode(message))))) => Ok(Cause::Undeliverable(message)),
        Ok(Ok(Ran::Handled(Err(Failure::Handler(HandlerError::Permanent { message }))))) => {
            Ok(Cause::Permanent(format!("permanent failure: {message}")))
        }
        Ok(Ok(Ran::Handled(Err(Failure::Handler(HandlerError::Retry { message, delay }))))) => {
            Ok(Cause::Failed { message, delay })
        }
        Ok(Err(join)) if join.is_panic() => {
            Ok(failed(format!("handler panicked: {}", panic_message(join))))
        }
        Ok(Err(_)) => Ok(failed("handler task was cancelled".to_owned())),
        Err(_) => Ok(failed(format!("handler timed out after {timeout:?}"))),
    };
    // Already reported only if the shutdown path gave it back first. A lost lease's late
    // outcome is reported under its own claim, and fenced out by the completer.
    span.in_scope(|| match cause {
        Ok(cause) => shared.report_run(key, cause, run, ran),
        Err(committed) => shared.report_tx(key, committed, run, ran),
    });
    drop(permit);
    signals.slot_freed.notify_one();
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
