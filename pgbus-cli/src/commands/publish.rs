//! `publish`: one event, its payload from the argument or standard input.

use pgbus::{NewEvent, PublishOutcome, Publisher};
use serde_json::json;
use sqlx::PgPool;
use tokio::io::AsyncReadExt;

use crate::cli::PublishArgs;
use crate::exit::{CliResult, Failure};

/// Publishes one event in a transaction of its own.
pub async fn publish(pool: &PgPool, args: &PublishArgs) -> CliResult {
    let text = match args.payload.as_deref() {
        Some(p) if p != "-" => p.to_owned(),
        _ => {
            let mut s = String::new();
            tokio::io::stdin().read_to_string(&mut s).await?;
            s
        }
    };
    let data: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Failure::failed(format!("the payload is not JSON: {e}")))?;
    let mut event = NewEvent::raw(&args.event_type, data);
    if let Some(s) = &args.subject {
        event = event.subject(s);
    }
    if let Some(k) = &args.key {
        event = event.key(k);
    }
    if let Some(k) = &args.dedupe_key {
        event = event.dedupe_key(k);
    }
    for h in &args.headers {
        let (name, value) = h
            .split_once('=')
            .ok_or_else(|| Failure::failed(format!("header {h:?} is not name=value")))?;
        event = event.header(name, value);
    }
    let publisher = Publisher::new(args.source.as_str())?;
    let mut tx = pool.begin().await?;
    let outcome = publisher.publish(&mut tx, event).await?;
    tx.commit().await?;
    let (id, deliveries, duplicate) = match outcome {
        PublishOutcome::Published { id, deliveries } => (id, deliveries, false),
        other => (other.id(), 0, other.is_duplicate()),
    };
    if args.json.json {
        let out = json!({ "id": id, "deliveries": deliveries, "duplicate": duplicate });
        return crate::output::json(&out);
    }
    if duplicate {
        println!("duplicate of event {id}: nothing published");
    } else {
        let plural = if deliveries == 1 {
            "delivery"
        } else {
            "deliveries"
        };
        println!("published event {id} ({deliveries} {plural})");
    }
    Ok(())
}
