//! The signals the dispatcher's tasks wake and stop each other with, in one place.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::wake;

/// Wake-ups, flags and the three stages of a shutdown.
#[derive(Debug)]
pub(crate) struct Signals {
    /// Wakes the fetch loop: local publishes, notifications, reconnects.
    pub(crate) wake: Arc<Notify>,
    /// A held delivery was written back or a handler finished: room or a slot is free.
    pub(crate) slot_freed: Notify,
    /// Wakes the second claimer: a backlog began, room was freed, or the fetch loop ends.
    pub(crate) backlog_wake: Notify,
    /// The last claim came back full: the second claimer runs.
    backlog: AtomicBool,
    /// Crash suspects are due: ordinary claims pause until they have run, one at a time.
    pub(crate) solo_pending: AtomicBool,
    /// A delivery became a crash suspect: look for due suspects at once.
    pub(crate) look_for_suspects: AtomicBool,
    /// Rows were written to `pgbus.deliveries` that are due now (taken-back batches): the
    /// next claim takes from that table too.
    pub(crate) side_claim: AtomicBool,
    /// Stop claiming and starting handlers.
    pub(crate) stop: CancellationToken,
    /// The shutdown deadline passed: abandon running handlers and pending writes.
    pub(crate) abandon: CancellationToken,
    /// Everything is written back.
    pub(crate) finished: CancellationToken,
}

impl Signals {
    pub(crate) fn new() -> Self {
        Signals {
            wake: wake::register(),
            slot_freed: Notify::new(),
            backlog_wake: Notify::new(),
            backlog: AtomicBool::new(false),
            solo_pending: AtomicBool::new(false),
            look_for_suspects: AtomicBool::new(false),
            side_claim: AtomicBool::new(false),
            stop: CancellationToken::new(),
            abandon: CancellationToken::new(),
            finished: CancellationToken::new(),
        }
    }

    /// Room was freed: wakes whichever claimer waits for it.
    pub(crate) fn room_freed(&self) {
        self.slot_freed.notify_one();
        self.backlog_wake.notify_one();
    }

    /// Records whether the last claim came back full; wakes the second claimer when a
    /// backlog begins.
    pub(crate) fn set_backlog(&self, full: bool) {
        let was = self.backlog.swap(full, Relaxed);
        if full && !was {
            self.backlog_wake.notify_one();
        }
    }

    /// Whether the second claimer should claim: a backlog, and no suspects waiting to run
    /// alone.
    pub(crate) fn backlog_claims(&self) -> bool {
        self.backlog.load(Relaxed) && !self.solo_pending.load(Relaxed)
    }

    /// Due rows were written to `pgbus.deliveries`: the next claim takes from it too.
    pub(crate) fn side_rows_written(&self) {
        self.side_claim.store(true, Relaxed);
        self.wake.notify_one();
    }

    /// New crash suspects were written: the fetch loop looks for them at once.
    pub(crate) fn suspects_written(&self) {
        self.look_for_suspects.store(true, Relaxed);
        self.wake.notify_one();
    }
}
