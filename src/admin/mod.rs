//! The admin API: see into pgbus and repair it while dispatchers run.
//!
//! One entry point, [`Admin`], on a pool of the application's database. Its calls are spread
//! over one file per concept:
//!
//! | concept | calls |
//! |---|---|
//! | subscriptions | [`Admin::subscriptions`], [`Admin::subscription`], [`Admin::pause`], [`Admin::resume`], [`Admin::remove_subscription`] |
//! | ordering | [`Admin::blocked_keys`] |
//! | dead letters | [`Admin::dead_letters`], [`Admin::delivery`], [`Admin::retry_dead_letter`], [`Admin::retry_dead_letters`], [`Admin::discard_dead_letter`], [`Admin::discard_dead_letters`] |
//! | replay | [`Admin::replay`], [`Admin::replay_with_progress`], [`Admin::redeliver`] |
//! | history | [`Admin::subject_history`], [`Admin::events`] |
//! | retention | [`Admin::prune`], [`Admin::prune_with_progress`] |
//! | health | [`Admin::health`], [`Admin::dispatchers`], [`Admin::reap_gone_dispatchers`] |
//!
//! Every mutation is one statement, or one transaction per bounded batch, and never writes a
//! running delivery (its lease fences every write): dead letters are retried or discarded
//! only while dead, a redelivery leaves a pending or running delivery alone, a removal leaves
//! running deliveries to finish. Bad input (an unknown subscription, a delivery that is not
//! dead, an empty time range, a limit out of range) is refused with a typed [`Error`]
//! before anything is written.
//!
//! ```no_run
//! # async fn demo(pool: sqlx::PgPool) -> pgbus::Result<()> {
//! use pgbus::admin::{DeadLetterFilter, RetryMode};
//!
//! let admin = pgbus::Admin::new(pool);
//! for sub in admin.subscriptions().await? {
//!     println!("{}: {} pending, {} dead", sub.name, sub.counts.pending, sub.counts.dead);
//! }
//! let filter = DeadLetterFilter::new().subscription("listings.follow-up");
//! let page = admin.dead_letters(&filter, 50, None).await?;
//! for dead in &page.items {
//!     println!("{}: {:?}", dead.id, dead.last_error);
//! }
//! let retried = admin.retry_dead_letters(&filter, RetryMode::ResetAttempts).await?;
//! # Ok(())
//! # }
//! ```
//!
//! [`Error`]: crate::Error

mod blocked_keys;
mod dead_letters;
mod delivery;
mod health;
mod history;
mod replay;
mod retention;
mod subscriptions;
mod types;

use sqlx::PgPool;

pub use blocked_keys::{BlockedBy, BlockedKey};
pub use dead_letters::{DeadLetter, DeadLetterFilter, DeadLetterPage, RetryMode};
pub use delivery::{DeliveryDetail, Failure};
pub use health::{DispatcherInfo, Health, HealthOptions, Problem, ReapedDispatcher};
pub use history::{DeliveryOutcome, EventHistory, EventPage, EventQuery};
pub use replay::{Redelivery, Replay, ReplayReport};
pub use retention::{PruneReport, Retention};
pub use subscriptions::{DeliveryCounts, RemovedSubscription, SubscriptionInfo};
pub use types::{Cursor, EventRecord, TimeRange};

/// The channel publishers `NOTIFY` (with an empty payload) when they publish: `LISTEN` on it
/// to follow new events (the `pgbus tail` command does).
pub const NOTIFY_CHANNEL: &str = crate::sql::NOTIFY_CHANNEL;

/// The most items one page of a listing returns.
pub const MAX_PAGE: u32 = 1000;

/// The admin API on one database: see [the module](self).
///
/// Cheap to clone (it holds a pool). Its calls need the pgbus schema migrated
/// ([`migrate`](crate::migrate)), except [`Admin::health`], which reports a missing or
/// outdated schema.
#[derive(Debug, Clone)]
pub struct Admin {
    pool: PgPool,
}

impl Admin {
    /// The admin API on the database of `pool`.
    pub fn new(pool: PgPool) -> Admin {
        Admin { pool }
    }

    /// The pool it runs on.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}
