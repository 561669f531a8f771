//! Presence: a dispatcher is known to be alive by a session-level advisory lock it holds on a
//! connection of its own, and a heartbeat. When another dispatcher's heartbeat is stale and
//! its lock is free, its process (or its connection to the database) is gone: its leases are
//! expired at once, so its deliveries run again without waiting out their lease.
//!
//! Safety: the lock is taken before the dispatcher's first claim and held until it stops, so
//! a live, connected dispatcher is never reaped, however slow its handlers. A dispatcher cut
//! off from the database for longer than the grace period may be reaped; its outcomes are
//! then fenced out by the lease, as for any lost lease.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;

use super::connection::KeptConnection;
use super::shared::Shared;
use crate::sql;

/// The first key of the two-key advisory locks of dispatchers' presence ("pgbs").
const NAMESPACE: i32 = 0x7067_6273;

/// How often a dispatcher refreshes its heartbeat and looks for dead dispatchers.
const HEARTBEAT: Duration = Duration::from_millis(250);

/// A heartbeat older than this (two beats), with a free lock, means the dispatcher is gone. A reaper
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
}

impl Presence {
    /// Registers a new dispatcher and takes its lock.
    pub(crate) async fn join(pool: &PgPool) -> sqlx::Result<Presence> {
        let mut presence = Presence {
            id: 0,
            conn: KeptConnection::new(pool.clone()),
            present_since: None,
        };
        presence.id = presence.register(None).await?;
        Ok(presence)
    }

    /// Inserts (or refreshes) the row and takes the lock on the kept connection.
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
                    // Only a reaper holds it, for the length of its transaction.
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

    /// One heartbeat: keeps the lock (reconnecting and locking again after an error) and
    /// refreshes the row (registering again if it was reaped).
    async fn beat(&mut self) -> sqlx::Result<()> {
        if self.present_since.is_none() {
            self.register(Some(self.id)).await?;
            return Ok(());
        }
        let id = self.id;
        let alive: Option<i32> = (self.conn)
            .run(async |c| {
                sqlx::query_scalar(sql::PRESENCE_HEARTBEAT)
                    .bind(id)
                    .fetch_optional(c)
                    .await
            })
            .await
            .inspect_err(|_| self.present_since = None)?;
        if alive.is_none() {
            tracing::warn!(
                dispatcher = id,
                "pgbus: this dispatcher was taken for dead; registering again"
            );
            self.register(Some(id)).await?;
        }
        Ok(())
    }

    /// Expires the leases of dispatchers that are gone; returns how many.
    async fn reap(&mut self) -> sqlx::Result<u64> {
        let ready = self
            .present_since
            .is_some_and(|since| since.elapsed() >= GRACE);
        if !ready {
            return Ok(0);
        }
        let id = self.id;
        (self.conn)
            .run(async |c| {
                let stale: Vec<i32> = sqlx::query_scalar(sql::STALE_DISPATCHERS)
                    .bind(GRACE.as_secs_f64())
                    .bind(id)
                    .fetch_all(&mut *c)
                    .await?;
                let mut expired = 0;
                for dead in stale {
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

/// Heartbeats and reaps until everything is written back, then unregisters.
pub(crate) async fn run(shared: Arc<Shared>, mut presence: Presence) {
    let signals = &shared.signals;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT) => {}
            _ = signals.finished.cancelled() => break,
        }
        if let Err(e) = presence.beat().await {
            tracing::warn!(error = %e, "pgbus: dispatcher heartbeat failed; will retry");
            continue;
        }
        match presence.reap().await {
            Ok(0) => {}
            Ok(_) => signals.wake.notify_one(),
            Err(e) => tracing::warn!(error = %e, "pgbus: looking for dead dispatchers failed"),
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
