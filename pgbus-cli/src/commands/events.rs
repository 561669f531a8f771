//! `events` (by subject, or by type and time) and `tail` (new events, live).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use pgbus::Admin;
use pgbus::admin::{Cursor, EventHistory, EventQuery, EventRecord, TimeRange};
use sqlx::postgres::PgListener;
use uuid::Uuid;

use crate::cli::{EventsArgs, TailArgs};
use crate::exit::{CliResult, Failure};
use crate::output::{clip, json, table, time};

/// How far back each look of `tail` reads again, for transactions that committed after
/// later ones (an event's time is its transaction's start).
const LOOKBACK: chrono::Duration = chrono::Duration::seconds(10);

/// How often `tail` looks without a notification (publishers may not notify).
const POLL: Duration = Duration::from_secs(1);

/// `events`.
pub async fn events(admin: &Admin, args: &EventsArgs) -> CliResult {
    let after = args
        .after
        .as_deref()
        .map(|a| a.parse::<Cursor<Uuid>>().map_err(Failure::failed))
        .transpose()?;
    let page = match &args.subject {
        Some(subject) => admin.subject_history(subject, args.limit, after).await?,
        None => {
            let query = EventQuery::new()
                .types(args.types.iter().cloned())
                .created(crate::time::range(args.since, args.until));
            admin.events(&query, args.limit, after).await?
        }
    };
    if args.json.json {
        return json(&page);
    }
    if page.events.is_empty() {
        println!("no events");
        return Ok(());
    }
    let mut t = table(["published", "type", "subject", "id", "deliveries", "data"]);
    for h in &page.events {
        let e = &h.event;
        t.add_row(vec![
            time(e.created_at),
            e.event_type.clone(),
            e.subject.clone().unwrap_or_default(),
            e.id.to_string(),
            deliveries(h),
            clip(&e.data.to_string(), 40),
        ]);
    }
    println!("{t}");
    if let Some(next) = page.next {
        println!("more: pgbus events ... --after {next}");
    }
    Ok(())
}

/// One line per subscription: `name: state (attempts)`, or `name: no row` (done and deleted).
fn deliveries(h: &EventHistory) -> String {
    if h.deliveries.is_empty() {
        return "none".to_owned();
    }
    h.deliveries
        .iter()
        .map(|d| match d.state {
            Some(state) => format!(
                "{}: {state} ({} attempts)",
                d.subscription,
                d.attempts.unwrap_or(0)
            ),
            None => format!("{}: no row (done)", d.subscription),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `tail`: prints events published from now on, woken by the publishers' notifications
/// and looking every second anyway; stops after `--count` events or at Ctrl-C.
pub async fn tail(admin: &Admin, args: &TailArgs) -> CliResult {
    let mut listener = PgListener::connect_with(admin.pool()).await?;
    listener.listen(pgbus::admin::NOTIFY_CHANNEL).await?;
    let start: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(admin.pool())
        .await?;
    let mut seen: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
    let mut newest = start;
    let mut printed = 0u64;
    if !args.json {
        eprintln!("following new events (Ctrl-C to stop)");
    }
    loop {
        let from = (newest - LOOKBACK).max(start);
        let query = EventQuery::new()
            .types(args.types.iter().cloned())
            .created(TimeRange::since(from));
        let mut after = None;
        loop {
            let page = admin.events(&query, 1000, after).await?;
            for h in page.events {
                let e = h.event;
                if seen.insert(e.id, e.created_at).is_some() {
                    continue;
                }
                newest = newest.max(e.created_at);
                print_event(&e, args.json)?;
                printed += 1;
                if args.count.is_some_and(|n| printed >= n) {
                    return Ok(());
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        seen.retain(|_, at| *at >= from);
        tokio::select! {
            notified = listener.recv() => {
                if notified.is_err() {
                    tokio::time::sleep(POLL).await;
                }
            }
            _ = tokio::time::sleep(POLL) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

fn print_event(e: &EventRecord, as_json: bool) -> CliResult {
    if as_json {
        println!("{}", serde_json::to_string(e)?);
    } else {
        println!(
            "{}  {}  {}  {}  {}",
            time(e.created_at),
            e.event_type,
            e.subject.as_deref().unwrap_or("-"),
            e.id,
            clip(&e.data.to_string(), 80)
        );
    }
    Ok(())
}
