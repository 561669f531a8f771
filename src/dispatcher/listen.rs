//! LISTEN for publishes in other processes; a notification wakes the fetch loop.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;

use super::Shared;
use crate::publish::NOTIFY_CHANNEL;

/// Keeps a LISTEN connection open until the dispatcher stops claiming, reconnecting with
/// backoff; every notification, and every reconnect (notifications may have been missed),
/// wakes the fetch loop.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(100);
    while !shared.stop.is_cancelled() {
        let mut listener = match connect(&shared).await {
            Ok(l) => {
                backoff = Duration::from_millis(100);
                shared.wake.notify_one();
                l
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "pgbus: LISTEN connection failed; polling meanwhile");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shared.stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                n = listener.try_recv() => n,
                _ = shared.stop.cancelled() => return,
            };
            match next {
                Ok(Some(_)) => shared.wake.notify_one(),
                Ok(None) => {
                    // Connection lost; the next try_recv reconnects.
                    tracing::warn!("pgbus: LISTEN connection lost; reconnecting");
                    shared.wake.notify_one();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "pgbus: LISTEN failed; reconnecting");
                    shared.wake.notify_one();
                    break;
                }
            }
        }
    }
}

async fn connect(shared: &Shared) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect_with(&shared.pool).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    Ok(listener)
}
