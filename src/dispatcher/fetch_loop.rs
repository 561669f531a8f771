//! The fetch loop: claims work while there is room and work, sleeps (woken early by
//! publishes, notifications and freed slots) when there is none.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::claim::{self, ClaimedRow, Want};
use super::complete::{Completion, Kind, Msg};
use super::connection::KeptConnection;
use super::{Held, Shared};
use crate::event::EventEnvelope;
use crate::handler::Delivery;

/// Extra fetches after a wake-up, with doubling pauses from 1 ms (31 ms in all): the
/// in-process wake comes before its publish commits, and publishes inside a publisher's
/// NOTIFY debounce window send none of their own.
const LINGER_STEPS: u32 = 5;

pub(crate) async fn run(shared: Arc<Shared>) {
    let index: HashMap<Arc<str>, usize> = shared
        .subs
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), i))
        .collect();
    let names: Vec<&str> = shared.subs.iter().map(|s| &*s.name).collect();
    let mut backoff = Duration::from_millis(100);
    let mut failing = false;
    let mut linger = LINGER_STEPS;
    let mut next_solo_check = Instant::now();
    let mut solo_pending = false;
    let mut conn = KeptConnection::new(shared.pool.clone());

    while !shared.stop.is_cancelled() {
        // Crash suspects run alone: checked every poll interval, they pause normal claims
        // until this dispatcher has nothing in flight, then run one at a time.
        if Instant::now() >= next_solo_check {
            next_solo_check = Instant::now() + shared.config.poll_interval;
            match conn.run(async |c| claim::solo_due(c, &names).await).await {
                Ok(due) => solo_pending = due,
                Err(e) => {
                    failing = report_failure(&shared, &e, &mut backoff).await;
                    continue;
                }
            }
        }
        if solo_pending {
            if shared.outstanding_total() > 0 {
                wait_for_room(&shared).await;
                continue;
            }
            let wants: Vec<Want<'_>> = shared.subs.iter().map(|s| Want::of(s, 1)).collect();
            match conn
                .run(async |c| claim::claim(c, &wants, true).await)
                .await
            {
                Ok(rows) => {
                    recovered(&mut failing, &mut backoff);
                    // Run at most one suspect; give back the others uncounted.
                    let mut started = false;
                    for row in rows {
                        if row.state == 1 && started {
                            release_unrun(&shared, &row).await;
                        } else if row.state == 1 {
                            started = true;
                            dispatch(&shared, &index, row);
                        }
                    }
                    if !started {
                        solo_pending = false;
                    }
                }
                Err(e) => failing = report_failure(&shared, &e, &mut backoff).await,
            }
            continue;
        }

        let wants = wants(&shared);
        if wants.is_empty() {
            wait_for_room(&shared).await;
            continue;
        }
        match conn
            .run(async |c| claim::claim(c, &wants, false).await)
            .await
        {
            Ok(rows) => {
                recovered(&mut failing, &mut backoff);
                let mut got: HashMap<&str, i32> = HashMap::new();
                let mut took_back = 0usize;
                for row in rows {
                    if row.state == 1 {
                        *got.entry(wants_name(&wants, &row.subscription))
                            .or_default() += 1;
                        dispatch(&shared, &index, row);
                    } else {
                        took_back += 1;
                    }
                }
                if took_back > 0 {
                    tracing::warn!(
                        count = took_back,
                        "pgbus: took back deliveries whose lease expired; they will run alone"
                    );
                    next_solo_check = Instant::now();
                }
                let full = wants
                    .iter()
                    .any(|w| got.get(w.subscription).copied().unwrap_or(0) >= w.limit);
                if full || took_back > 0 {
                    linger = 0;
                    continue;
                }
                if linger < LINGER_STEPS {
                    let pause = Duration::from_millis(1 << linger);
                    linger += 1;
                    wait(&shared, None, pause).await;
                    continue;
                }
                if wait(&shared, None, shared.config.poll_interval).await {
                    linger = 0;
                }
            }
            Err(e) => failing = report_failure(&shared, &e, &mut backoff).await,
        }
    }
    let _ = failing;
}

/// Per subscription, how many to claim: nothing while more than half the room is taken,
/// else enough to fill it. Held deliveries (queued, running, or finished with their outcome
/// not yet written) are at most concurrency + batch size per subscription, so a completer
/// that falls behind holds claims back instead of letting `running` rows pile up.
fn wants(shared: &Shared) -> Vec<Want<'_>> {
    let batch = shared.config.batch_size;
    shared
        .subs
        .iter()
        .filter_map(|s| {
            let cap = s.sub.concurrency + batch;
            let outstanding = s.outstanding.load(Ordering::Relaxed);
            let room = cap.saturating_sub(outstanding);
            (room > 0 && (outstanding <= s.sub.concurrency + batch / 2))
                .then(|| Want::of(s, room.min(batch)))
        })
        .collect()
}

fn wants_name<'a>(wants: &[Want<'a>], name: &str) -> &'a str {
    wants
        .iter()
        .find(|w| w.subscription == name)
        .map_or("", |w| w.subscription)
}

/// Hands a claimed row to a delivery task.
fn dispatch(shared: &Arc<Shared>, index: &HashMap<Arc<str>, usize>, row: ClaimedRow) {
    let Some(&sub_index) = index.get(row.subscription.as_str()) else {
        return;
    };
    let sub = &shared.subs[sub_index];
    let lease_secs = sub.sub.lease.as_secs_f64();
    shared.hold(
        row.id,
        Held {
            sub: sub_index,
            attempt: row.attempts,
            max_attempts: sub.sub.retry.max_attempts as i32,
            lease_secs,
            started: false,
            reported: false,
            extended_at: Instant::now(),
        },
    );
    let (id, attempts) = (row.id, row.attempts);
    let event = match envelope(row) {
        Ok(event) => event,
        Err(error) => {
            // Cannot run at all: dead at once, through the completer like any outcome.
            tracing::warn!(delivery_id = id, error, "pgbus: delivery dead");
            shared.mark_reported(id);
            let _ = shared.outcomes.send(Msg::Complete(Completion {
                id,
                attempt: attempts,
                kind: Kind::Dead,
                delay_secs: 0.0,
                error: Some(error),
            }));
            return;
        }
    };
    let delivery = Delivery {
        id,
        attempt: attempts.max(1) as u32,
        subscription: sub.name.clone(),
        event,
    };
    sub.queue
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push_back(delivery);
    shared
        .tasks
        .spawn(super::execute::run(shared.clone(), sub_index));
}

/// The event as handlers see it (the row's fields moved, not copied), or why it cannot be
/// delivered.
fn envelope(row: ClaimedRow) -> Result<EventEnvelope, String> {
    let (Some(id), Some(data)) = (row.event_id, row.data.as_deref()) else {
        return Err("its event no longer exists".to_owned());
    };
    let data = serde_json::from_str(data)
        .map_err(|e| format!("the payload of event {id} cannot be decoded: {e}"))?;
    let headers = match row.headers.as_deref() {
        Some(h) => serde_json::from_str(h)
            .map_err(|e| format!("the headers of event {id} cannot be decoded: {e}"))?,
        None => Default::default(),
    };
    Ok(EventEnvelope {
        id,
        event_type: row.event_type.unwrap_or_default(),
        source: row.source.unwrap_or_default(),
        subject: row.subject,
        key: row.key,
        data,
        headers,
        created_at: row.created_at.unwrap_or_default(),
    })
}

/// Gives a claimed suspect back without counting the attempt.
async fn release_unrun(shared: &Shared, row: &ClaimedRow) {
    let c = super::complete::Completion {
        id: row.id,
        attempt: row.attempts,
        kind: super::complete::Kind::ReleaseUnstarted,
        delay_secs: 0.0,
        error: None,
    };
    let result = match shared.pool.acquire().await {
        Ok(mut conn) => super::complete::write(&mut conn, std::slice::from_ref(&c)).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "pgbus: could not give back a claimed delivery; its lease will expire");
    }
}

/// Waits until a held delivery is written back (or a wake-up, or the poll interval).
async fn wait_for_room(shared: &Shared) {
    wait(
        shared,
        Some(&shared.slot_freed),
        shared.config.poll_interval,
    )
    .await;
}

/// Sleeps up to `timeout`, waking early on a wake-up (and on `extra`). Returns whether
/// it was woken rather than timed out.
async fn wait(shared: &Shared, extra: Option<&tokio::sync::Notify>, timeout: Duration) -> bool {
    let extra = async {
        match extra {
            Some(n) => n.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = shared.wake.notified() => true,
        _ = extra => true,
        _ = tokio::time::sleep(timeout) => false,
        _ = shared.stop.cancelled() => true,
    }
}

async fn report_failure(shared: &Shared, e: &sqlx::Error, backoff: &mut Duration) -> bool {
    tracing::warn!(error = %e, retry_in = ?*backoff, "pgbus: claiming failed; retrying");
    tokio::select! {
        _ = tokio::time::sleep(*backoff) => {}
        _ = shared.stop.cancelled() => {}
    }
    *backoff = (*backoff * 2).min(Duration::from_secs(5));
    true
}

fn recovered(failing: &mut bool, backoff: &mut Duration) {
    if *failing {
        tracing::info!("pgbus: database reachable again; claiming resumed");
    }
    *failing = false;
    *backoff = Duration::from_millis(100);
}
