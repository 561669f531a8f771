//! From what happened to a held delivery to the target the completer writes: the state
//! machine (`crate::state`) decides, this file only looks up its inputs and logs.

use std::time::Duration;

use super::shared::{ClaimKey, Held, Shared};
use super::target::{Msg, Settled, Target};
use crate::retry;
use crate::state::{self, Attempt, Cause, DeliveryState};
use crate::telemetry::metrics::Run;

impl Shared {
    /// Decides the next state of a held claim after `cause` and marks it reported. `None`
    /// if it is not held or its outcome was already reported.
    pub(crate) fn decide(&self, key: ClaimKey, cause: Cause) -> Option<Target> {
        self.decide_settled(key, cause, Settled::No)
    }

    /// [`decide`](Self::decide), for an outcome a transactional handler's transaction
    /// settled (`settled` is not [`Settled::No`]): the completer writes no row for it.
    fn decide_settled(&self, key: ClaimKey, cause: Cause, settled: Settled) -> Option<Target> {
        let mut held = self.held();
        let h: &mut Held = held.get_mut(&key)?;
        if h.reported {
            return None;
        }
        h.reported = true;
        if h.suspect {
            // The next suspect may be claimed now (fetch_loop.rs), before this is written.
            self.signals.slot_freed.notify_one();
        }
        let attempt = Attempt {
            number: h.attempt,
            policy: &self.subs[h.sub].sub.retry,
            suspect: h.suspect,
            retain_done: self.config.retain_done,
        };
        let mut transition = state::next(attempt, cause, retry::random_unit());
        if settled != Settled::No {
            // Written (or fenced out) in the handler's transaction: no row to write here.
            transition.delete = true;
        }
        Some(Target {
            id: key.id,
            lease: key.lease,
            sub: h.sub,
            log: h.log.clone(),
            transition,
            settled,
            duration: None,
        })
    }

    /// Decides the next state of a held claim after `cause` and sends it to the completer
    /// (logged in the caller's span).
    pub(crate) fn report(&self, key: ClaimKey, cause: Cause) {
        if let Some(target) = self.decide(key, cause) {
            self.send(key, target);
        }
    }

    /// As [`report`](Self::report), for a delivery whose handler ran for `ran`: the
    /// duration goes with its outcome (the failure history's), and the run is recorded.
    pub(crate) fn report_run(&self, key: ClaimKey, cause: Cause, run: Run<'_>, ran: Duration) {
        if let Some(mut target) = self.decide(key, cause) {
            target.duration = Some(ran);
            run.finished(ran, &target.transition);
            self.send(key, target);
        }
    }

    /// Reports the outcome of a transactional handler's run: committed (done), or lost
    /// (its fence failed; a log row's batch is then forgotten, as it was taken over). A
    /// committed run is recorded as done.
    pub(crate) fn report_tx(&self, key: ClaimKey, committed: bool, run: Run<'_>, ran: Duration) {
        let settled = if committed {
            Settled::Committed
        } else {
            tracing::warn!(
                delivery_id = key.id,
                "pgbus: a transactional handler's completion lost its lease (the delivery was \
                 taken over); its writes were rolled back"
            );
            let batch = (self.held().get(&key)).and_then(|h| h.log.as_ref().map(|l| l.batch));
            if let Some(batch) = batch {
                self.batches.forget(&[batch]);
            }
            Settled::Lost
        };
        if let Some(mut target) = self.decide_settled(key, Cause::Succeeded, settled) {
            target.duration = Some(ran);
            if committed {
                run.finished(ran, &target.transition);
            }
            self.send(key, target);
        }
    }

    fn send(&self, key: ClaimKey, target: Target) {
        let id = key.id;
        let t = &target.transition;
        let error = t.error.as_deref();
        match t.state {
            DeliveryState::Dead => tracing::warn!(delivery_id = id, error, "pgbus: delivery dead"),
            DeliveryState::Pending if error.is_some() => tracing::info!(
                delivery_id = id,
                error,
                retry_in_secs = t.delay.as_secs_f64(),
                "pgbus: delivery failed; will retry"
            ),
            _ => tracing::debug!(delivery_id = id, state = ?t.state, "pgbus: delivery outcome"),
        }
        let _ = self.outcomes.send(Msg::Complete(target));
    }
}
