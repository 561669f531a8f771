//! Every SQL statement pgbus runs, one file each under `src/sql/`, named after the operation.
//! Each file starts with a header naming its parameters (`$1`, `$2`, ...).
//!
//! The statements that run per publish, claim and completion read their parameters through
//! scalar subqueries, `(SELECT $1::uuid[])`. PostgreSQL plans a prepared statement for its
//! parameters' values ("custom plans") as long as that looks cheaper than its one generic
//! plan, and with the values in hand it always looks cheaper: the size of every array and
//! the value of every flag are known. So these statements were planned again on every call,
//! and planning cost more than running (a publish of one event: 0.30 ms planning, 0.16 ms
//! running). Behind a subquery the values are unknown to the planner in both plans, which
//! then cost the same, and the generic plan, planned once per connection, is kept.

use std::sync::LazyLock;

/// Declares one constant per statement file.
macro_rules! statements {
    ($($(#[$meta:meta])* $name:ident = $file:literal;)*) => {
        $(
            $(#[$meta])*
            #[doc = concat!("`src/sql/", $file, "`")]
            pub(crate) const $name: &str = include_str!(concat!("sql/", $file));
        )*
    };
}

statements! {
    PUBLISH = "publish.sql";
    PUBLISH_PLAIN = "publish_plain.sql";
    DEDUPE_ORIGINALS = "dedupe_originals.sql";
    REGISTER_SUBSCRIPTIONS = "register_subscriptions.sql";
    REGISTER_SERVED = "register_served.sql";
    CLAIM = "claim.sql";
    CLAIM_LOG = "claim_log.sql";
    CLAIM_ORDERED = "claim_ordered.sql";
    COMPLETE_LOG = "complete_log.sql";
    CLOSE_CLAIMS = "close_claims.sql";
    DETACH_CLAIMS = "detach_claims.sql";
    SWEEP_CLAIMS = "sweep_claims.sql";
    LOG_ROTATE = "log_rotate.sql";
    CLAIMS_ROTATE = "claims_rotate.sql";
    LOG_EVACUATE = "log_evacuate.sql";
    PRUNE_CLAIMS = "prune_claims.sql";
    SOLO_DUE = "solo_due.sql";
    COMPLETE = "complete.sql";
    COMPLETE_TX = "complete_tx.sql";
    PRUNE_TX_DONE = "prune_tx_done.sql";
    PRUNE_DEDUPE_KEYS = "prune_dedupe_keys.sql";
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    METRICS_GAUGES = "metrics_gauges.sql";
    EXTEND_LEASES = "extend_leases.sql";
    EVENTS_ROTATE = "events_rotate.sql";
    EVENTS_ANY_SLOT = "events_any_slot.sql";
    PRUNE_DONE = "prune_done.sql";
    DEAD_TUPLES = "dead_tuples.sql";
    VACUUM_DELIVERIES = "vacuum_deliveries.sql";
    TRY_ADVISORY_LOCK = "try_advisory_lock.sql";
    ADVISORY_UNLOCK = "advisory_unlock.sql";
    MIGRATE_LOCK = "migrate_lock.sql";
    MIGRATE_BOOKKEEPING = "migrate_bookkeeping.sql";
    MIGRATE_APPLIED = "migrate_applied.sql";
    MIGRATE_RECORD = "migrate_record.sql";
    SESSION_SETUP = "session_setup.sql";
    POOLED_SETUP = "pooled_setup.sql";
    DISPATCHER_ID = "dispatcher_id.sql";
    PRESENCE_JOIN = "presence_join.sql";
    PRESENCE_LOCK = "presence_lock.sql";
    PRESENCE_LEAVE = "presence_leave.sql";
    ABSENT_DISPATCHERS = "absent_dispatchers.sql";
    REAP_DISPATCHER = "reap_dispatcher.sql";
    // The admin API (src/admin/).
    ADMIN_SUBSCRIPTIONS = "admin_subscriptions.sql";
    ADMIN_SUBSCRIPTION_ORDERED = "admin_subscription_ordered.sql";
    ADMIN_BLOCKED_KEYS = "admin_blocked_keys.sql";
    ADMIN_SUBSCRIPTION_COUNTS = "admin_subscription_counts.sql";
    ADMIN_PAUSE = "admin_pause.sql";
    ADMIN_RESUME = "admin_resume.sql";
    ADMIN_REMOVE_SUBSCRIPTION = "admin_remove_subscription.sql";
    ADMIN_DEAD_LIST = "admin_dead_list.sql";
    ADMIN_DEAD_RETRY = "admin_dead_retry.sql";
    ADMIN_DEAD_DISCARD = "admin_dead_discard.sql";
    ADMIN_DELIVERY = "admin_delivery.sql";
    ADMIN_DELIVERY_FAILURES = "admin_delivery_failures.sql";
    ADMIN_DELIVERY_STATE = "admin_delivery_state.sql";
    ADMIN_REPLAY_LOCK = "admin_replay_lock.sql";
    ADMIN_REPLAY = "admin_replay.sql";
    ADMIN_REDELIVER = "admin_redeliver.sql";
    ADMIN_EVENTS_SUBJECT = "admin_events_subject.sql";
    ADMIN_EVENTS_BY_TYPE = "admin_events_by_type.sql";
    ADMIN_EVENT_DELIVERIES = "admin_event_deliveries.sql";
    ADMIN_DISPATCHERS = "admin_dispatchers.sql";
    ADMIN_PRUNE_LOCK = "admin_prune_lock.sql";
    ADMIN_PRUNE_EVENTS = "admin_prune_events.sql";
}

/// `publish_plain.sql` without the lines between its "uniform cut" markers (the CTEs that
/// only a batch that is not uniform, or is keyed, needs), with the same parameters: the
/// statement of a uniform batch without keys.
pub(crate) static PUBLISH_UNIFORM: LazyLock<String> = LazyLock::new(|| {
    let mut kept = String::with_capacity(PUBLISH_PLAIN.len());
    let mut cut = false;
    for line in PUBLISH_PLAIN.lines() {
        if line.starts_with("-- uniform cut: from here") {
            cut = true;
        } else if line.starts_with("-- uniform cut: ends here") {
            cut = false;
        } else if !cut {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    assert!(!cut, "publish_plain.sql: a uniform cut that does not end");
    kept
});

/// The channel publishers NOTIFY and dispatchers LISTEN on.
pub(crate) const NOTIFY_CHANNEL: &str = "pgbus";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uniform_publish_is_the_plain_one_without_its_cut() {
        let uniform = PUBLISH_UNIFORM.as_str();
        for kept in ["matched AS (", "ev AS (", "fan_slices AS (", "pg_notify("] {
            assert!(uniform.contains(kept), "{kept} kept");
        }
        for cut in [
            "due AS",
            "fan AS (",
            "fan_ordered AS (",
            "fan_later AS (",
            "-- uniform cut:",
        ] {
            assert!(PUBLISH_PLAIN.contains(cut), "{cut} in the plain one");
            assert!(!uniform.contains(cut), "{cut} cut");
        }
    }
}
