//! `replay` and `redeliver`.

use pgbus::Admin;
use pgbus::admin::{Redelivery, Replay};
use uuid::Uuid;

use crate::cli::ReplayArgs;
use crate::exit::{CliResult, Failure};
use crate::output::{json, spinner};

/// `replay`: in batches, with a progress spinner on a terminal.
pub async fn replay(admin: &Admin, args: &ReplayArgs) -> CliResult {
    let narrowed = args.since.is_some()
        || args.until.is_some()
        || !args.types.is_empty()
        || args.subject.is_some();
    if !narrowed && !args.all {
        return Err(Failure::failed(
            "name the events (--since, --until, --type, --subject) or pass --all",
        ));
    }
    let mut replay = Replay::new(&args.subscription)
        .created(crate::time::range(args.since, args.until))
        .types(args.types.iter().cloned())
        .batch_size(args.batch_size);
    if let Some(s) = &args.subject {
        replay = replay.subject(s);
    }
    let bar = spinner(&format!("replaying to {}", args.subscription));
    let result = admin
        .replay_with_progress(&replay, |r| {
            bar.set_message(format!(
                "replaying to {}: {} events examined, {} deliveries created",
                args.subscription, r.examined, r.created
            ));
        })
        .await;
    bar.finish_and_clear();
    let report = result?;
    if args.json.json {
        return json(&report);
    }
    println!(
        "replayed to {}: {} events examined in {} batches, {} deliveries created",
        args.subscription, report.examined, report.batches, report.created
    );
    Ok(())
}

/// `redeliver`.
pub async fn redeliver(admin: &Admin, event: Uuid, subscription: &str) -> CliResult {
    match admin.redeliver(event, subscription).await? {
        Redelivery::Created { id } => println!("created delivery {id}, due now"),
        Redelivery::Requeued { id, was } => {
            println!("delivery {id} was {was}: pending again, due now, attempts reset")
        }
        Redelivery::AlreadyQueued { id, state } => {
            println!("delivery {id} is {state} already: nothing to do")
        }
        other => println!("{other:?}"),
    }
    Ok(())
}
