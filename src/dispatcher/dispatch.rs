//! Handing claimed rows over: each is held under its lease, then either queued for a
//! delivery task or, when it cannot run (lease lost, undecodable), reported at once.

use std::sync::Arc;
use std::time::Instant;

use super::claim::{ClaimedRow, EventRow};
use super::shared::{ClaimKey, Held, Shared};
use crate::event::EventEnvelope;
use crate::handler::Delivery;
use crate::state::Cause;

/// Holds a claimed row; `suspect` when it came from a claim of crash suspects.
pub(crate) fn hold(shared: &Shared, row: &ClaimedRow, suspect: bool) -> ClaimKey {
    let key = ClaimKey {
        id: row.id,
        lease: row.lease_id,
    };
    shared.hold(
        key,
        Held {
            sub: row.sub,
            attempt: row.attempts.max(1) as u32,
            suspect,
            started: false,
            reported: false,
            extended_at: Instant::now(),
            log: row.log.clone(),
        },
    );
    key
}

/// Holds a claimed row and runs it: queued for a delivery task, or reported at once when
/// its lease had been lost or it cannot be decoded.
pub(crate) fn dispatch(shared: &Arc<Shared>, row: ClaimedRow, suspect: bool) {
    let key = hold(shared, &row, suspect);
    let (id, sub_index) = (row.id, row.sub);
    if row.taken_back {
        shared.report(key, Cause::LeaseLost);
        return;
    }
    let sub = &shared.subs[sub_index];
    let event = match envelope(row.event) {
        Ok(event) => event,
        Err(error) => {
            shared.report(key, Cause::Undeliverable(error));
            return;
        }
    };
    let delivery = Delivery {
        id,
        attempt: row.attempts.max(1) as u32,
        max_attempts: sub.sub.retry.max_attempts,
        subscription: sub.name.clone(),
        event,
    };
    sub.queue
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push_back((key, delivery));
    shared
        .tasks
        .spawn(super::execute::run(shared.clone(), sub_index));
}

/// Holds a claimed row and gives it back at once, uncounted.
pub(crate) fn give_back(shared: &Shared, row: &ClaimedRow, suspect: bool) {
    let key = hold(shared, row, suspect);
    shared.report(key, Cause::Unstarted);
}

/// The event as handlers see it (the row's fields moved, not copied), or why it cannot be
/// delivered.
fn envelope(event: Option<EventRow>) -> Result<EventEnvelope, String> {
    let Some(e) = event else {
        return Err("its event no longer exists".to_owned());
    };
    let id = e.id;
    let data = serde_json::from_str(&e.data)
        .map_err(|err| format!("the payload of event {id} cannot be decoded: {err}"))?;
    let headers = serde_json::from_str(&e.headers)
        .map_err(|err| format!("the headers of event {id} cannot be decoded: {err}"))?;
    Ok(EventEnvelope {
        id,
        event_type: e.event_type,
        source: e.source,
        subject: e.subject,
        key: e.key,
        data,
        headers,
        created_at: e.created_at,
    })
}
