//! Lease extension: while a delivery is held (queued or running) its lease is pushed
//! forward, so a slow handler is never taken over while its dispatcher lives. A batch of the
//! delivery log is not extended: once open for a third of its lease, the completer detaches
//! it (its rows without an outcome get leases of their own, extended here from then on).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::connection::KeptConnection;
use super::shared::{ClaimKey, Shared};
use super::target::{Msg, lease_ids};
use crate::sql;

/// Every third of the shortest lease, extends the leases last extended a third of their
/// own length ago.
pub(crate) async fn run(shared: Arc<Shared>) {
    let shortest = shared
        .subs
        .iter()
        .map(|s| s.sub.lease)
        .min()
        .unwrap_or(Duration::from_secs(30));
    let tick = shortest / 3;
    let mut conn = KeptConnection::new(shared.pool.clone());
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shared.signals.abandon.cancelled() => return,
            _ = shared.signals.finished.cancelled() => return,
        }
        if shared.batches.any() {
            let _ = shared.outcomes.send(Msg::Detach);
        }
        let now = Instant::now();
        let due = shared.due_for_extension(now);
        if due.is_empty() {
            continue;
        }
        let ids: Vec<i64> = due.iter().map(|d| d.0.id).collect();
        let leases = lease_ids(due.iter().map(|d| d.0.lease));
        let lengths: Vec<f64> = due.iter().map(|d| d.1.as_secs_f64()).collect();
        let extended = conn
            .run(async |c| {
                sqlx::query(sql::EXTEND_LEASES)
                    .bind(&ids)
                    .bind(&leases)
                    .bind(&lengths)
                    .execute(c)
                    .await
            })
            .await;
        match extended {
            Ok(r) => {
                let keys: Vec<ClaimKey> = due.iter().map(|d| d.0).collect();
                shared.extended(&keys, now);
                let lost = ids.len() as u64 - r.rows_affected();
                if lost > 0 {
                    tracing::debug!(lost, "pgbus: some leases were no longer held when extended");
                }
            }
            Err(e) => tracing::warn!(error = %e, "pgbus: extending leases failed; will retry"),
        }
    }
}
