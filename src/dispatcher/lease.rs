//! Lease extension: while a delivery is held (queued or running) its lease is pushed
//! forward, so a slow handler is never taken over while its dispatcher lives.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Shared;
use super::connection::KeptConnection;

/// Fenced like outcomes (primary key, still running, lease id among ours), no join; each
/// row finds its lease length by its position in the id array.
const EXTEND_SQL: &str = r#"
UPDATE pgbus.deliveries d
SET run_at = now() + ($3::float8[])[array_position($1::int8[], d.id)] * interval '1 second'
WHERE d.id = ANY($1::int8[]) AND d.state = 1 AND d.lease_id = ANY($2::int8[])
"#;

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
            _ = shared.abandon.cancelled() => return,
            _ = shared.finished.cancelled() => return,
        }
        let now = Instant::now();
        let due = shared.due_for_extension(now);
        if due.is_empty() {
            continue;
        }
        let ids: Vec<i64> = due.iter().map(|d| d.0).collect();
        let lease_ids = super::complete::lease_ids(due.iter().map(|d| &d.1));
        let lengths: Vec<f64> = due.iter().map(|d| d.2).collect();
        let extended = conn
            .run(async |c| {
                sqlx::query(EXTEND_SQL)
                    .bind(&ids)
                    .bind(&lease_ids)
                    .bind(&lengths)
                    .execute(c)
                    .await
            })
            .await;
        match extended {
            Ok(r) => {
                shared.extended(&ids, now);
                let lost = ids.len() as u64 - r.rows_affected();
                if lost > 0 {
                    tracing::debug!(lost, "pgbus: some leases were no longer held when extended");
                }
            }
            Err(e) => tracing::warn!(error = %e, "pgbus: extending leases failed; will retry"),
        }
    }
}
