//! The dispatcher's settings and the builder that checks them.

use std::collections::HashSet;
use std::time::Duration;

use sqlx::PgPool;

use super::Dispatcher;
use crate::error::{Error, Result};
use crate::subscription::Subscription;

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
    /// `None`: the event retention.
    pub(crate) dedupe_retention: Option<Option<Duration>>,
    pub(crate) maintenance_interval: Duration,
    pub(crate) vacuum: bool,
    /// The pool goes through a transaction-mode pooler (see `pooler.rs`).
    pub(crate) transaction_pooler: bool,
    /// Connections that keep their session: LISTEN, the presence lock, the vacuum lock.
    pub(crate) session_pool: Option<PgPool>,
    /// Whether `listen` was set explicitly.
    listen_set: bool,
}

impl Config {
    /// How long dedupe keys are kept (`None`: forever).
    pub(crate) fn dedupe_retention(&self) -> Option<Duration> {
        self.dedupe_retention.unwrap_or(self.event_retention)
    }
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
            dedupe_retention: None,
            maintenance_interval: Duration::from_secs(60),
            vacuum: true,
            transaction_pooler: false,
            session_pool: None,
            listen_set: false,
        }
    }
}

/// Builds a [`Dispatcher`]; every setting has a default, checked by [`build`](Self::build).
#[derive(Debug)]
pub struct DispatcherBuilder {
    pub(super) pool: PgPool,
    pub(super) subs: Vec<Subscription>,
    pub(super) config: Config,
}

impl DispatcherBuilder {
    /// Adds a subscription. At least one is needed.
    pub fn subscribe(mut self, subscription: Subscription) -> Self {
        self.subs.push(subscription);
        self
    }

    /// Most deliveries one claim statement takes per subscription; it also bounds how far
    /// the dispatcher claims ahead of its handlers (a few batches per subscription).
    /// Default: 500. Must be 1 to 10,000.
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

    /// Whether to LISTEN for publishes from other processes (one connection of the
    /// [session pool](Self::session_pool), else of the pool). Default: `true`, except behind a
    /// [transaction pooler](Self::transaction_pooler) without a session pool, where the
    /// dispatcher polls only.
    pub fn listen(mut self, listen: bool) -> Self {
        self.config.listen = listen;
        self.config.listen_set = true;
        self
    }

    /// Whether the pool goes through a transaction-mode connection pooler (PgBouncer with
    /// `pool_mode = transaction`, Supavisor, RDS Proxy), where consecutive transactions may
    /// run on different server connections. Then every statement of the dispatcher runs in
    /// a transaction of its own, with no session setting and no prepared statement left
    /// behind; LISTEN, the presence lock and the vacuum lock, which need a session, use the
    /// [session pool](Self::session_pool). Without one the dispatcher polls (every
    /// [poll interval](Self::poll_interval)), has no presence (a dispatcher that dies keeps
    /// its deliveries until their leases expire, instead of half a second after) and leaves
    /// vacuuming to autovacuum. Default: `false`.
    pub fn transaction_pooler(mut self, pooled: bool) -> Self {
        self.config.transaction_pooler = pooled;
        self
    }

    /// A pool of connections that keep their session (straight to PostgreSQL, or through a
    /// session-mode pooler), for LISTEN, the presence lock and the vacuum lock: one or two
    /// connections. Meant for a [transaction pooler](Self::transaction_pooler). Default:
    /// none (they use the pool).
    pub fn session_pool(mut self, pool: PgPool) -> Self {
        self.config.session_pool = Some(pool);
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
    ///
    /// `pgbus.events` is a ring of eight slots; publishing moves to the next slot every
    /// sixth of the retention, and a slot is truncated once it closed longer than the
    /// retention ago: an event is kept at least the retention and at most seven sixths of it
    /// (plus a maintenance interval). Events something still refers to are moved to the
    /// current slot first. With `None` the ring never turns.
    pub fn event_retention(mut self, retention: Option<Duration>) -> Self {
        self.config.event_retention = retention;
        self
    }

    /// How long a dedupe key is kept, from its first event's publish: within it, an event
    /// with the same key in the same scope is a duplicate ([`DedupeScope`](crate::DedupeScope));
    /// after it, the key publishes a new event. `None` keeps keys forever. Default: the
    /// [`event_retention`](Self::event_retention).
    pub fn dedupe_retention(mut self, retention: Option<Duration>) -> Self {
        self.config.dedupe_retention = Some(retention);
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
        if let Some(session) = &c.session_pool
            && super::pooler::same_endpoint(session, &self.pool)
        {
            return Err(Error::config(
                "session_pool",
                "connects where the pool does; it must keep its session (connect straight to \
                 PostgreSQL)",
            ));
        }
        let mut config = self.config;
        if config.transaction_pooler && config.session_pool.is_none() {
            if config.listen_set && config.listen {
                return Err(Error::config(
                    "listen",
                    "LISTEN needs a session: behind a transaction pooler, give a session_pool \
                     or leave listen unset (the dispatcher polls)",
                ));
            }
            config.listen = false;
        }
        Ok(Dispatcher {
            pool: self.pool,
            subs: self.subs,
            config,
        })
    }
}
