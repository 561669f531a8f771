//! The command line: every command, its arguments and its help.

mod args;

use clap::{Args, Parser, Subcommand};

pub use args::*;

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
