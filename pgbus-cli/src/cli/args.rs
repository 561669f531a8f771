//! The arguments of the commands that take more than a flag or two.

use clap::{Args, Subcommand};

use super::{Json, Yes};
use crate::time::{Age, Moment};

/// `pgbus subscriptions ...`.
#[derive(Debug, Subcommand)]
pub enum SubscriptionsCommand {
    /// Every subscription (as `status`).
    List(Json),
    /// Pause: claims skip it on every dispatcher; running deliveries finish.
    Pause {
        /// The subscription.
        name: String,
    },
    /// Resume a paused subscription.
    Resume {
        /// The subscription.
        name: String,
    },
    /// The blocked keys of an ordered subscription: keys whose oldest delivery is retrying
    /// or dead (under the blocking dead-key policy), holding back the key's later ones.
    #[command(after_help = "Example:\n  pgbus subscriptions blocked deals.pipeline --limit 20")]
    Blocked {
        /// The subscription.
        name: String,
        /// Most keys listed (1-1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        json: Json,
    },
    /// Remove a subscription with its pending, dead and done deliveries.
    Remove {
        /// The subscription.
        name: String,
        #[command(flatten)]
        yes: Yes,
    },
}

/// Which dead letters.
#[derive(Debug, Args, Clone)]
pub struct DeadFilter {
    /// Only this subscription's.
    #[arg(long, short)]
    pub subscription: Option<String>,
    /// Only events of this type pattern (e.g. `invoice.*`).
    #[arg(long = "type", short = 't')]
    pub event_type: Option<String>,
    /// Only those that died at or after this time (RFC 3339, or an age such as `2h`).
    #[arg(long)]
    pub since: Option<Moment>,
    /// Only those that died before this time (RFC 3339, or an age such as `10m`).
    #[arg(long)]
    pub until: Option<Moment>,
    /// Only those whose last error contains this text (ignoring case).
    #[arg(long)]
    pub error: Option<String>,
}

/// `pgbus dead ...`.
#[derive(Debug, Subcommand)]
pub enum DeadCommand {
    /// Dead letters, newest first.
    #[command(
        after_help = "Example:\n  pgbus dead list --type 'invoice.*' --error timeout --limit 20"
    )]
    List {
        #[command(flatten)]
        filter: DeadFilter,
        /// At most this many (1-1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Start after this cursor (printed under the previous page).
        #[arg(long)]
        before: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// One delivery in full: its event, attempts and failure history.
    Show {
        /// The delivery id.
        id: i64,
        #[command(flatten)]
        json: Json,
    },
    /// Make dead letters pending again, due now: by id, or every one matching the filter.
    #[command(after_help = "Examples:\n  pgbus dead retry 42 43\n  \
        pgbus dead retry --subscription billing.charge --error 'timed out' --keep-attempts")]
    Retry {
        /// Delivery ids (none: every dead letter matching the filter; with no filter, --all).
        ids: Vec<i64>,
        #[command(flatten)]
        filter: DeadFilter,
        /// Every dead letter.
        #[arg(long)]
        all: bool,
        /// Keep the attempts made (one more attempt) instead of a fresh set.
        #[arg(long)]
        keep_attempts: bool,
    },
    /// Delete dead letters: by id, or every one matching the filter.
    Discard {
        /// Delivery ids (none: every dead letter matching the filter; with no filter, --all).
        ids: Vec<i64>,
        #[command(flatten)]
        filter: DeadFilter,
        /// Every dead letter.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        yes: Yes,
    },
}

/// `pgbus replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The subscription to deliver to.
    #[arg(long, short)]
    pub subscription: String,
    /// Events published at or after this time (RFC 3339, or an age such as `2h`).
    #[arg(long)]
    pub since: Option<Moment>,
    /// Events published before this time.
    #[arg(long)]
    pub until: Option<Moment>,
    /// Only events of these type patterns (repeatable).
    #[arg(long = "type", short = 't')]
    pub types: Vec<String>,
    /// Only this subject's events.
    #[arg(long)]
    pub subject: Option<String>,
    /// Every event matching the subscription (required when no filter is given).
    #[arg(long)]
    pub all: bool,
    /// Events examined per transaction (1-50000).
    #[arg(long, default_value_t = 5000)]
    pub batch_size: u32,
    #[command(flatten)]
    pub json: Json,
}

/// `pgbus events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// An entity's events, in publish order.
    #[arg(long, conflicts_with_all = ["types", "since", "until"])]
    pub subject: Option<String>,
    /// Events of these type patterns (repeatable).
    #[arg(long = "type", short = 't')]
    pub types: Vec<String>,
    /// Published at or after this time (RFC 3339, or an age such as `1d`).
    #[arg(long)]
    pub since: Option<Moment>,
    /// Published before this time.
    #[arg(long)]
    pub until: Option<Moment>,
    /// At most this many (1-1000).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Start after this cursor (printed under the previous page).
    #[arg(long)]
    pub after: Option<String>,
    #[command(flatten)]
    pub json: Json,
}

/// `pgbus tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// Only events of these type patterns (repeatable).
    #[arg(long = "type", short = 't')]
    pub types: Vec<String>,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<u64>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// `pgbus publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The event type.
    #[arg(long = "type", short = 't')]
    pub event_type: String,
    /// The JSON payload; `-` or nothing reads it from standard input.
    pub payload: Option<String>,
    /// The entity it is about.
    #[arg(long)]
    pub subject: Option<String>,
    /// The ordering key.
    #[arg(long)]
    pub key: Option<String>,
    /// A dedupe key: a second event with it is a duplicate and writes nothing.
    #[arg(long)]
    pub dedupe_key: Option<String>,
    /// A header, `name=value` (repeatable).
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    /// The publishing service stored with the event.
    #[arg(long, default_value = "pgbus-cli")]
    pub source: String,
    #[command(flatten)]
    pub json: Json,
}

/// `pgbus prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Delete fully delivered events older than this (e.g. `30d`).
    #[arg(long)]
    pub events_older_than: Option<Age>,
    /// Delete retained done deliveries finished longer ago than this (e.g. `7d`).
    #[arg(long)]
    pub done_older_than: Option<Age>,
    /// Rows per transaction (1-100000).
    #[arg(long, default_value_t = 5000)]
    pub batch_size: u32,
    #[command(flatten)]
    pub yes: Yes,
    #[command(flatten)]
    pub json: Json,
}

/// `pgbus health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// A subscription whose oldest due delivery waits longer than this is unhealthy.
    #[arg(long, default_value = "5m")]
    pub max_lag: Age,
    #[command(flatten)]
    pub json: Json,
}

/// `pgbus dispatchers`.
#[derive(Debug, Args)]
pub struct DispatchersArgs {
    /// Remove the dispatchers that are gone and expire their leases (what running
    /// dispatchers do by themselves).
    #[arg(long)]
    pub reap: bool,
    #[command(flatten)]
    pub json: Json,
}
