//! `migrate`, `prune`, `health`, `dispatchers`.

use pgbus::Admin;
use pgbus::admin::{HealthOptions, Problem, Retention};
use sqlx::PgPool;

use crate::cli::{DispatchersArgs, HealthArgs, PruneArgs};
use crate::exit::{CliResult, Failure};
use crate::output::{confirm, json, spinner, table, time};

/// `migrate`.
pub async fn migrate(pool: &PgPool) -> CliResult {
    pgbus::migrate(pool).await?;
    println!("the pgbus schema is up to date");
    Ok(())
}

/// `prune`: in batches, with a progress spinner on a terminal.
pub async fn prune(admin: &Admin, args: &PruneArgs) -> CliResult {
    let mut retention = Retention::new().batch_size(args.batch_size);
    let mut what = Vec::new();
    if let Some(age) = args.events_older_than {
        retention = retention.events_older_than(age.0);
        what.push(format!(
            "fully delivered events older than {}",
            humantime::format_duration(age.0)
        ));
    }
    if let Some(age) = args.done_older_than {
        retention = retention.done_older_than(age.0);
        what.push(format!(
            "done deliveries older than {}",
            humantime::format_duration(age.0)
        ));
    }
    if what.is_empty() {
        return Err(Failure::failed(
            "say what to prune: --events-older-than and/or --done-older-than",
        ));
    }
    confirm(args.yes.yes, &format!("delete {}", what.join(" and ")))?;
    let bar = spinner("pruning");
    let result = admin
        .prune_with_progress(&retention, |r| {
            bar.set_message(format!(
                "pruning: {} events, {} deliveries deleted",
                r.events, r.deliveries
            ));
        })
        .await;
    bar.finish_and_clear();
    let report = result?;
    if args.json.json {
        return json(&report);
    }
    println!(
        "pruned {} events and {} done deliveries in {} batches",
        report.events, report.deliveries, report.batches
    );
    Ok(())
}

/// `health`: prints the report; unhealthy is exit code 1.
pub async fn health(admin: &Admin, args: &HealthArgs) -> CliResult {
    let health = admin
        .health(&HealthOptions::default().max_lag(args.max_lag.0))
        .await;
    if args.json.json {
        json(&health)?;
    } else {
        println!(
            "{}: schema version {} (this pgbus: {}), {} dispatchers ({} alive)",
            if health.healthy {
                "healthy"
            } else {
                "UNHEALTHY"
            },
            health.schema_version,
            health.known_schema_version,
            health.dispatchers.len(),
            health.dispatchers.iter().filter(|d| d.alive).count()
        );
        for p in &health.problems {
            println!("  - {}", describe(p));
        }
    }
    if health.healthy {
        Ok(())
    } else {
        Err(Failure::refused(format!(
            "unhealthy ({} problems)",
            health.problems.len()
        )))
    }
}

fn describe(p: &Problem) -> String {
    match p {
        Problem::DatabaseUnreachable { error } => format!("database unreachable: {error}"),
        Problem::SchemaBehind { found, known } => {
            format!("schema at version {found}, {known} expected: run `pgbus migrate`")
        }
        Problem::SchemaAhead { found, known } => {
            format!("schema at version {found}, newer than this pgbus ({known})")
        }
        Problem::StaleDispatcher { id, host, pid } => format!(
            "dispatcher {id} ({host}, pid {pid}) is gone: `pgbus dispatchers --reap` \
             takes its leases back"
        ),
        Problem::Lagging {
            subscription,
            lag_seconds,
        } => format!("{subscription}: its oldest due delivery waits for {lag_seconds} s"),
        Problem::Unserved { subscription, due } => {
            format!("{subscription}: {due} due deliveries and no live dispatcher serves it")
        }
        other => format!("{other:?}"),
    }
}

/// `dispatchers`.
pub async fn dispatchers(admin: &Admin, args: &DispatchersArgs) -> CliResult {
    if args.reap {
        let reaped = admin.reap_gone_dispatchers().await?;
        if args.json.json {
            return json(&reaped);
        }
        if reaped.is_empty() {
            println!("no dispatcher is gone");
        }
        for r in &reaped {
            println!(
                "reaped dispatcher {} ({}, pid {}): {} leases expired",
                r.id, r.host, r.pid, r.leases_expired
            );
        }
        return Ok(());
    }
    let list = admin.dispatchers().await?;
    if args.json.json {
        return json(&list);
    }
    if list.is_empty() {
        println!("no dispatcher registered");
        return Ok(());
    }
    let mut t = table(["id", "host", "pid", "started", "alive", "subscriptions"]);
    for d in &list {
        t.add_row(vec![
            d.id.to_string(),
            d.host.clone(),
            d.pid.to_string(),
            time(d.started_at),
            if d.alive { "yes" } else { "GONE" }.to_owned(),
            d.subscriptions.join(", "),
        ]);
    }
    println!("{t}");
    Ok(())
}
