//! The fetch loop: claims work while there is room and work, sleeps (woken early by
//! publishes, notifications and freed slots) when there is none. While a backlog lasts (the
//! last claim came back full), a second claimer on its own connection keeps a second claim
//! in flight, so the database is claiming one batch while the other is being dispatched.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
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
    let backlog = tokio::spawn(run_backlog(shared.clone()));
    run_primary(&shared).await;
    shared.backlog_wake.notify_one();
    let _ = backlog.await;
}

/// The subscription index of each name.
fn index_of(shared: &Shared) -> HashMap<Arc<str>, usize> {
    shared
        .subs
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), i))
        .collect()
}

/// The claimer that always runs: ordinary claims, crash suspects, lingering after wake-ups.
async fn run_primary(shared: &Arc<Shared>) {
    let index = index_of(shared);
    let names: Vec<&str> = shared.subs.iter().map(|s| &*s.name).collect();
    let mut backoff = Duration::from_millis(100);
    let mut failing = false;
    let mut linger = LINGER_STEPS;
    let mut next_solo_check = Instant::now();
    let mut conn = KeptConnection::new(shared.pool.clone());

    while !shared.stop.is_cancelled() {
        // Crash suspects run alone: checked every poll interval, they pause normal claims
        // (of both claimers) until this dispatcher has nothing in flight, then run one at a
        // time.
        if shared.took_back.swap(false, Relaxed) || Instant::now() >= next_solo_check {
            next_solo_check = Instant::now() + shared.config.poll_interval;
            match conn.run(async |c| claim::solo_due(c, &names).await).await {
                Ok(due) => shared.solo_pending.store(due, Relaxed),
                Err(e) => {
                    failing = report_failure(shared, &e, &mut backoff).await;
                    continue;
                }
            }
        }
        if shared.solo_pending.load(Relaxed) {
            if shared.outstanding_total() > 0 || shared.claiming() {
                wait_for_room(shared).await;
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
                            release_unrun(&mut conn, &row).await;
                        } else if let (1, Some(&i)) =
                            (row.state, index.get(row.subscription.as_str()))
                        {
                            started = true;
                            dispatch(shared, i, row);
                        }
                    }
                    if !started {
                        shared.solo_pending.store(false, Relaxed);
                    }
                }
                Err(e) => failing = report_failure(shared, &e, &mut backoff).await,
            }
            continue;
        }

        let Some(reserved) = Reservation::take(shared) else {
            wait_for_room(shared).await;
            continue;
        };
        match claim_batch(shared, &index, &mut conn, reserved).await {
            Ok(full) => {
                recovered(&mut failing, &mut backoff);
                if full {
                    linger = 0;
                    continue;
                }
                if linger < LINGER_STEPS {
                    let pause = Duration::from_millis(1 << linger);
                    linger += 1;
                    wait(shared, None, pause).await;
                    continue;
                }
                if wait(shared, None, shared.config.poll_interval).await {
                    linger = 0;
                }
            }
            Err(e) => failing = report_failure(shared, &e, &mut backoff).await,
        }
    }
    let _ = failing;
}

/// The second claimer: idle until a claim comes back full, then claims alongside the
/// primary while the backlog lasts (and crash suspects are not waiting to run alone).
async fn run_backlog(shared: Arc<Shared>) {
    let index = index_of(&shared);
    let mut backoff = Duration::from_millis(100);
    let mut failing = false;
    let mut conn = KeptConnection::new(shared.pool.clone());
    while !shared.stop.is_cancelled() {
        if !shared.backlog.load(Relaxed) || shared.solo_pending.load(Relaxed) {
            wait_backlog(&shared).await;
            continue;
        }
        let Some(reserved) = Reservation::take(&shared) else {
            wait_backlog(&shared).await;
            continue;
        };
        match claim_batch(&shared, &index, &mut conn, reserved).await {
            Ok(_) => recovered(&mut failing, &mut backoff),
            Err(e) => failing = report_failure(&shared, &e, &mut backoff).await,
        }
    }
    let _ = failing;
}

/// The second claimer's sleep: until a backlog begins or room is freed (it leaves the
/// wake-ups of publishes and notifications to the primary, which lingers on them).
async fn wait_backlog(shared: &Shared) {
    tokio::select! {
        _ = shared.backlog_wake.notified() => {}
        _ = tokio::time::sleep(shared.config.poll_interval) => {}
        _ = shared.stop.cancelled() => {}
    }
}

/// Room reserved for one claim: what it asks for counts against each subscription's room
/// until its rows are held, so two claimers never claim past it together.
struct Reservation<'a> {
    shared: &'a Shared,
    /// Index of each want's subscription in `Shared::subs`.
    subs: Vec<usize>,
    wants: Vec<Want<'a>>,
}

impl<'a> Reservation<'a> {
    /// Reserves room for a claim, or `None` when no subscription has enough room.
    fn take(shared: &'a Shared) -> Option<Self> {
        let _gate = shared.claim_gate.lock().unwrap_or_else(|e| e.into_inner());
        let (subs, wants): (Vec<usize>, Vec<Want<'a>>) = wants(shared).into_iter().unzip();
        if wants.is_empty() {
            return None;
        }
        for (i, w) in subs.iter().zip(&wants) {
            shared.subs[*i]
                .reserved
                .fetch_add(w.limit as usize, Relaxed);
        }
        Some(Reservation {
            shared,
            subs,
            wants,
        })
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        for (i, w) in self.subs.iter().zip(&self.wants) {
            self.shared.subs[*i]
                .reserved
                .fetch_sub(w.limit as usize, Relaxed);
        }
    }
}

/// Claims ordinary work into the reserved room and hands it to delivery tasks. Returns
/// whether any subscription got all it asked for (a backlog), and sets the shared backlog
/// flag accordingly.
async fn claim_batch(
    shared: &Arc<Shared>,
    index: &HashMap<Arc<str>, usize>,
    conn: &mut KeptConnection,
    reserved: Reservation<'_>,
) -> sqlx::Result<bool> {
    let rows = conn
        .run(async |c| claim::claim(c, &reserved.wants, false).await)
        .await?;
    let mut got = vec![0i32; shared.subs.len()];
    let mut took_back = 0usize;
    for row in rows {
        if row.state != 1 {
            took_back += 1;
        } else if let Some(&i) = index.get(row.subscription.as_str()) {
            got[i] += 1;
            dispatch(shared, i, row);
        }
    }
    let full = (reserved.subs.iter().zip(&reserved.wants)).any(|(i, w)| got[*i] >= w.limit);
    drop(reserved);
    if took_back > 0 {
        tracing::warn!(
            count = took_back,
            "pgbus: took back deliveries whose lease expired; they will run alone"
        );
        shared.took_back.store(true, Relaxed);
    }
    let was = shared.backlog.swap(full, Relaxed);
    if full && !was {
        shared.backlog_wake.notify_one();
    }
    Ok(full || took_back > 0)
}

/// Per subscription, how many to claim: a batch, whenever at least a batch of room is
/// free. Held deliveries (queued, running, or finished with their outcome
/// not yet written) and those being claimed are at most concurrency + two batches per
/// subscription: room for two claims in flight at once, and a completer that falls behind
/// holds claims back instead of letting `running` rows pile up.
fn wants(shared: &Shared) -> Vec<(usize, Want<'_>)> {
    let batch = shared.config.batch_size;
    shared
        .subs
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let cap = s.sub.concurrency + 2 * batch;
            let taken = s.outstanding.load(Relaxed) + s.reserved.load(Relaxed);
            let room = cap.saturating_sub(taken);
            (room >= batch).then(|| (i, Want::of(s, room.min(batch))))
        })
        .collect()
}

/// Hands a claimed row of subscription `sub_index` to a delivery task.
fn dispatch(shared: &Arc<Shared>, sub_index: usize, row: ClaimedRow) {
    let sub = &shared.subs[sub_index];
    let lease_secs = sub.sub.lease.as_secs_f64();
    shared.hold(
        row.id,
        Held {
            sub: sub_index,
            attempt: row.attempts,
            lease: row.lease_id.unwrap_or_default(),
            max_attempts: sub.sub.retry.max_attempts as i32,
            lease_secs,
            started: false,
            reported: false,
            extended_at: Instant::now(),
        },
    );
    let (id, attempts, lease) = (row.id, row.attempts, row.lease_id.unwrap_or_default());
    let event = match envelope(row) {
        Ok(event) => event,
        Err(error) => {
            // Cannot run at all: dead at once, through the completer like any outcome.
            tracing::warn!(delivery_id = id, error, "pgbus: delivery dead");
            shared.mark_reported(id);
            let _ = shared.outcomes.send(Msg::Complete(Completion {
                id,
                lease,
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
        max_attempts: sub.sub.retry.max_attempts,
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
    let Some(e) = row.event else {
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

/// Gives a claimed suspect back without counting the attempt.
async fn release_unrun(conn: &mut KeptConnection, row: &ClaimedRow) {
    let c = Completion {
        id: row.id,
        lease: row.lease_id.unwrap_or_default(),
        kind: Kind::ReleaseUnstarted,
        delay_secs: 0.0,
        error: None,
    };
    let result = conn
        .run(async |db| super::complete::write(db, std::slice::from_ref(&c)).await)
        .await;
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
