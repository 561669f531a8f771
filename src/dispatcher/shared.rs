//! The state the dispatcher's tasks share: its subscriptions, the deliveries it holds, its
//! signals and the channel to the completer.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::task::TaskTracker;

use super::batch::{Batches, LogOrigin};
use super::config::Config;
use super::signals::Signals;
use super::target::Msg;
use crate::handler::Delivery;
use crate::subscription::Subscription;
use crate::telemetry::metrics::SubMetrics;

/// State shared by the dispatcher's tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) pool: PgPool,
    pub(crate) subs: Vec<SubState>,
    pub(crate) config: Config,
    /// This dispatcher's id (`pgbus.dispatchers`), stamped on the rows it claims.
    pub(crate) owner: i32,
    /// Deliveries claimed and not yet written back, by claim: a delivery taken back from
    /// this very dispatcher is held twice (the lost attempt, still running, and the new
    /// claim) until the lost attempt's handler returns.
    held: Mutex<HashMap<ClaimKey, Held>>,
    /// The batches of the delivery log held open (their rows are in `held` too).
    pub(crate) batches: Batches,
    /// Held while a claimer computes and reserves the room it claims into.
    pub(crate) claim_gate: Mutex<()>,
    pub(crate) signals: Signals,
    pub(crate) outcomes: mpsc::UnboundedSender<Msg>,
    /// The delivery tasks (one per queued delivery).
    pub(crate) tasks: TaskTracker,
}

/// One subscription of the dispatcher and its local bookkeeping.
#[derive(Debug)]
pub(crate) struct SubState {
    pub(crate) sub: Subscription,
    pub(crate) name: Arc<str>,
    pub(crate) semaphore: Arc<Semaphore>,
    /// Deliveries of this subscription in the held set.
    pub(crate) outstanding: AtomicUsize,
    /// Room reserved by claims in flight (see `room.rs`).
    pub(crate) reserved: AtomicUsize,
    /// Claimed deliveries not yet started, in claim order (priority, run_at, id). Each
    /// delivery task takes the front one once it has a concurrency slot, so deliveries
    /// start in this order whichever task the runtime schedules first.
    pub(crate) queue: Mutex<VecDeque<(ClaimKey, Delivery)>>,
    /// Its metric handles (feature `metrics`; nothing without it).
    pub(crate) metrics: SubMetrics,
}

/// One claim of a delivery: its id and the lease id of the claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ClaimKey {
    pub(crate) id: i64,
    pub(crate) lease: i64,
}

/// A delivery this dispatcher holds the lease of.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    /// Index of the subscription in `Shared::subs`.
    pub(crate) sub: usize,
    /// The attempt it was claimed for (from 1).
    pub(crate) attempt: u32,
    /// Claimed as a crash suspect.
    pub(crate) suspect: bool,
    pub(crate) started: bool,
    /// Its outcome went to the completer.
    pub(crate) reported: bool,
    pub(crate) extended_at: Instant,
    /// Its batch, for a row of the delivery log (whose lease is the batch's while the batch
    /// is open, its own once detached).
    pub(crate) log: Option<LogOrigin>,
}

impl Shared {
    pub(crate) fn new(
        pool: PgPool,
        subs: Vec<Subscription>,
        config: Config,
        owner: i32,
        outcomes: mpsc::UnboundedSender<Msg>,
    ) -> Self {
        Shared {
            pool,
            subs: subs
                .into_iter()
                .map(|sub| {
                    let name: Arc<str> = Arc::from(sub.name.as_str());
                    SubState {
                        metrics: SubMetrics::new(&name),
                        name,
                        semaphore: Arc::new(Semaphore::new(sub.concurrency)),
                        outstanding: AtomicUsize::new(0),
                        reserved: AtomicUsize::new(0),
                        queue: Mutex::new(VecDeque::new()),
                        sub,
                    }
                })
                .collect(),
            config,
            owner,
            held: Mutex::new(HashMap::new()),
            batches: Batches::default(),
            claim_gate: Mutex::new(()),
            signals: Signals::new(),
            outcomes,
            tasks: TaskTracker::new(),
        }
    }

    pub(crate) fn held(&self) -> MutexGuard<'_, HashMap<ClaimKey, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn mark_started(&self, key: ClaimKey) {
        if let Some(h) = self.held().get_mut(&key) {
            h.started = true;
        }
    }

    /// Adds a claimed delivery to the held set (and to its subscription's count).
    pub(crate) fn hold(&self, key: ClaimKey, held: Held) {
        self.subs[held.sub].outstanding.fetch_add(1, Relaxed);
        if let Some(old) = self.held().insert(key, held) {
            self.subs[old.sub].outstanding.fetch_sub(1, Relaxed);
        }
    }

    /// Drops written-back deliveries from the held set, freeing their room.
    pub(crate) fn forget(&self, keys: impl Iterator<Item = ClaimKey>) {
        {
            let mut held = self.held();
            for key in keys {
                if let Some(h) = held.remove(&key) {
                    self.subs[h.sub].outstanding.fetch_sub(1, Relaxed);
                }
            }
        }
        self.signals.room_freed();
    }

    /// The claims with a lease of their own (not in an open batch) last extended a third of
    /// its length ago or longer, with their lease's length.
    pub(crate) fn due_for_extension(&self, now: Instant) -> Vec<(ClaimKey, Duration)> {
        self.held()
            .iter()
            .filter(|(_, h)| (h.log.as_ref()).is_none_or(|l| !self.batches.is_open(l.batch)))
            .map(|(key, h)| (*key, h, self.subs[h.sub].sub.lease))
            .filter(|(_, h, lease)| now.duration_since(h.extended_at) >= *lease / 3)
            .map(|(key, _, lease)| (key, lease))
            .collect()
    }

    pub(crate) fn extended(&self, keys: &[ClaimKey], at: Instant) {
        let mut held = self.held();
        for key in keys {
            if let Some(h) = held.get_mut(key) {
                h.extended_at = at;
            }
        }
    }

    /// Whether a held delivery has no outcome yet: one queued or running (its outcome not
    /// reported to the completer).
    pub(crate) fn any_unreported(&self) -> bool {
        self.held().values().any(|h| !h.reported)
    }

    /// Whether a claim is in flight (room is reserved for it).
    pub(crate) fn claiming(&self) -> bool {
        self.subs.iter().any(|s| s.reserved.load(Relaxed) > 0)
    }
}
