//! pgbus quickstart: a tiny listings service.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! Without `DATABASE_URL` it starts a throwaway PostgreSQL from the local server binaries
//! (Debian package `postgresql`) and removes it at the end. With `DATABASE_URL` set it uses
//! that database: its business tables live in a schema of their own, `pgbus_quickstart`,
//! recreated on every run, and only the quickstart's own pgbus rows are cleaned up.
//!
//! What it shows:
//! - `property.created` is published inside the transaction that inserts the property, so
//!   the event exists exactly when the property does; a rolled-back transaction publishes
//!   nothing;
//! - two subscriptions get their own delivery of each event: `listings.follow-up` (a typed
//!   handler) and `analytics.record` (a raw handler on `property.*`);
//! - a failing handler is retried after the delay it asks for, and succeeds later;
//! - a malformed payload cannot reach the typed handler: that delivery is dead at once,
//!   while the other subscription handles the same event normally;
//! - the dead letter as an operator sees it, through the admin API (`pgbus::Admin`), with
//!   the `pgbus` command-line commands that show the same;
//! - a graceful shutdown through the dispatcher's cancellation token.
//!
//! Library logs are off by default; `RUST_LOG=pgbus=debug` shows them.

use std::time::{Duration, Instant};

use pgbus::admin::DeadLetterFilter;
use pgbus::{
    Delivery, Dispatcher, Event, Handler, HandlerError, NewEvent, PublishOutcome, Publisher,
    RawHandler, RetryPolicy, Subscription,
};
use pgbus_testing::{Cluster, ClusterOptions};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use uuid::Uuid;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The quickstart's schema for its business tables (dropped and recreated on every run).
const SCHEMA: &str = "pgbus_quickstart";
/// The `source` of every event the quickstart publishes.
const SOURCE: &str = "pgbus-quickstart";
const FOLLOW_UP: &str = "listings.follow-up";
const ANALYTICS: &str = "analytics.record";
/// The follow-up handler fails the first two attempts for this property.
const FLAKY_TITLE: &str = "Loft by the harbour";
/// The delay the failing handler asks for.
const RETRY_DELAY: Duration = Duration::from_millis(200);

/// The typed event: part of the service's event catalog.
#[derive(Debug, Serialize, Deserialize)]
struct PropertyCreated {
    property_id: i64,
    title: String,
    city: String,
    price_eur: i64,
}

impl Event for PropertyCreated {
    const TYPE: &'static str = "property.created";
}

/// `listings.follow-up`: schedules a call with the owner of every new property.
struct ScheduleFollowUp {
    pool: PgPool,
}

#[async_trait::async_trait]
impl Handler<PropertyCreated> for ScheduleFollowUp {
    async fn handle(
        &self,
        event: PropertyCreated,
        delivery: &Delivery,
    ) -> Result<(), HandlerError> {
        if event.title == FLAKY_TITLE && delivery.attempt <= 2 {
            println!(
                "  [{FOLLOW_UP}] property {}: attempt {} failed (the CRM timed out), retrying in {} ms",
                event.property_id,
                delivery.attempt,
                RETRY_DELAY.as_millis()
            );
            return Err(HandlerError::retry_after("the CRM timed out", RETRY_DELAY));
        }
        // Idempotent: a delivery runs at least once, so a second run of the same event
        // (keyed by its id) inserts nothing. A database error converts into a retry.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {SCHEMA}.follow_ups (event_id, property_id, call_on)
             VALUES ($1, $2, current_date + 1) ON CONFLICT (event_id) DO NOTHING"
        )))
        .bind(delivery.event.id)
        .bind(event.property_id)
        .execute(&self.pool)
        .await?;
        println!(
            "  [{FOLLOW_UP}] property {}: follow-up call scheduled for tomorrow (attempt {})",
            event.property_id, delivery.attempt
        );
        Ok(())
    }
}

/// `analytics.record`: counts every `property.*` event, whatever its payload.
struct RecordAnalytics {
    pool: PgPool,
}

#[async_trait::async_trait]
impl RawHandler for RecordAnalytics {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let event = &delivery.event;
        let city = event.data.get("city").and_then(|c| c.as_str());
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {SCHEMA}.analytics (event_id, event_type, city)
             VALUES ($1, $2, $3) ON CONFLICT (event_id) DO NOTHING"
        )))
        .bind(event.id)
        .bind(&event.event_type)
        .bind(city)
        .execute(&self.pool)
        .await?;
        println!(
            "  [{ANALYTICS}] recorded {} ({})",
            event.event_type,
            event.subject.as_deref().unwrap_or("no subject")
        );
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .init();
    let started = Instant::now();
    println!("pgbus quickstart: a small listings service\n");

    // 1. A database.
    let (cluster, url) = match pgbus_testing::database_url_from_env() {
        Some(url) => {
            println!("using the database in DATABASE_URL");
            (None, url)
        }
        None => {
            println!("DATABASE_URL is not set: starting a throwaway PostgreSQL ...");
            let cluster = Cluster::start(ClusterOptions::default()).await?;
            let mut admin = PgConnection::connect(&cluster.url("postgres")).await?;
            admin.execute("CREATE DATABASE quickstart").await?;
            admin.close().await?;
            println!(
                "  {} on port {}, database \"quickstart\" created",
                cluster.settings_summary(),
                cluster.port()
            );
            let url = cluster.url("quickstart");
            (Some(cluster), url)
        }
    };
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&url)
        .await?;

    // 2. The pgbus schema (idempotent, safe on every start) and the service's own tables.
    pgbus::migrate(&pool).await?;
    create_business_tables(&pool).await?;
    clean_previous_runs(&pool).await?;
    println!(
        "migrated the pgbus schema; created tables {SCHEMA}.properties, follow_ups, analytics"
    );

    // 3. Subscriptions are registered when the dispatcher starts; only events published
    //    from then on are delivered to them, so start it before publishing.
    let dispatcher = Dispatcher::builder(pool.clone())
        .subscribe(
            Subscription::to::<PropertyCreated, _>(
                FOLLOW_UP,
                ScheduleFollowUp { pool: pool.clone() },
            )
            .retry(
                RetryPolicy::default()
                    .max_attempts(5)
                    .base_delay(Duration::from_millis(100))
                    .max_delay(Duration::from_secs(1)),
            ),
        )
        .subscribe(Subscription::raw(
            ANALYTICS,
            ["property.*"],
            RecordAnalytics { pool: pool.clone() },
        ))
        .poll_interval(Duration::from_millis(100))
        .retain_done(true) // keep done rows, for the summary table below
        .shutdown_timeout(Duration::from_secs(5))
        .build()?
        .start()
        .await?;
    println!("dispatcher started with 2 subscriptions:");
    println!("  {FOLLOW_UP:<19} <- property.created (typed handler for PropertyCreated)");
    println!("  {ANALYTICS:<19} <- property.*       (raw handler)");

    // Ctrl-C cancels the dispatcher's token: a graceful shutdown.
    let token = dispatcher.token();
    {
        let token = token.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                println!("Ctrl-C: shutting down gracefully");
                token.cancel();
            }
        });
    }

    // 4. Publish, each event inside the transaction that inserts its property.
    let publisher = Publisher::new(SOURCE)?;
    let mut event_ids = Vec::new();
    println!(
        "\npublishing property.created inside each property's own transaction \
         (the dispatcher delivers as soon as a transaction commits; handler lines start \
         with [subscription]):"
    );
    for (title, city, price_eur) in [
        ("Sunny flat with terrace", "Madrid", 320_000),
        (FLAKY_TITLE, "Valencia", 275_000),
        ("Village house with garden", "Girona", 190_000),
    ] {
        let mut tx = pool.begin().await?;
        let property_id: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {SCHEMA}.properties (title, city, price_eur) VALUES ($1, $2, $3)
             RETURNING id"
        )))
        .bind(title)
        .bind(city)
        .bind(price_eur)
        .fetch_one(&mut *tx)
        .await?;
        let event = PropertyCreated {
            property_id,
            title: title.to_owned(),
            city: city.to_owned(),
            price_eur,
        };
        let outcome = publisher
            .publish(
                &mut tx,
                NewEvent::from_event(&event)?.subject(format!("property/{property_id}")),
            )
            .await?;
        tx.commit().await?;
        event_ids.push(outcome.id());
        println!(
            "  property {property_id} \"{title}\" ({city}): committed, {} deliveries",
            deliveries(&outcome)
        );
    }

    // A transaction that rolls back takes its event with it.
    let mut tx = pool.begin().await?;
    let property_id: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {SCHEMA}.properties (title, city, price_eur)
         VALUES ('Duplex that was never listed', 'Sevilla', 410000) RETURNING id"
    )))
    .fetch_one(&mut *tx)
    .await?;
    let event = PropertyCreated {
        property_id,
        title: "Duplex that was never listed".to_owned(),
        city: "Sevilla".to_owned(),
        price_eur: 410_000,
    };
    let outcome = publisher.publish(&mut tx, &event).await?;
    tx.rollback().await?;
    let (events, properties): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT (SELECT count(*) FROM pgbus.events WHERE id = $1),
                (SELECT count(*) FROM {SCHEMA}.properties WHERE id = $2)"
    )))
    .bind(outcome.id())
    .bind(property_id)
    .fetch_one(&pool)
    .await?;
    println!(
        "  property {property_id} \"Duplex that was never listed\": published ({} deliveries), \
         then the transaction ROLLED BACK: {events} event rows, {properties} property rows, \
         nothing to deliver",
        deliveries(&outcome)
    );

    // A poison event: a legacy importer publishes a raw property.created whose payload does
    // not fit PropertyCreated.
    let mut tx = pool.begin().await?;
    let outcome = publisher
        .publish(
            &mut tx,
            NewEvent::raw(
                "property.created",
                serde_json::json!({ "property_id": "P-0017", "title": "imported", "city": "Bilbao" }),
            )
            .subject("import/P-0017"),
        )
        .await?;
    tx.commit().await?;
    event_ids.push(outcome.id());
    println!(
        "  legacy importer: property.created with property_id \"P-0017\" (a string, not a \
         number): committed, {} deliveries",
        deliveries(&outcome)
    );

    // 5. Wait (bounded) until every delivery of these events is done or dead.
    println!("\nwaiting until every delivery is done or dead:");
    let settled = wait_until_settled(&pool, &event_ids, &token, Duration::from_secs(20)).await?;
    if !settled {
        println!("\n(stopped waiting: deliveries are still pending)");
    }

    // 6. What became of every delivery; the dead letter through the admin API.
    print_summary(&pool, &event_ids).await?;
    show_dead_letters(&pool).await?;
    let (follow_ups, analytics): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT (SELECT count(*) FROM {SCHEMA}.follow_ups), (SELECT count(*) FROM {SCHEMA}.analytics)"
    )))
    .fetch_one(&pool)
    .await?;
    println!("business tables: {follow_ups} follow-up calls scheduled, {analytics} analytics rows");

    // 7. Graceful shutdown: stop claiming, let running handlers finish, release the rest.
    let report = dispatcher.shutdown().await?;
    println!(
        "\ndispatcher shut down gracefully: handlers finished in time: {}, deliveries released: {}",
        if report.finished_in_time { "yes" } else { "no" },
        report.released
    );
    match cluster {
        Some(cluster) => {
            pool.close().await;
            cluster.stop_fast().await?;
            drop(cluster);
            println!("stopped and removed the throwaway PostgreSQL");
        }
        None => {
            // Unregister the demo subscriptions so later `property.*` events on this
            // database do not pile up deliveries for them. Their rows stay for inspection.
            sqlx::query("DELETE FROM pgbus.subscriptions WHERE name = ANY($1)")
                .bind([FOLLOW_UP, ANALYTICS])
                .execute(&pool)
                .await?;
            pool.close().await;
            println!("unregistered the quickstart's subscriptions");
        }
    }
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
    if settled {
        Ok(())
    } else {
        Err("deliveries did not settle in time".into())
    }
}

/// Shows the dead letters of the follow-up subscription as an operator would see them: the
/// admin API's listing and one delivery in full, with its failure history, and the `pgbus`
/// commands that print the same.
async fn show_dead_letters(pool: &PgPool) -> Result<(), BoxError> {
    let admin = pgbus::Admin::new(pool.clone());
    let filter = DeadLetterFilter::new().subscription(FOLLOW_UP);
    let page = admin.dead_letters(&filter, 10, None).await?;
    println!("\ndead letters of {FOLLOW_UP} (pgbus::Admin::dead_letters):");
    for dead in &page.items {
        let detail = admin.delivery(dead.id).await?;
        println!(
            "  delivery {} of event {} ({}, subject {}), {} attempt{}: {}",
            detail.id,
            detail.event_id,
            dead.event_type.as_deref().unwrap_or("event gone"),
            dead.subject.as_deref().unwrap_or("none"),
            detail.attempts,
            if detail.attempts == 1 { "" } else { "s" },
            detail.last_error.as_deref().unwrap_or("no error recorded")
        );
        if let Some(event) = &detail.event {
            println!("    payload: {}", event.data);
        }
        for failure in &detail.failures {
            println!("    attempt {} failed: {}", failure.attempt, failure.error);
        }
        println!(
            "  the same from a shell: pgbus dead list --subscription {FOLLOW_UP}\n  \
             in full: pgbus dead show {}; once the importer is fixed: pgbus dead retry {}",
            detail.id, detail.id
        );
    }
    Ok(())
}

fn deliveries(outcome: &PublishOutcome) -> u32 {
    match outcome {
        PublishOutcome::Published { deliveries, .. } => *deliveries,
        _ => 0,
    }
}

async fn create_business_tables(pool: &PgPool) -> Result<(), BoxError> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {SCHEMA} CASCADE;
         CREATE SCHEMA {SCHEMA};
         CREATE TABLE IF NOT EXISTS {SCHEMA}.properties (
             id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             title      text   NOT NULL,
             city       text   NOT NULL,
             price_eur  bigint NOT NULL,
             created_at timestamptz NOT NULL DEFAULT now()
         );
         CREATE TABLE IF NOT EXISTS {SCHEMA}.follow_ups (
             event_id    uuid   PRIMARY KEY,
             property_id bigint NOT NULL,
             call_on     date   NOT NULL
         );
         CREATE TABLE IF NOT EXISTS {SCHEMA}.analytics (
             event_id    uuid PRIMARY KEY,
             event_type  text NOT NULL,
             city        text,
             recorded_at timestamptz NOT NULL DEFAULT now()
         );"
    )))
    .execute(pool)
    .await?;
    Ok(())
}

/// Removes what an earlier run against the same database left in the pgbus tables: the
/// quickstart's own events, their deliveries, and deliveries to its subscriptions.
async fn clean_previous_runs(pool: &PgPool) -> Result<(), BoxError> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "DELETE FROM pgbus.deliveries
         WHERE subscription = ANY($1)
            OR event_id IN (SELECT id FROM pgbus.events WHERE source = $2)",
    )
    .bind([FOLLOW_UP, ANALYTICS])
    .bind(SOURCE)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM pgbus.events WHERE source = $1")
        .bind(SOURCE)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Polls every 50 ms until no delivery of `events` to the quickstart's subscriptions is
/// pending or running. Returns false on timeout or when the shutdown token is cancelled.
async fn wait_until_settled(
    pool: &PgPool,
    events: &[Uuid],
    token: &pgbus::CancellationToken,
    timeout: Duration,
) -> Result<bool, BoxError> {
    let started = Instant::now();
    loop {
        let (total, open): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE state < 2) FROM pgbus.all_deliveries
             WHERE subscription = ANY($1) AND event_id = ANY($2)",
        )
        .bind([FOLLOW_UP, ANALYTICS])
        .bind(events)
        .fetch_one(pool)
        .await?;
        if open == 0 {
            println!(
                "all {total} deliveries finished (done or dead) after {:.1} s",
                started.elapsed().as_secs_f64()
            );
            return Ok(true);
        }
        if started.elapsed() >= timeout || token.is_cancelled() {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Prints the deliveries of `events` by subscription and state.
async fn print_summary(pool: &PgPool, events: &[Uuid]) -> Result<(), BoxError> {
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT subscription,
                CASE state WHEN 0 THEN 'pending' WHEN 1 THEN 'running'
                           WHEN 2 THEN 'done' ELSE 'dead' END,
                count(*), sum(attempts)::int8
         FROM pgbus.all_deliveries
         WHERE subscription = ANY($1) AND event_id = ANY($2)
         GROUP BY subscription, state
         ORDER BY subscription, state",
    )
    .bind([FOLLOW_UP, ANALYTICS])
    .bind(events)
    .fetch_all(pool)
    .await?;
    println!("\ndeliveries by subscription and state (pgbus.all_deliveries):");
    println!(
        "  {:<20} {:<8} {:>10} {:>9}",
        "subscription", "state", "deliveries", "attempts"
    );
    for (subscription, state, count, attempts) in rows {
        println!("  {subscription:<20} {state:<8} {count:>10} {attempts:>9}");
    }
    Ok(())
}
