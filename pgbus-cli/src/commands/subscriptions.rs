//! `status`, `subscriptions list|pause|resume|remove`.

use pgbus::Admin;

use crate::cli::SubscriptionsCommand;
use crate::exit::CliResult;
use crate::output::{age, confirm, json, opt_time, table};

/// `status` and `subscriptions list`: one row per subscription.
pub async fn list(admin: &Admin, as_json: bool) -> CliResult {
    let subs = admin.subscriptions().await?;
    if as_json {
        return json(&subs);
    }
    if subs.is_empty() {
        println!("no subscriptions registered (a dispatcher registers its own when it starts)");
        return Ok(());
    }
    let mut t = table([
        "subscription",
        "patterns",
        "state",
        "pending",
        "due",
        "running",
        "dead",
        "done",
        "lag",
        "finished 1m/1h",
        "dispatchers",
    ]);
    for s in &subs {
        let c = &s.counts;
        t.add_row(vec![
            s.name.clone(),
            s.patterns.join(", "),
            s.state.to_owned(),
            c.pending.to_string(),
            c.due.to_string(),
            c.running.to_string(),
            c.dead.to_string(),
            c.done.to_string(),
            s.lag.map_or_else(|| "-".to_owned(), age),
            format!("{}/{}", c.finished_last_minute, c.finished_last_hour),
            if s.dispatchers.is_empty() {
                "none".to_owned()
            } else {
                s.dispatchers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ]);
    }
    println!("{t}");
    Ok(())
}

/// `subscriptions pause|resume|remove`.
pub async fn run(admin: &Admin, command: SubscriptionsCommand) -> CliResult {
    match command {
        SubscriptionsCommand::List(j) => list(admin, j.json).await,
        SubscriptionsCommand::Pause { name } => {
            if admin.pause(&name).await? {
                println!("paused {name}: no dispatcher claims its deliveries until it is resumed");
            } else {
                let since = admin.subscription(&name).await?.paused_at;
                println!("{name} was already paused (since {})", opt_time(since));
            }
            Ok(())
        }
        SubscriptionsCommand::Resume { name } => {
            if admin.resume(&name).await? {
                println!("resumed {name}");
            } else {
                println!("{name} was not paused");
            }
            Ok(())
        }
        SubscriptionsCommand::Remove { name, yes } => {
            let info = admin.subscription(&name).await?;
            let c = &info.counts;
            confirm(
                yes.yes,
                &format!(
                    "remove subscription {name} with {} pending, {} dead and {} done deliveries",
                    c.pending, c.dead, c.done
                ),
            )?;
            let removed = admin.remove_subscription(&name).await?;
            println!(
                "removed {name}: {} pending, {} dead, {} done deliveries deleted",
                removed.pending, removed.dead, removed.done
            );
            if removed.running > 0 {
                println!(
                    "{} running deliveries were left to finish under their lease",
                    removed.running
                );
            }
            if !info.dispatchers.is_empty() {
                println!(
                    "note: dispatchers {:?} still serve it and register it again when they start",
                    info.dispatchers
                );
            }
            Ok(())
        }
    }
}
