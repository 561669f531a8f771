//! Gauges sampled by the dispatcher's maintenance task (feature `metrics`): pending, running
//! and lag of each subscription this dispatcher serves, from one bounded statement
//! (`src/sql/metrics_gauges.sql`) every few seconds, never per claim.

use sqlx::PgConnection;

/// Whether there are gauges to sample (feature `metrics`): without it, no connection is
/// kept for them.
pub(crate) const ENABLED: bool = cfg!(feature = "metrics");

/// Unfinished rows of `pgbus.deliveries` one sample reads at most: past it, their part of
/// the gauges is what it read (see the statement). The delivery log is counted by pack,
/// whole.
#[cfg(feature = "metrics")]
const SAMPLE_CAP: i64 = 100_000;

/// Samples the gauges of the served subscriptions on `conn` (the maintenance task's kept
/// connection, whose plans are made once; nothing without feature `metrics`). `pooled`:
/// behind a transaction pooler (an unnamed statement).
#[cfg_attr(
    not(feature = "metrics"),
    allow(unused_variables, clippy::unused_async)
)]
pub(crate) async fn sample(
    conn: &mut PgConnection,
    names: &[&str],
    pooled: bool,
) -> sqlx::Result<()> {
    #[cfg(feature = "metrics")]
    {
        use super::metrics::{LAG, PENDING, RUNNING};

        let rows: Vec<(String, i64, i64, Option<f64>)> = sqlx::query_as(crate::sql::METRICS_GAUGES)
            .persistent(!pooled)
            .bind(names)
            .bind(SAMPLE_CAP)
            .fetch_all(conn)
            .await?;
        for &name in names {
            let (pending, running, lag) = rows
                .iter()
                .find(|r| r.0 == name)
                .map_or((0, 0, 0.0), |r| (r.1, r.2, r.3.unwrap_or(0.0)));
            let label = || [("subscription", name.to_owned())];
            ::metrics::gauge!(PENDING, &label()).set(pending as f64);
            ::metrics::gauge!(RUNNING, &label()).set(running as f64);
            ::metrics::gauge!(LAG, &label()).set(lag.max(0.0));
        }
    }
    Ok(())
}
