//! The command line: every command, its arguments and its help.

use clap::{Args, Parser, Subcommand};

use crate::time::{Age, Moment};

const ABOUT: &str = "Operate a pgbus database: subscriptions, dead letters, replay, event \
history, tail, publish, prune and health checks.";

const EXIT_CODES: &str = "\
Exit codes:
  0  success (health: healthy)
  1  health: unhealthy; or the request was refused: an unknown subscription, delivery or
     event, a delivery that is not dead, a confirmation declined
  2  usage errors, the database cannot be reached, and any other error

Examples:
  pgbus status
  pgbus dead list --subscription listings.follow-up
  pgbus dead show 42
  pgbus dead retry 42
  pgbus replay --subscription audit.orders --since 2026-12-01T00:00:00Z
  pgbus events --subject property/42
  pgbus tail --type 'property.*'
  echo '{\"id\": 7}' | pgbus publish --type property.created --subject property/7
  pgbus health --max-lag 5m || echo unhealthy";

/// `pgbus`: the command-line tool of pgbus.
#[derive(Debug, Parser)]
#[command(name = "pgbus", version, about = ABOUT, after_help = EXIT_CODES)]
pub struct Cli {
    /// The database, as a PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the pgbus schema (idempotent).
    Migrate,
    /// Subscriptions with their counts and lag.
    #[command(after_help = "Example:\n  pgbus status --json | jq '.[] | {name, lag_seconds}'")]
    Status(Json),
    /// List, pause, resume or remove subscriptions.
    #[command(subcommand)]
    Subscriptions(SubscriptionsCommand),
    /// Dead letters: list, show, retry, discard.
    #[command(subcommand)]
    Dead(DeadCommand),
    /// Create deliveries for a subscription from events already published (backfill).
    #[command(
        after_help = "Examples:\n  pgbus replay --subscription audit.orders --all\n  \
        pgbus replay --subscription audit.orders --since 2h --type order.placed\n  \
        pgbus replay --subscription crm.sync --subject contact/9"
    )]
    Replay(ReplayArgs),
    /// Deliver one event to one subscription again, now.
    #[command(after_help = "Example:\n  pgbus redeliver 0193a6b1-... --subscription crm.sync")]
    Redeliver {
        /// The event id.
        event: uuid::Uuid,
        /// The subscription.
        #[arg(long, short)]
        subscription: String,
    },
    /// Events by subject (an entity's history), or by type and time, with their deliveries.
    #[command(after_help = "Examples:\n  pgbus events --subject property/42\n  \
        pgbus events --type 'invoice.*' --since 1d --limit 20")]
    Events(EventsArgs),
    /// Follow new events live (LISTEN on the channel publishers notify).
    #[command(after_help = "Example:\n  pgbus tail --type 'property.*' --json")]
    Tail(TailArgs),
    /// Publish one event: a JSON payload from the argument, or from standard input.
    #[command(
        after_help = "Examples:\n  pgbus publish --type property.created '{\"id\": 7}'\n  \
        cat payload.json | pgbus publish --type property.created --subject property/7"
    )]
    Publish(PublishArgs),
    /// Delete old events and retained done deliveries, as retention does.
    #[command(
        after_help = "Example:\n  pgbus prune --events-older-than 30d --done-older-than 7d --yes"
    )]
    Prune(PruneArgs),
    /// Check the database, schema, dispatchers and lag: exit 0 healthy, 1 unhealthy.
    #[command(after_help = "Example (a container probe):\n  pgbus health --max-lag 2m")]
    Health(HealthArgs),
    /// The registered dispatchers, alive or gone.
    Dispatchers(DispatchersArgs),
}

/// `--json`.
#[derive(Debug, Args)]
pub struct Json {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `--yes`.
#[derive(Debug, Args)]
pub struct Yes {
    /// Do not ask for confirmation (required when standard input is not a terminal).
    #[arg(long, short)]
    pub yes: bool,
}

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
