//! From what happened to a held delivery to the target the completer writes: the state
//! machine (`crate::state`) decides, this file only looks up its inputs and logs.

use super::shared::{ClaimKey, Held, Shared};
use super::target::{Msg, Target};
use crate::retry;
use crate::state::{self, Attempt, Cause, DeliveryState};

impl Shared {
    /// Decides the next state of a held claim after `cause` and marks it reported. `None`
    /// if it is not held or its outcome was already reported.
    pub(crate) fn decide(&self, key: ClaimKey, cause: Cause) -> Option<Target> {
        let mut held = self.held();
        let h: &mut Held = held.get_mut(&key)?;
        if h.reported {
            return None;
        }
        h.reported = true;
        let attempt = Attempt {
            number: h.attempt,
            policy: &self.subs[h.sub].sub.retry,
            suspect: h.suspect,
            retain_done: self.config.retain_done,
        };
        let transition = state::next(attempt, cause, retry::random_unit());
        Some(Target {
            id: key.id,
            lease: key.lease,
            sub: h.sub,
            log: h.log.clone(),
            transition,
        })
    }

    /// Decides the next state of a held claim after `cause` and sends it to the completer
    /// (logged in the caller's span).
    pub(crate) fn report(&self, key: ClaimKey, cause: Cause) {
        let Some(target) = self.decide(key, cause) else {
            return;
        };
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
