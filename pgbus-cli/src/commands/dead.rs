//! `dead list|show|retry|discard`.

use pgbus::Admin;
use pgbus::admin::{Cursor, DeadLetterFilter, RetryMode};

use crate::cli::{DeadCommand, DeadFilter};
use crate::exit::{CliResult, Failure};
use crate::output::{age, clip, confirm, json, opt_time, table, time};

/// `dead ...`.
pub async fn run(admin: &Admin, command: DeadCommand) -> CliResult {
    match command {
        DeadCommand::List {
            filter,
            limit,
            before,
            json: j,
        } => list(admin, &filter, limit, before.as_deref(), j.json).await,
        DeadCommand::Show { id, json: j } => show(admin, id, j.json).await,
        DeadCommand::Retry {
            ids,
            filter,
            all,
            keep_attempts,
        } => {
            let mode = if keep_attempts {
                RetryMode::KeepAttempts
            } else {
                RetryMode::ResetAttempts
            };
            if ids.len() == 1 {
                admin.retry_dead_letter(ids[0], mode).await?;
                println!("delivery {} is pending again, due now", ids[0]);
                return Ok(());
            }
            let n = admin
                .retry_dead_letters(&selection(&ids, &filter, all)?, mode)
                .await?;
            println!("{n} dead letters are pending again, due now");
            Ok(())
        }
        DeadCommand::Discard {
            ids,
            filter,
            all,
            yes,
        } => {
            let selected = selection(&ids, &filter, all)?;
            if ids.len() == 1 {
                confirm(yes.yes, &format!("discard dead letter {}", ids[0]))?;
                admin.discard_dead_letter(ids[0]).await?;
                println!("discarded delivery {}", ids[0]);
                return Ok(());
            }
            let page = admin.dead_letters(&selected, 1, None).await?;
            if page.items.is_empty() {
                println!("no dead letter matches");
                return Ok(());
            }
            confirm(yes.yes, "discard every dead letter matching")?;
            let n = admin.discard_dead_letters(&selected).await?;
            println!("discarded {n} dead letters");
            Ok(())
        }
    }
}

/// The library's filter from the command line's.
fn filter(f: &DeadFilter) -> DeadLetterFilter {
    let mut out = DeadLetterFilter::new().finished(crate::time::range(f.since, f.until));
    if let Some(s) = &f.subscription {
        out = out.subscription(s);
    }
    if let Some(t) = &f.event_type {
        out = out.event_type(t);
    }
    if let Some(e) = &f.error {
        out = out.error_contains(e);
    }
    out
}

/// What a retry or discard of many applies to: the ids, or the filter (not nothing unless
/// `--all`).
fn selection(ids: &[i64], f: &DeadFilter, all: bool) -> CliResult<DeadLetterFilter> {
    let narrowed = f.subscription.is_some()
        || f.event_type.is_some()
        || f.since.is_some()
        || f.until.is_some()
        || f.error.is_some();
    if ids.is_empty() && !narrowed && !all {
        return Err(Failure::failed(
            "name delivery ids, a filter (--subscription, --type, --since, --until, --error) \
             or --all",
        ));
    }
    let out = filter(f);
    Ok(if ids.is_empty() {
        out
    } else {
        out.ids(ids.iter().copied())
    })
}

async fn list(
    admin: &Admin,
    f: &DeadFilter,
    limit: u32,
    before: Option<&str>,
    as_json: bool,
) -> CliResult {
    let before = before
        .map(|b| b.parse::<Cursor<i64>>().map_err(Failure::failed))
        .transpose()?;
    let page = admin.dead_letters(&filter(f), limit, before).await?;
    if as_json {
        return json(&page);
    }
    if page.items.is_empty() {
        println!("no dead letters");
        return Ok(());
    }
    let mut t = table([
        "id",
        "subscription",
        "event type",
        "subject",
        "attempts",
        "died",
        "last error",
    ]);
    for d in &page.items {
        t.add_row(vec![
            d.id.to_string(),
            d.subscription.clone(),
            d.event_type
                .clone()
                .unwrap_or_else(|| "(event gone)".into()),
            d.subject.clone().unwrap_or_default(),
            d.attempts.to_string(),
            opt_time(d.finished_at),
            clip(d.last_error.as_deref().unwrap_or(""), 50),
        ]);
    }
    println!("{t}");
    if let Some(next) = page.next {
        println!("more: pgbus dead list --before {next}");
    }
    Ok(())
}

async fn show(admin: &Admin, id: i64, as_json: bool) -> CliResult {
    let d = admin.delivery(id).await?;
    if as_json {
        return json(&d);
    }
    println!("delivery      {}", d.id);
    println!("subscription  {}", d.subscription);
    println!("state         {}", d.state);
    println!("attempts      {}", d.attempts);
    println!("created       {}", time(d.created_at));
    println!("finished      {}", opt_time(d.finished_at));
    println!("last error    {}", d.last_error.as_deref().unwrap_or("-"));
    match &d.event {
        Some(e) => {
            println!("event         {} ({})", e.id, e.event_type);
            println!("source        {}", e.source);
            println!("subject       {}", e.subject.as_deref().unwrap_or("-"));
            println!("published     {}", time(e.created_at));
            if !e.headers.is_empty() {
                println!("headers       {}", serde_json::to_string(&e.headers)?);
            }
            println!("data          {}", serde_json::to_string_pretty(&e.data)?);
        }
        None => println!("event         {} (gone)", d.event_id),
    }
    if d.failures.is_empty() {
        println!("no failures recorded");
        return Ok(());
    }
    let mut t = table(["attempt", "failed at", "took", "error"]);
    for f in &d.failures {
        t.add_row(vec![
            f.attempt.to_string(),
            time(f.failed_at),
            f.duration.map_or_else(|| "-".to_owned(), age),
            f.error.clone(),
        ]);
    }
    println!("failures (last {}):\n{t}", d.failures.len());
    Ok(())
}
