//! The dispatcher: claims due deliveries, runs their handlers, writes their outcomes.
//!
//! One file per part: `config` (the builder), `shared` and `signals` (what the tasks
//! share), `fetch_loop` with `claimer`, `room` and `claim` (taking work), `dispatch` and
//! `execute` (running it), `outcome`, `target` and `complete` (deciding and writing what
//! follows), `tx` (transactional handlers: their completion in their own transaction),
//! `lease`, `presence`, `listen`, `maintain`, `ring` (the delivery log's upkeep),
//! `shutdown`, `handle`;
//! `batch` (the log batches held) and `write` (the completer's statements) serve the
//! completer; `connection` and `backoff` serve them all; `pooler` runs them behind a
//! transaction-mode connection pooler.

mod backoff;
mod batch;
mod claim;
mod claim_ordered;
mod claimer;
mod complete;
mod config;
mod connection;
mod dispatch;
mod execute;
mod fetch_loop;
mod handle;
mod lease;
mod listen;
mod maintain;
mod moved_events;
mod outcome;
mod pooler;
mod presence;
mod ring;
mod room;
mod shared;
mod shutdown;
mod signals;
mod target;
mod tx;
mod write;

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::Result;
use crate::registration;
use crate::subscription::Subscription;

pub use config::DispatcherBuilder;
pub use handle::DispatcherHandle;
pub use shutdown::ShutdownReport;

use config::Config;
use shared::Shared;

// Shared with the admin API (src/admin/): the presence locks it checks, and the lock that
// keeps its replays and prunes apart from the dispatchers' pruning.
pub(crate) use connection::KeptConnection;
pub(crate) use maintain::PRUNE_LOCK_KEY;
pub(crate) use presence::NAMESPACE as PRESENCE_NAMESPACE;

/// Delivers events to subscription handlers. Build one with [`Dispatcher::builder`],
/// then [`start`](Dispatcher::start) it.
///
/// ```no_run
/// # use pgbus::{Delivery, HandlerError, RawHandler, Subscription};
/// # struct Audit;
/// # #[pgbus::async_trait]
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

impl Dispatcher {
    /// A builder for a dispatcher on `pool`. The dispatcher uses the pool for claims,
    /// completions and lease extensions, plus one connection for LISTEN and one for its
    /// presence lock (see [`DispatcherBuilder::session_pool`] behind a transaction pooler).
    pub fn builder(pool: PgPool) -> DispatcherBuilder {
        DispatcherBuilder {
            pool,
            subs: Vec::new(),
            config: Config::default(),
        }
    }

    /// Registers the subscriptions in the database and starts delivering.
    ///
    /// A subscription already registered with other patterns takes this dispatcher's
    /// patterns (the dispatcher started last wins), logged as a warning; see
    /// [`Subscription`] for what that means during a rolling deploy.
    ///
    /// # Errors
    ///
    /// [`Error::Database`](crate::Error::Database) if the subscriptions cannot be
    /// registered.
    pub async fn start(self) -> Result<DispatcherHandle> {
        if self.config.transaction_pooler {
            pooler::mark(&self.pool);
        }
        let mut setup = connection::KeptConnection::new(self.pool.clone());
        let subs = &self.subs;
        setup
            .run(async |c| registration::register(c, subs).await)
            .await?;
        // The presence lock needs a session: the session pool's, else the pool's unless it
        // goes through a transaction pooler.
        let session = match (&self.config.session_pool, self.config.transaction_pooler) {
            (Some(session), _) => Some(session),
            (None, false) => Some(&self.pool),
            (None, true) => None,
        };
        let (presence, id) = match session {
            Some(pool) => {
                let presence = presence::Presence::join(pool).await?;
                let id = presence.id;
                // For the admin API: which dispatchers serve which subscriptions.
                registration::record_served(&mut setup, id, subs).await;
                (Some(presence), id)
            }
            None => (None, presence::anonymous_id(&mut setup).await?),
        };
        drop(setup);
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::new(self.pool, self.subs, self.config, id, tx));
        let token = CancellationToken::new();
        let background = TaskTracker::new();
        let completer = background.spawn(complete::run(shared.clone(), rx));
        let fetcher = background.spawn(fetch_loop::run(shared.clone()));
        if shared.config.listen {
            background.spawn(listen::run(shared.clone()));
        }
        background.spawn(lease::run(shared.clone()));
        if let Some(presence) = presence {
            background.spawn(presence::run(shared.clone(), presence));
        }
        background.spawn(maintain::run(shared.clone()));
        background.spawn(ring::run(shared.clone()));
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
