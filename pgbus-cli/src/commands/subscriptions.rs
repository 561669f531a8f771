//! `status`, `subscriptions list|pause|resume|blocked|remove`.

use pgbus::Admin;

use crate::cli::SubscriptionsCommand;
use crate::exit::CliResult;
use crate::output::{age, confirm, json, opt_time, table, time};

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
        "last claimed",
        "dispatchers",
    ]);
    let now = chrono::Utc::now();
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
            s.last_claimed_at.map_or_else(
                || "-".to_owned(),
                |at| format!("{} ago", age((now - at).to_std().unwrap_or_default())),
            ),
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
        SubscriptionsCommand::Blocked { name, limit, json } => {
            blocked(admin, &name, limit, json.json).await
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

/// `subscriptions blocked`: the blocked keys of an ordered subscription.
async fn blocked(admin: &Admin, name: &str, limit: u32, as_json: bool) -> CliResult {
    let keys = admin.blocked_keys(name, None, limit).await?;
    if as_json {
        return json(&keys);
    }
    if keys.is_empty() {
        println!("{name}: no blocked keys");
        return Ok(());
    }
    let mut t = table([
        "key",
        "blocked by",
        "delivery",
        "attempts",
        "next run",
        "waiting",
        "last error",
    ]);
    for k in &keys {
        t.add_row(vec![
            k.key.clone(),
            format!("{:?}", k.blocked_by).to_lowercase(),
            k.delivery_id.to_string(),
            k.attempts.to_string(),
            match k.blocked_by {
                pgbus::admin::BlockedBy::Retrying => time(k.run_at),
                _ => "-".to_owned(),
            },
            k.waiting.to_string(),
            k.last_error.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
    Ok(())
}
