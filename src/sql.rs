//! Every SQL statement pgbus runs, one file each under `src/sql/`, named after the operation.
//! Each file starts with a header naming its parameters (`$1`, `$2`, ...).

/// Declares one constant per statement file.
macro_rules! statements {
    ($($name:ident = $file:literal;)*) => {
        $(
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
    COMPLETE_LOG = "complete_log.sql";
    CLOSE_CLAIMS = "close_claims.sql";
    DETACH_CLAIMS = "detach_claims.sql";
    SWEEP_CLAIMS = "sweep_claims.sql";
    LOG_ROTATE = "log_rotate.sql";
    PRUNE_CLAIMS = "prune_claims.sql";
    SOLO_DUE = "solo_due.sql";
    COMPLETE = "complete.sql";
    EXTEND_LEASES = "extend_leases.sql";
    PRUNE_EVENTS = "prune_events.sql";
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

/// The channel publishers NOTIFY and dispatchers LISTEN on.
pub(crate) const NOTIFY_CHANNEL: &str = "pgbus";
