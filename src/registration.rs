//! Registering a dispatcher's subscriptions: created when new, their patterns replaced when
//! they differ (the dispatcher started last wins), every change logged.

use sqlx::PgConnection;

use crate::dispatcher::KeptConnection;
use crate::sql;
use crate::subscription::Subscription;
use crate::validate;

/// Creates or updates the subscriptions' rows. Events published from now on fan out to
/// them; earlier events are not delivered to a new subscription.
pub(crate) async fn register(conn: &mut PgConnection, subs: &[Subscription]) -> sqlx::Result<()> {
    let mut names = Vec::with_capacity(subs.len());
    let mut patterns = Vec::with_capacity(subs.len());
    let mut likes = Vec::with_capacity(subs.len());
    let ordered: Vec<bool> = subs.iter().map(|s| s.ordered).collect();
    let dead_blocks: Vec<bool> = subs.iter().map(|s| s.dead_key.blocks()).collect();
    for s in subs {
        names.push(s.name.as_str());
        // Arrays of arrays must be rectangular in PostgreSQL: pass each list as one text
        // holding a JSON array.
        patterns.push(serde_json::Value::from(s.patterns.clone()).to_string());
        let like: Vec<String> = s
            .patterns
            .iter()
            .map(|p| validate::pattern_to_like(p))
            .collect();
        likes.push(serde_json::Value::from(like).to_string());
    }
    type Changed = (String, Option<Vec<String>>, Option<bool>, i64);
    let changed: Vec<Changed> = sqlx::query_as(sql::REGISTER_SUBSCRIPTIONS)
        .bind(&names)
        .bind(&patterns)
        .bind(&likes)
        .bind(&ordered)
        .bind(&dead_blocks)
        .fetch_all(conn)
        .await?;
    for (name, previous, was_ordered, unordered) in changed {
        let Some(sub) = subs.iter().find(|s| s.name == name) else {
            continue;
        };
        if was_ordered.is_some_and(|o| o != sub.ordered) {
            tracing::warn!(
                subscription = %name,
                ordered = sub.ordered,
                unordered,
                "pgbus: subscription ordering changed by this dispatcher (the last one started \
                 wins); it applies to deliveries published from now on"
            );
        }
        let previous = previous.filter(|p| *p != sub.patterns);
        if was_ordered.is_some() && previous.is_none() {
            continue;
        }
        match previous {
            None => tracing::info!(
                subscription = %name,
                patterns = ?sub.patterns,
                "pgbus: subscription registered"
            ),
            Some(previous) => tracing::warn!(
                subscription = %name,
                ?previous,
                patterns = ?sub.patterns,
                "pgbus: subscription patterns changed by this dispatcher (the last one started \
                 wins); dispatchers running with the previous patterns now share these \
                 deliveries"
            ),
        }
    }
    Ok(())
}

/// Records that dispatcher `id` serves `subs` (read by the admin API: which dispatchers
/// serve a subscription). Best effort: a failure is logged, never fatal to the dispatcher.
pub(crate) async fn record_served(conn: &mut KeptConnection, id: i32, subs: &[Subscription]) {
    let names: Vec<&str> = subs.iter().map(|s| s.name.as_str()).collect();
    let names = &names;
    let recorded = conn
        .run(async |c| {
            sqlx::query(sql::REGISTER_SERVED)
                .bind(id)
                .bind(names)
                .execute(c)
                .await
        })
        .await;
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "pgbus: could not record the subscriptions this dispatcher serves");
    }
}
