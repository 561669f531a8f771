//! LISTEN for publishes in other processes; a notification wakes the fetch loop.

use std::sync::Arc;

use sqlx::postgres::PgListener;

use super::backoff::Backoff;
use super::shared::Shared;
use crate::sql::NOTIFY_CHANNEL;

/// Keeps a LISTEN connection open until the dispatcher stops claiming, reconnecting with
/// backoff; every notification, and every reconnect (notifications may have been missed),
/// wakes the fetch loop.
pub(crate) async fn run(shared: Arc<Shared>) {
    let signals = &shared.signals;
    let mut backoff = Backoff::new();
    while !signals.stop.is_cancelled() {
        let mut listener = match connect(&shared).await {
            Ok(l) => {
                backoff.succeeded();
                signals.wake.notify_one();
                l
            }
            Err(e) => {
                tracing::warn!(error = %e, "pgbus: LISTEN connection failed; polling meanwhile");
                backoff.wait(&signals.stop).await;
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                n = listener.try_recv() => n,
                _ = signals.stop.cancelled() => return,
            };
            match next {
                Ok(Some(_)) => signals.wake.notify_one(),
                Ok(None) => {
                    // Connection lost; the next try_recv reconnects.
                    tracing::warn!("pgbus: LISTEN connection lost; reconnecting");
                    signals.wake.notify_one();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "pgbus: LISTEN failed; reconnecting");
                    signals.wake.notify_one();
                    break;
                }
            }
        }
    }
}

/// On the session pool when there is one (LISTEN needs a session).
async fn connect(shared: &Shared) -> sqlx::Result<PgListener> {
    let pool = shared.config.session_pool.as_ref().unwrap_or(&shared.pool);
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    Ok(listener)
}
