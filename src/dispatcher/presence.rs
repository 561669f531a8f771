//! Presence: a dispatcher is known to be alive by a session-level advisory lock it holds on a
//! connection of its own. Every 100 ms each dispatcher tries the locks of the others (a
//! transaction-level try, which writes nothing); a lock found free twice, half a second
//! apart, belongs to a dispatcher whose process (or connection to the database) is gone: its
//! leases are expired at once, so its deliveries run again without waiting out their lease.
//!
//! Safety: the lock is taken before the dispatcher's first claim and held until it stops, so
//! a live, connected dispatcher is never reaped, however slow its handlers. A dispatcher cut
//! off from the database for longer than the grace period may be reaped; its outcomes are
//! then fenced out by the lease, as for any lost lease, and it registers again when it is
//! back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;

use super::connection::KeptConnection;
use super::shared::Shared;
use crate::sql;

/// The first key of the two-key advisory locks of dispatchers' presence ("pgbs").
pub(crate) const NAMESPACE: i32 = 0x7067_6273;

/// How often a dispatcher checks its own presence and the others'.
const TICK: Duration = Duration::from_millis(100);

/// A lock free for this long (seen free at both ends) means its dispatcher is gone. A reaper
/// must itself have been present this long since it (re)connected, so that after a
/// database restart the others have had the time to come back.
const GRACE: Duration = Duration::from_millis(500);

/// This dispatcher's registration and the connection that holds its presence lock.
#[derive(Debug)]
pub(crate) struct Presence {
    pub(crate) id: i32,
    conn: KeptConnection,
    /// Since when the presence lock has been held without interruption.
    present_since: Option<Instant>,
    /// Other dispatchers whose lock was found free, and since when.
    absent_since: HashMap<i32, Instant>,
}

impl Presence {
    /// Registers a new dispatcher and takes its lock.
    pub(crate) async fn join(pool: &PgPool) -> sqlx::Result<Presence> {
        let mut presence = Presence {
            id: 0,
            conn: KeptConnection::new(pool.clone()),
            present_since: None,
            absent_since: HashMap::new(),
        };
        presence.id = presence.register(None).await?;
        Ok(presence)
    }

    /// Inserts (or keeps) the row and takes the lock on the kept connection.
    async fn register(&mut self, id: Option<i32>) -> sqlx::Result<i32> {
        let host = hostname();
        let pid = std::process::id() as i32;
        let id = (self.conn)
            .run(async |c| {
                let id: i32 = sqlx::query_scalar(sql::PRESENCE_JOIN)
                    .bind(id)
                    .bind(&host)
                    .bind(pid)
                    .fetch_one(&mut *c)
                    .await?;
                let locked: bool = sqlx::query_scalar(sql::PRESENCE_LOCK)
                    .bind(NAMESPACE)
                    .bind(id)
                    .fetch_one(&mut *c)
                    .await?;
                if !locked {
                    // Only a checker holds it, for the length of one statement.
                    return Err(sqlx::Error::Protocol(format!(
                        "the presence lock of dispatcher {id} is taken"
                    )));
                }
                Ok(id)
            })
            .await?;
        self.present_since = Some(Instant::now());
        Ok(id)
    }

    /// One tick: takes the lock again if the connection was lost (registering again, in
    /// case it was taken for dead meanwhile), then looks for dispatchers that are gone and
    /// expires their leases. Returns how many leases it expired.
    async fn tick(&mut self) -> sqlx::Result<u64> {
        if self.present_since.is_none() {
            self.register(Some(self.id)).await?;
        }
        let id = self.id;
        let absent: Vec<i32> = (self.conn)
            .run(async |c| {
                sqlx::query_scalar(sql::ABSENT_DISPATCHERS)
                    .bind(NAMESPACE)
                    .bind(id)
                    .fetch_all(c)
                    .await
            })
            .await
            .inspect_err(|_| self.present_since = None)?;
        let now = Instant::now();
        self.absent_since.retain(|other, _| absent.contains(other));
        let mut gone = Vec::new();
        for other in absent {
            let since = *self.absent_since.entry(other).or_insert(now);
            if now.duration_since(since) >= GRACE {
                gone.push(other);
            }
        }
        let ready = self.present_since.is_some_and(|s| s.elapsed() >= GRACE);
        if gone.is_empty() || !ready {
            return Ok(0);
        }
        (self.conn)
            .run(async |c| {
                let mut expired = 0;
                for dead in gone {
                    let n: i64 = sqlx::query_scalar(sql::REAP_DISPATCHER)
                        .bind(NAMESPACE)
                        .bind(dead)
                        .fetch_one(&mut *c)
                        .await?;
                    if n > 0 {
                        tracing::warn!(
                            dispatcher = dead,
                            leases = n,
                            "pgbus: a dispatcher is gone; its leases expire now"
                        );
                    }
                    expired += n as u64;
                }
                if expired > 0 {
                    super::ring::sweep(c).await?;
                }
                Ok(expired)
            })
            .await
    }

    /// Unregisters (a clean stop); the lock goes with the connection.
    async fn leave(mut self) {
        let id = self.id;
        let left = (self.conn)
            .run(async |c| sqlx::query(sql::PRESENCE_LEAVE).bind(id).execute(c).await)
            .await;
        if let Err(e) = left {
            tracing::debug!(error = %e, "pgbus: could not unregister the dispatcher");
        }
    }
}

/// An id for a dispatcher without presence (behind a transaction pooler, with no session
/// pool): never registered in `pgbus.dispatchers`, so never reaped; its leases are taken back
/// when they expire.
pub(crate) async fn anonymous_id(conn: &mut KeptConnection) -> sqlx::Result<i32> {
    let id = conn
        .run(async |c| sqlx::query_scalar(sql::DISPATCHER_ID).fetch_one(c).await)
        .await?;
    tracing::info!(
        dispatcher = id,
        "pgbus: no presence behind a transaction pooler without a session pool; a dispatcher \
         that dies keeps its deliveries until their leases expire"
    );
    Ok(id)
}

/// Checks presence every tick until everything is written back, then unregisters.
pub(crate) async fn run(shared: Arc<Shared>, mut presence: Presence) {
    let signals = &shared.signals;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = signals.finished.cancelled() => break,
        }
        match presence.tick().await {
            Ok(0) => {}
            Ok(_) => signals.side_rows_written(),
            Err(e) => {
                tracing::warn!(error = %e, "pgbus: checking dispatchers' presence failed; will retry")
            }
        }
    }
    presence.leave().await;
}
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}
