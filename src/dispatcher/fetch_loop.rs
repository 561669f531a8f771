//! The fetch loop: claims work while there is room and work, sleeps (woken early by
//! publishes, notifications and freed slots) when there is none. Each claim is a
//! [`Claimer`]'s (`claimer.rs`). While a backlog lasts (the last claim came back full), a
//! second claimer on its own connection keeps a second claim in flight, so the database is
//! claiming one batch while the other is being dispatched. Crash suspects (deliveries whose
//! previous lease expired) run alone: they pause ordinary claims until nothing else is in
//! flight, then run one at a time.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::claimer::Claimer;
use super::room::Reservation;
use super::shared::Shared;

/// Extra fetches after a wake-up, with doubling pauses from 1 ms (255 ms in all): the
/// in-process wake comes before its publish commits, and publishes inside a publisher's
/// NOTIFY debounce window send none of their own, so a transaction that commits up to a
/// quarter of a second after its publish is found within half that time, not at the poll
/// interval. The last steps are sparse: an idle dispatcher claims eight times after a
/// wake-up, and an empty claim writes nothing.
const LINGER_STEPS: u32 = 8;

pub(crate) async fn run(shared: Arc<Shared>) {
    let backlog = tokio::spawn(run_backlog(shared.clone()));
    run_primary(&shared).await;
    shared.signals.backlog_wake.notify_one();
    let _ = backlog.await;
}

/// The claimer that always runs: ordinary claims, crash suspects, lingering after wake-ups.
async fn run_primary(shared: &Arc<Shared>) {
    let signals = &shared.signals;
    let mut claimer = Claimer::new(shared, true);
    let mut linger = LINGER_STEPS;
    // Whether the next claim answers a wake-up (the first one answers the start).
    let mut woken = true;

    while !signals.stop.is_cancelled() {
        // Due suspects are looked for at once when new ones were written, and every poll
        // interval: before the claim, unless it answers a wake-up, then after it.
        if let Err(e) = claimer.look_for_suspects(!woken).await {
            claimer.failed(&e).await;
            continue;
        }
        if signals.solo_pending.load(Relaxed) {
            // Alone: nothing else queued or running. Outcomes still being written do not
            // count (their handlers have returned), so the write of one suspect's outcome
            // and the claim of the next overlap.
            if shared.any_unreported() || shared.claiming() {
                wait_for_room(shared).await;
                continue;
            }
            match claimer.claim_suspect().await {
                Ok(started) => {
                    claimer.succeeded();
                    if !started {
                        signals.solo_pending.store(false, Relaxed);
                    }
                }
                Err(e) => claimer.failed(&e).await,
            }
            continue;
        }

        let Some(reserved) = Reservation::take(shared) else {
            wait_for_room(shared).await;
            continue;
        };
        let answers = std::mem::take(&mut woken);
        match claimer.claim_batch(reserved, answers).await {
            Ok(full) => {
                claimer.succeeded();
                if let Err(e) = claimer.look_for_suspects(true).await {
                    claimer.failed(&e).await;
                    continue;
                }
                if full {
                    linger = 0;
                    continue;
                }
                if linger < LINGER_STEPS {
                    let pause = Duration::from_millis(1 << linger);
                    linger += 1;
                    woken = wait(shared, None, pause).await;
                    continue;
                }
                woken = wait(shared, None, shared.config.poll_interval).await;
                if woken {
                    linger = 0;
                }
            }
            Err(e) => claimer.failed(&e).await,
        }
    }
}

/// The second claimer: idle until a claim comes back full, then claims alongside the
/// primary while the backlog lasts (and crash suspects are not waiting to run alone).
async fn run_backlog(shared: Arc<Shared>) {
    let mut claimer = Claimer::new(&shared, false);
    while !shared.signals.stop.is_cancelled() {
        if !shared.signals.backlog_claims() {
            wait_backlog(&shared).await;
            continue;
        }
        let Some(reserved) = Reservation::take(&shared) else {
            wait_backlog(&shared).await;
            continue;
        };
        match claimer.claim_batch(reserved, false).await {
            Ok(_) => claimer.succeeded(),
            Err(e) => claimer.failed(&e).await,
        }
    }
}

/// The second claimer's sleep: until a backlog begins or room is freed (it leaves the
/// wake-ups of publishes and notifications to the primary, which lingers on them).
async fn wait_backlog(shared: &Shared) {
    let signals = &shared.signals;
    tokio::select! {
        _ = signals.backlog_wake.notified() => {}
        _ = tokio::time::sleep(shared.config.poll_interval) => {}
        _ = signals.stop.cancelled() => {}
    }
}

/// Waits until a held delivery is written back (or a wake-up, or the poll interval). The
/// claim after it does not count as answering a wake-up: under a backlog that fills the room,
/// `pgbus.deliveries` is claimed first.
async fn wait_for_room(shared: &Shared) {
    let freed = &shared.signals.slot_freed;
    wait(shared, Some(freed), shared.config.poll_interval).await;
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
    let signals = &shared.signals;
    tokio::select! {
        _ = signals.wake.notified() => true,
        _ = extra => true,
        _ = tokio::time::sleep(timeout) => false,
        _ = signals.stop.cancelled() => true,
    }
}
