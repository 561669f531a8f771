//! One module per group of commands; [`run`] sends each command to its module.

mod dead;
mod events;
mod ops;
mod publish;
mod replay;
mod subscriptions;

use std::time::Duration;

use pgbus::Admin;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::cli::{Cli, Command, SubscriptionsCommand};
use crate::exit::{CliResult, Failure};

/// Runs one command.
pub async fn run(cli: Cli) -> CliResult {
    let url = cli
        .database_url
        .as_deref()
        .ok_or_else(|| Failure::failed("no database: pass --database-url or set DATABASE_URL"))?;
    let command = match cli.command {
        // Health reports an unreachable database itself (exit code 1).
        Command::Health(args) => {
            return ops::health(&Admin::new(pool(url, true).await?), &args).await;
        }
        command => command,
    };
    let pool = pool(url, false).await?;
    let admin = Admin::new(pool.clone());
    match command {
        Command::Migrate => ops::migrate(&pool).await,
        Command::Status(json) | Command::Subscriptions(SubscriptionsCommand::List(json)) => {
            subscriptions::list(&admin, json.json).await
        }
        Command::Subscriptions(command) => subscriptions::run(&admin, command).await,
        Command::Dead(command) => dead::run(&admin, command).await,
        Command::Replay(args) => replay::replay(&admin, &args).await,
        Command::Redeliver {
            event,
            subscription,
        } => replay::redeliver(&admin, event, &subscription).await,
        Command::Events(args) => events::events(&admin, &args).await,
        Command::Tail(args) => events::tail(&admin, &args).await,
        Command::Publish(args) => publish::publish(&pool, &args).await,
        Command::Prune(args) => ops::prune(&admin, &args).await,
        Command::Dispatchers(args) => ops::dispatchers(&admin, &args).await,
        Command::Health(args) => ops::health(&admin, &args).await,
    }
}

/// A small pool; connected now (a connection error is exit code 2) unless `lazy`.
async fn pool(url: &str, lazy: bool) -> CliResult<PgPool> {
    let options = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5));
    let pool = if lazy {
        options.connect_lazy(url)
    } else {
        options.connect(url).await
    };
    pool.map_err(|e| Failure::failed(format!("cannot connect to the database: {e}")))
}
