//! The dispatcher: claims due deliveries, runs their handlers, writes their outcomes.

mod claim;
mod complete;
mod connection;
mod execute;
mod fetch_loop;
mod lease;
mod listen;
mod maintain;
mod shutdown;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{Error, Result};
use crate::handler::Delivery;
use crate::subscription::{self, Subscription};
use crate::wake;

pub use shutdown::ShutdownReport;

use complete::{Kind, Msg};

/// Delivers events to subscription handlers. Build one with [`Dispatcher::builder`],
/// then [`start`](Dispatcher::start) it.
///
/// ```no_run
/// # use pgbus::{Delivery, HandlerError, RawHandler, Subscription};
/// # struct Audit;
/// # #[async_trait::async_trait]
/// # impl RawHandler for Audit {
/// #     async fn handle(&self, _: &Delivery) -> Result<(), HandlerError> { Ok(()) }
/// # }
/// # async fn demo(pool: sqlx::PgPool) -> pgbus::Result<()> {
/// let dispatcher = pgbus::Dispatcher::builder(pool)
///     .subscribe(Subscription::raw("audit", ["*"], Audit))
///     .build()?
///     .start()
///     .await?;
/// // ... serve ...
/// let report = dispatcher.shutdown().await?;
/// assert_eq!(report.released, 0);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Dispatcher {
    pool: PgPool,
    subs: Vec<Subscription>,
    config: Config,
}

/// Dispatcher-wide settings.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) batch_size: usize,
    pub(crate) poll_interval: Duration,
    pub(crate) listen: bool,
    pub(crate) complete_batch: usize,
    pub(crate) complete_delay: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) retain_done: bool,
    pub(crate) event_retention: Option<Duration>,
    pub(crate) done_retention: Duration,
    pub(crate) maintenance_interval: Duration,
    pub(crate) vacuum: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
            listen: true,
            complete_batch: 1000,
            complete_delay: Duration::ZERO,
            shutdown_timeout: Duration::from_secs(30),
            retain_done: false,
            event_retention: Some(Duration::from_secs(7 * 24 * 3600)),
            done_retention: Duration::from_secs(7 * 24 * 3600),
            maintenance_interval: Duration::from_secs(60),
            vacuum: true,
        }
    }
}

/// Builds a [`Dispatcher`]; every setting has a default, checked by [`build`](Self::build).
#[derive(Debug)]
pub struct DispatcherBuilder {
    pool: PgPool,
    subs: Vec<Subscription>,
    config: Config,
}

impl DispatcherBuilder {
    /// Adds a subscription. At least one is needed.
    pub fn subscribe(mut self, subscription: Subscription) -> Self {
        self.subs.push(subscription);
        self
    }

    /// Most deliveries one claim statement takes per subscription; also how far the local
    /// queue runs ahead of the handlers: a dispatcher holds at most `concurrency + 2 ×
    /// batch_size` deliveries per subscription, room for two claims in flight while a
    /// backlog lasts. Default: 500. Must be 1 to 10,000.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.config.batch_size = n;
        self
    }

    /// How often an idle dispatcher looks for due work without being woken (retries whose
    /// backoff ended, missed notifications). Default: 1 s. Must be > 0.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.config.poll_interval = interval;
        self
    }

    /// Whether to LISTEN for publishes from other processes (one pool connection).
    /// Default: `true`.
    pub fn listen(mut self, listen: bool) -> Self {
        self.config.listen = listen;
        self
    }

    /// Most outcomes written by one completion statement. Default: 1000. Must be ≥ 1.
    pub fn complete_batch(mut self, n: usize) -> Self {
        self.config.complete_batch = n;
        self
    }

    /// How long the completer waits to gather more outcomes before writing. Default: zero
    /// (it writes whatever has gathered while the previous write ran).
    pub fn complete_delay(mut self, delay: Duration) -> Self {
        self.config.complete_delay = delay;
        self
    }

    /// How long a shutdown waits for running handlers before releasing them. Default: 30 s.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// Keep done deliveries (state `done`) instead of deleting them. Default: `false`.
    pub fn retain_done(mut self, retain: bool) -> Self {
        self.config.retain_done = retain;
        self
    }

    /// How long fully delivered events are kept (as history, e.g. per subject) before
    /// pruning; `None` keeps them forever. Events with a pending, running or dead delivery
    /// are never pruned. Default: 7 days.
    pub fn event_retention(mut self, retention: Option<Duration>) -> Self {
        self.config.event_retention = retention;
        self
    }

    /// How long done deliveries are kept when [`retain_done`](Self::retain_done) is on.
    /// Default: 7 days.
    pub fn done_retention(mut self, retention: Duration) -> Self {
        self.config.done_retention = retention;
        self
    }

    /// How often the dispatcher prunes by retention (one dispatcher at a time, under an
    /// advisory lock). Default: 60 s. Must be > 0.
    pub fn maintenance_interval(mut self, interval: Duration) -> Self {
        self.config.maintenance_interval = interval;
        self
    }

    /// Whether the dispatcher vacuums `pgbus.deliveries` itself once 50,000 dead tuples
    /// have piled up (checked every 5 s, one dispatcher at a time), instead of waiting for
    /// autovacuum, whose launcher looks only every `autovacuum_naptime`. Needs the right to
    /// VACUUM the table (its owner has it); without it the dispatcher logs once and leaves
    /// the table to autovacuum. Default: `true`.
    pub fn vacuum(mut self, vacuum: bool) -> Self {
        self.config.vacuum = vacuum;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// [`Error::Config`], [`Error::InvalidSubscriptionName`], [`Error::InvalidEventType`]
    /// or [`Error::DuplicateSubscription`] for a setting it cannot work with.
    pub fn build(self) -> Result<Dispatcher> {
        if self.subs.is_empty() {
            return Err(Error::config("subscriptions", "at least one is needed"));
        }
        let mut names = HashSet::new();
        for s in &self.subs {
            s.validate()?;
            if !names.insert(s.name.as_str()) {
                return Err(Error::DuplicateSubscription(s.name.clone()));
            }
        }
        let c = &self.config;
        if !(1..=10_000).contains(&c.batch_size) {
            return Err(Error::config("batch_size", "must be between 1 and 10,000"));
        }
        if c.poll_interval.is_zero() {
            return Err(Error::config("poll_interval", "must be greater than zero"));
        }
        if c.maintenance_interval.is_zero() {
            return Err(Error::config(
                "maintenance_interval",
                "must be greater than zero",
            ));
        }
        if c.complete_batch == 0 {
            return Err(Error::config("complete_batch", "must be at least 1"));
        }
        Ok(Dispatcher {
            pool: self.pool,
            subs: self.subs,
            config: self.config,
        })
    }
}

impl Dispatcher {
    /// A builder for a dispatcher on `pool`. The dispatcher uses the pool for claims,
    /// completions and lease extensions, plus one connection for LISTEN.
    pub fn builder(pool: PgPool) -> DispatcherBuilder {
        DispatcherBuilder {
            pool,
            subs: Vec::new(),
            config: Config::default(),
        }
    }

    /// Registers the subscriptions in the database and starts delivering.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] if the subscriptions cannot be registered.
    pub async fn start(self) -> Result<DispatcherHandle> {
        subscription::register(&self.pool, &self.subs).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            pool: self.pool,
            subs: self
                .subs
                .into_iter()
                .map(|sub| SubState {
                    name: Arc::from(sub.name.as_str()),
                    semaphore: Arc::new(Semaphore::new(sub.concurrency)),
                    outstanding: AtomicUsize::new(0),
                    reserved: AtomicUsize::new(0),
                    queue: Mutex::new(VecDeque::new()),
                    sub,
                })
                .collect(),
            config: self.config,
            held: Mutex::new(HashMap::new()),
            wake: wake::register(),
            slot_freed: Notify::new(),
            claim_gate: Mutex::new(()),
            backlog: AtomicBool::new(false),
            backlog_wake: Notify::new(),
            solo_pending: AtomicBool::new(false),
            took_back: AtomicBool::new(false),
            stop: CancellationToken::new(),
            abandon: CancellationToken::new(),
            finished: CancellationToken::new(),
            outcomes: tx,
            tasks: TaskTracker::new(),
        });
        let token = CancellationToken::new();
        let background = TaskTracker::new();
        let completer = background.spawn(complete::run(shared.clone(), rx));
        let fetcher = background.spawn(fetch_loop::run(shared.clone()));
        if shared.config.listen {
            background.spawn(listen::run(shared.clone()));
        }
        background.spawn(lease::run(shared.clone()));
        background.spawn(maintain::run(shared.clone()));
        background.close();
        let supervisor = tokio::spawn(shutdown::supervise(
            shared.clone(),
            token.clone(),
            fetcher,
            completer,
            background,
        ));
        tracing::info!(
            subscriptions = ?shared.subs.iter().map(|s| &*s.name).collect::<Vec<_>>(),
            "pgbus: dispatcher started"
        );
        Ok(DispatcherHandle {
            token,
            supervisor: Some(supervisor),
            shared,
        })
    }
}

/// A running dispatcher. Stop it with [`shutdown`](Self::shutdown), or by cancelling its
/// [`token`](Self::token) and awaiting [`stopped`](Self::stopped). Dropping the handle
/// does not stop the dispatcher.
#[derive(Debug)]
pub struct DispatcherHandle {
    token: CancellationToken,
    supervisor: Option<tokio::task::JoinHandle<Result<ShutdownReport>>>,
    shared: Arc<Shared>,
}

impl DispatcherHandle {
    /// A token that starts a graceful shutdown when cancelled (e.g. from a signal handler).
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// How many deliveries this dispatcher holds right now (queued locally or running).
    pub fn in_flight(&self) -> usize {
        self.shared.held().len()
    }

    /// Graceful shutdown: stop claiming, let running handlers finish within the
    /// configured shutdown timeout, write their outcomes, release what did not finish.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] if the unfinished deliveries could not be released (their leases
    /// then expire and other dispatchers take them over).
    pub async fn shutdown(mut self) -> Result<ShutdownReport> {
        self.token.cancel();
        self.wait().await
    }

    /// Waits until the dispatcher has stopped (after its token was cancelled).
    ///
    /// # Errors
    ///
    /// As [`shutdown`](Self::shutdown).
    pub async fn stopped(mut self) -> Result<ShutdownReport> {
        self.wait().await
    }

    async fn wait(&mut self) -> Result<ShutdownReport> {
        match self.supervisor.take() {
            Some(join) => join
                .await
                .map_err(|e| Error::config("dispatcher", format!("shutdown task failed: {e}")))?,
            None => Ok(ShutdownReport::default()),
        }
    }
}

/// State shared by the dispatcher's tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) pool: PgPool,
    pub(crate) subs: Vec<SubState>,
    pub(crate) config: Config,
    /// Deliveries claimed and not yet written back, by id.
    held: Mutex<HashMap<i64, Held>>,
    /// Wakes the fetch loop: local publishes, notifications, reconnects.
    pub(crate) wake: Arc<Notify>,
    /// A handler finished, so a concurrency slot is free.
    pub(crate) slot_freed: Notify,
    /// Held while a claimer computes and reserves the room it claims into.
    pub(crate) claim_gate: Mutex<()>,
    /// The last claim came back full: the second claimer runs.
    pub(crate) backlog: AtomicBool,
    /// Wakes the second claimer: a backlog began, room was freed, or the fetch loop ends.
    pub(crate) backlog_wake: Notify,
    /// Crash suspects are due: ordinary claims pause until they have run, one at a time.
    pub(crate) solo_pending: AtomicBool,
    /// A claim took back expired leases: look for crash suspects at once.
    pub(crate) took_back: AtomicBool,
    /// Stop claiming and starting handlers.
    pub(crate) stop: CancellationToken,
    /// Shutdown deadline passed: abandon running handlers and pending writes.
    pub(crate) abandon: CancellationToken,
    /// Everything is written back.
    pub(crate) finished: CancellationToken,
    pub(crate) outcomes: mpsc::UnboundedSender<Msg>,
    pub(crate) tasks: TaskTracker,
}

#[derive(Debug)]
pub(crate) struct SubState {
    pub(crate) sub: Subscription,
    pub(crate) name: Arc<str>,
    pub(crate) semaphore: Arc<Semaphore>,
    /// Deliveries of this subscription in the held set.
    pub(crate) outstanding: AtomicUsize,
    /// Room reserved by claims in flight (see the fetch loop's `Reservation`).
    pub(crate) reserved: AtomicUsize,
    /// Claimed deliveries not yet started, in claim order (priority, run_at, id). Each
    /// delivery task takes the front one once it has a concurrency slot, so deliveries
    /// start in this order whichever task the runtime schedules first.
    pub(crate) queue: Mutex<VecDeque<Delivery>>,
}

/// A delivery this dispatcher holds the lease of.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Held {
    /// Index of the subscription in `Shared::subs`.
    pub(crate) sub: usize,
    pub(crate) attempt: i32,
    /// The lease id of the claim that took it: fences its outcome and lease extensions.
    pub(crate) lease: i64,
    /// The subscription's `max_attempts`: an interrupted last attempt ends the delivery.
    pub(crate) max_attempts: i32,
    pub(crate) lease_secs: f64,
    pub(crate) started: bool,
    /// The outcome went to the completer.
    pub(crate) reported: bool,
    pub(crate) extended_at: Instant,
}

impl Shared {
    pub(crate) fn held(&self) -> MutexGuard<'_, HashMap<i64, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn done_kind(&self) -> Kind {
        if self.config.retain_done {
            Kind::DoneKeep
        } else {
            Kind::DoneDelete
        }
    }

    pub(crate) fn mark_started(&self, id: i64) {
        if let Some(h) = self.held().get_mut(&id) {
            h.started = true;
        }
    }

    /// Notes that the outcome of `id` goes to the completer; returns its lease id.
    pub(crate) fn mark_reported(&self, id: i64) -> Option<i64> {
        self.held().get_mut(&id).map(|h| {
            h.reported = true;
            h.lease
        })
    }

    /// Adds a claimed delivery to the held set (and to its subscription's count).
    pub(crate) fn hold(&self, id: i64, held: Held) {
        self.subs[held.sub]
            .outstanding
            .fetch_add(1, Ordering::Relaxed);
        if let Some(old) = self.held().insert(id, held) {
            self.subs[old.sub]
                .outstanding
                .fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Drops written-back deliveries from the held set, freeing their room.
    pub(crate) fn forget(&self, ids: impl Iterator<Item = i64>) {
        {
            let mut held = self.held();
            for id in ids {
                if let Some(h) = held.remove(&id) {
                    self.subs[h.sub].outstanding.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
        self.slot_freed.notify_one();
        self.backlog_wake.notify_one();
    }

    /// Whether a claim is in flight (room is reserved for it).
    pub(crate) fn claiming(&self) -> bool {
        self.subs
            .iter()
            .any(|s| s.reserved.load(Ordering::Relaxed) > 0)
    }

    /// (id, lease id, lease length) of held deliveries whose lease was last extended more
    /// than a third of its length ago.
    pub(crate) fn due_for_extension(&self, now: Instant) -> Vec<(i64, i64, f64)> {
        self.held()
            .iter()
            .filter(|(_, h)| now.duration_since(h.extended_at).as_secs_f64() >= h.lease_secs / 3.0)
            .map(|(id, h)| (*id, h.lease, h.lease_secs))
            .collect()
    }

    pub(crate) fn extended(&self, ids: &[i64], at: Instant) {
        let mut held = self.held();
        for id in ids {
            if let Some(h) = held.get_mut(id) {
                h.extended_at = at;
            }
        }
    }

    pub(crate) fn outstanding_total(&self) -> usize {
        self.subs
            .iter()
            .map(|s| s.outstanding.load(Ordering::Relaxed))
            .sum()
    }
}
