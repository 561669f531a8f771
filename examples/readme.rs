//! Every Rust code block of the README, compiled. Each block is the text between a
//! `// README: begin` and the next `// README: end` line, in README order; the test
//! `tests/readme.rs` checks that the README shows exactly these blocks.
//!
//! Run it (`cargo run --example readme`) to see the handler test and the publish test pass
//! against a throwaway PostgreSQL (or `DATABASE_URL`).
#![allow(dead_code)]

use sqlx::PgPool;

// README: begin
async fn connect() -> Result<PgPool, Box<dyn std::error::Error>> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(20)
        .connect(&std::env::var("DATABASE_URL")?)
        .await?;
    pgbus::migrate(&pool).await?;
    Ok(pool)
}
// README: end

// README: begin
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct PropertyCreated {
    property_id: i64,
    title: String,
}

impl pgbus::Event for PropertyCreated {
    const TYPE: &'static str = "property.created";
}
// README: end

// README: begin
async fn create_property(
    pool: &PgPool,
    publisher: &pgbus::Publisher, // cheap to clone; build one at start-up
    title: &str,
) -> pgbus::Result<i64> {
    let mut tx = pool.begin().await?;
    let property_id: i64 =
        sqlx::query_scalar("INSERT INTO properties (title) VALUES ($1) RETURNING id")
            .bind(title)
            .fetch_one(&mut *tx) // sqlx's own queries take the transaction as an executor
            .await?;
    let event = PropertyCreated {
        property_id,
        title: title.to_owned(),
    };
    publisher.publish(&mut tx, &event).await?; // pgbus takes its connection
    tx.commit().await?;
    Ok(property_id)
}
// README: end

// README: begin
fn with_metadata(event: &PropertyCreated, request_id: &str) -> pgbus::Result<pgbus::NewEvent> {
    Ok(pgbus::NewEvent::from_event(event)?
        .subject(format!("property/{}", event.property_id)) // the entity it is about
        .header("correlation_id", request_id) // correlation ids, traceparent, ...
        .dedupe_key(format!("property-created/{}", event.property_id)) // once per type
        .priority(-1) // smaller runs first (default 0)
        .deliver_at(chrono::Utc::now() + chrono::Duration::minutes(10))) // not before
}
// README: end

// README: begin
use pgbus::{Delivery, Handler, HandlerError, RawHandler};

struct ScheduleFollowUp {
    pool: PgPool,
}

#[pgbus::async_trait]
impl Handler<PropertyCreated> for ScheduleFollowUp {
    async fn handle(
        &self,
        event: PropertyCreated,
        delivery: &Delivery,
    ) -> Result<(), HandlerError> {
        // Idempotent: keyed by the event id, a second run inserts nothing.
        sqlx::query(
            "INSERT INTO follow_ups (event_id, property_id) VALUES ($1, $2)
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(delivery.event.id)
        .bind(event.property_id)
        .execute(&self.pool)
        .await?; // any error converts into a retry
        Ok(())
    }
}

/// Receives every event its subscription's patterns match, payload as JSON.
struct Audit;

#[pgbus::async_trait]
impl RawHandler for Audit {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let event = &delivery.event;
        if event.data.get("property_id").is_none() {
            return Err(HandlerError::permanent("no property_id")); // dead at once
        }
        if delivery.is_last_attempt() {
            eprintln!("last attempt for {} ({})", event.id, event.event_type);
        }
        Ok(())
    }
}
// README: end

// README: begin
use pgbus::{Dispatcher, RetryPolicy, Subscription};

async fn run_dispatcher(pool: PgPool) -> pgbus::Result<()> {
    let follow_up = ScheduleFollowUp { pool: pool.clone() };
    let dispatcher = Dispatcher::builder(pool)
        .subscribe(
            Subscription::to::<PropertyCreated, _>("listings.follow-up", follow_up)
                .retry(RetryPolicy::default().max_attempts(10)),
        )
        .subscribe(Subscription::raw("audit.properties", ["property.*"], Audit).concurrency(4))
        .build()?
        .start()
        .await?;

    let token = dispatcher.token(); // a CancellationToken
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        token.cancel();
    });
    // ... serve ...
    let report = dispatcher.stopped().await?; // or dispatcher.shutdown().await? to stop now
    println!(
        "finished in time: {}, released: {}",
        report.finished_in_time, report.released
    );
    Ok(())
}
// README: end

// README: begin
use pgbus_testing::{DeliveryBuilder, TestDatabase};

// In your tests, with `#[tokio::test]`:
async fn audit_refuses_an_event_without_a_property() {
    let delivery = DeliveryBuilder::raw("property.created", serde_json::json!({"title": "x"}))
        .attempt(3)
        .max_attempts(3)
        .build();
    assert!(delivery.is_last_attempt());
    let error = Audit.handle(&delivery).await.unwrap_err();
    assert!(matches!(error, HandlerError::Permanent { .. }));
}

async fn publishing_fans_out_to_registered_subscriptions() -> Result<(), Box<dyn std::error::Error>>
{
    let db = TestDatabase::create().await?; // migrated, dropped at the end
    let publisher = pgbus::Publisher::new("tests")?;
    let mut conn = db.pool().acquire().await?;
    let outcome = publisher
        .publish(
            &mut conn,
            pgbus::NewEvent::raw("property.created", serde_json::json!({})),
        )
        .await?;
    assert_eq!(
        outcome,
        pgbus::PublishOutcome::Published {
            id: outcome.id(),
            deliveries: 0
        }
    );
    Ok(())
}
// README: end

// README: begin
use pgbus::cloudevents::{BinaryMessage, Binding, CloudEvent};

/// A relay's view: a delivered event as a CloudEvent, structured and in binary mode.
fn as_cloudevent(delivery: &Delivery) -> (String, BinaryMessage) {
    let event = CloudEvent::from_envelope(&delivery.event);
    (event.to_json_string(), event.to_binary(Binding::Http))
}

/// A CloudEvent received from elsewhere, stored once (deduplicated by its source and id).
async fn ingest(
    conn: &mut sqlx::PgConnection,
    publisher: &pgbus::Publisher,
    body: &[u8],
) -> pgbus::Result<pgbus::PublishOutcome> {
    let event = CloudEvent::from_slice(body)?; // missing attribute, specversion, ...: an error
    let dedupe_key = format!("{}/{}", event.source, event.id);
    let event = event.into_new_event()?.dedupe_key(dedupe_key); // keeps id, source and time
    publisher.publish(conn, event).await
}
// README: end

// README: begin
/// Version 1 of `price.changed`, kept to read the events stored before version 2.
#[derive(Serialize, Deserialize)]
struct PriceChangedV1 {
    property_id: i64,
    price_eur: i64,
}

impl pgbus::Event for PriceChangedV1 {
    const TYPE: &'static str = "price.changed";
}

/// The asking price of a property changed.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct PriceChanged {
    property_id: i64,
    /// In cents of `currency`.
    price_cents: i64,
    currency: String,
}

impl pgbus::Event for PriceChanged {
    const TYPE: &'static str = "price.changed";
    const VERSION: u32 = 2; // stored with each event, in the header `pgbus-version`

    fn upgrade(older: pgbus::VersionedPayload) -> Result<Self, pgbus::DecodeError> {
        let v1: PriceChangedV1 = older.decode()?;
        Ok(PriceChanged {
            property_id: v1.property_id,
            price_cents: v1.price_eur * 100,
            currency: "EUR".into(),
        })
    }
}
// README: end

// README: begin
use pgbus::catalog::{Catalog, EventDoc};

fn write_asyncapi() -> Result<(), Box<dyn std::error::Error>> {
    let catalog = Catalog::new("listings", "1.0.0")
        .source("property-service") // the publisher's source
        .publishes(EventDoc::of::<PropertyCreated>())
        .publishes(EventDoc::with_schema::<PriceChanged>()) // JSON Schema, doc comments
        .subscribes("audit.properties", ["property.*"]);
    let document = catalog.asyncapi()?;
    std::fs::write("asyncapi.yaml", document.to_yaml())?;
    std::fs::write("asyncapi.json", document.to_json_string())?;
    Ok(())
}
// README: end

// README: begin
use pgbus::inbox::Inbox;

fn stripe_inbox(publisher: pgbus::Publisher) -> pgbus::Result<Inbox> {
    Inbox::stripe(std::env::var("STRIPE_WEBHOOK_SECRET").unwrap_or_default())
        .secret("whsec_previous") // accepted too while the secret is rotated
        .priority(-10) // Stripe's events before the service's own
        .build(publisher)
}

/// The HTTP status to answer Stripe with.
async fn receive_stripe(
    pool: &PgPool,
    inbox: &Inbox,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> u16 {
    let stored = async {
        let mut tx = pool.begin().await?;
        let outcome = inbox.receive(&mut tx, headers, body).await?; // verified, stored once
        tx.commit().await?;
        Ok::<_, pgbus::Error>(outcome)
    };
    match stored.await {
        Ok(_) => 200, // stored, or a retry of one stored (`PublishOutcome::Duplicate`)
        Err(e) if e.is_invalid_input() => 400, // refused: signature, replay, not JSON, ...
        Err(_) => 500, // the database failed: Stripe tries again later
    }
}
// README: end

// README: begin
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

async fn behind_pgbouncer() -> Result<(), Box<dyn std::error::Error>> {
    // Through the pooler: the application's transactions, publishing, the dispatcher.
    let pooled = PgPoolOptions::new()
        .max_connections(20)
        .connect(&std::env::var("DATABASE_URL")?) // e.g. postgres://app@pgbouncer:6432/app
        .await?;
    pgbus::migrate(&pooled).await?; // one transaction, unnamed statements: works through it
    let publisher = pgbus::Publisher::builder()
        .source("property-service")
        .transaction_pooler(true)
        .build()?;
    // Optional, straight to PostgreSQL: LISTEN and the presence lock (two connections).
    let direct: PgConnectOptions = std::env::var("DIRECT_DATABASE_URL")?.parse()?;
    let session = PgPoolOptions::new()
        .max_connections(2)
        .connect_lazy_with(direct);
    let dispatcher = pgbus::Dispatcher::builder(pooled.clone())
        .transaction_pooler(true)
        .session_pool(session) // leave it out to poll, without presence
        .subscribe(pgbus::Subscription::raw("audit", ["*"], Audit))
        .build()?
        .start()
        .await?;

    let mut tx = pooled.begin().await?; // publish inside a transaction
    publisher
        .publish(
            &mut tx,
            pgbus::NewEvent::raw("property.viewed", serde_json::json!({"id": 7})),
        )
        .await?;
    tx.commit().await?;
    dispatcher.shutdown().await?;
    Ok(())
}
// README: end

// README: begin
use pgbus::relay::nats::NatsRelay;
use pgbus::relay::rabbitmq::{ExchangeKind, RabbitMqRelay};
use pgbus::relay::{Destinations, Format};

async fn run_relays(pool: PgPool) -> pgbus::Result<pgbus::DispatcherHandle> {
    // JetStream: `property.created` goes to `events.property.created` in stream EVENTS,
    // created if missing with a 2-minute duplicate window.
    let nats = NatsRelay::builder("nats://127.0.0.1:4222")
        .destinations(Destinations::prefix("events.").route("audit.*", "audit.all")?)
        .stream("EVENTS")
        .create_stream(["events.>", "audit.all"])
        .connect()
        .await?;
    // RabbitMQ: a topic exchange, routing key = event type, structured CloudEvents.
    let rabbit = RabbitMqRelay::builder("amqp://guest:guest@127.0.0.1:5672/%2f", "events")
        .declare_exchange(ExchangeKind::Topic)
        .format(Format::Structured)
        .build()?;
    pgbus::Dispatcher::builder(pool)
        .subscribe(nats.subscription("relay.nats", ["*"]))
        .subscribe(
            rabbit
                .subscription("relay.rabbitmq", ["property.*"])
                .concurrency(256),
        )
        .build()?
        .start()
        .await
}
// README: end

// README: begin
use pgbus::DeadKeyPolicy;

async fn deal_pipeline(pool: PgPool, publisher: &pgbus::Publisher) -> pgbus::Result<()> {
    // A deal's events run one at a time, in publish order; other deals run in parallel.
    let dispatcher = Dispatcher::builder(pool.clone())
        .subscribe(
            Subscription::raw("crm.deal-pipeline", ["deal.*"], Audit)
                .ordered()
                .dead_key_policy(DeadKeyPolicy::Block), // the default
        )
        .build()?
        .start()
        .await?;
    let mut tx = pool.begin().await?;
    for stage in ["qualified", "proposal", "closed_won"] {
        let data = serde_json::json!({ "deal": 42, "stage": stage });
        let event = pgbus::NewEvent::raw("deal.stage_changed", data).key("deal/42"); // the key
        publisher.publish(&mut tx, event).await?;
    }
    tx.commit().await?;
    // Keys held back by a retrying delivery or (with DeadKeyPolicy::Block) a dead one.
    let admin = pgbus::Admin::new(pool);
    for k in admin.blocked_keys("crm.deal-pipeline", None, 100).await? {
        println!(
            "{}: {:?} at delivery {}, {} waiting",
            k.key, k.blocked_by, k.delivery_id, k.waiting
        );
    }
    dispatcher.shutdown().await?;
    Ok(())
}
// README: end

// README: begin
use pgbus::TxHandler;
use sqlx::{Postgres, Transaction};

struct CountListing;

#[pgbus::async_trait]
impl TxHandler<PropertyCreated> for CountListing {
    async fn handle(
        &self,
        event: PropertyCreated,
        _delivery: &Delivery,
        tx: &mut Transaction<'static, Postgres>,
    ) -> Result<(), HandlerError> {
        // Not idempotent, and needs not be: this write commits with the delivery's
        // completion, or not at all.
        sqlx::query("UPDATE listing_stats SET listed = listed + 1 WHERE property_id = $1")
            .bind(event.property_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

fn counting() -> Subscription {
    Subscription::to_tx::<PropertyCreated, _>("stats.count-listings", CountListing)
}
// README: end

// README: begin
use pgbus::{DedupeScope, NewEvent};

fn payment(invoice_id: i64) -> NewEvent {
    NewEvent::raw(
        "invoice.paid",
        serde_json::json!({ "invoice_id": invoice_id }),
    )
    .dedupe_key(invoice_id.to_string()) // unique among `invoice.paid` events (default)
}

fn webhook(provider_event_id: &str) -> NewEvent {
    NewEvent::raw("stripe.event", serde_json::json!({}))
        .dedupe_key(format!("stripe:{provider_event_id}"))
        .dedupe_scope(DedupeScope::Global) // unique whatever the type and the source
}
// README: end

// README: begin
use pgbus::Admin;
use pgbus::admin::{DeadLetterFilter, HealthOptions, Replay, RetryMode, TimeRange};

async fn operate(pool: PgPool) -> pgbus::Result<()> {
    let admin = Admin::new(pool);
    // Dead letters of one subscription, newest first, 50 to a page.
    let filter = DeadLetterFilter::new().subscription("listings.follow-up");
    let page = admin.dead_letters(&filter, 50, None).await?;
    if let Some(dead) = page.items.first() {
        let detail = admin.delivery(dead.id).await?; // its event and failure history
        println!("{:?}: {:?}", detail.last_error, detail.failures);
        admin
            .retry_dead_letter(dead.id, RetryMode::ResetAttempts)
            .await?;
    }
    // Backfill a new subscription with the last day's events, in batches.
    let since = chrono::Utc::now() - chrono::Duration::days(1);
    let replay = Replay::new("audit.properties").created(TimeRange::since(since));
    println!(
        "{} deliveries created",
        admin.replay(&replay).await?.created
    );
    // For a probe: schema current, dispatchers alive, no subscription lagging.
    let health = admin.health(&HealthOptions::default()).await;
    println!("healthy: {} {:?}", health.healthy, health.problems);
    Ok(())
}
// README: end

// README: begin
use metrics_exporter_prometheus::PrometheusBuilder;

async fn serve_metrics(dispatcher: pgbus::DispatcherBuilder) -> anyhow::Result<()> {
    // Before the dispatcher starts: pgbus records into the recorder the facade has.
    let prometheus = PrometheusBuilder::new().install_recorder()?;
    let _running = dispatcher.build()?.start().await?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || std::future::ready(prometheus.render())),
    );
    let listener = tokio::net::TcpListener::bind("0.0.0.0:9100").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
// README: end

// README: begin
use opentelemetry::trace::TracerProvider;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

async fn traced(pool: &PgPool, publisher: &pgbus::Publisher) -> anyhow::Result<()> {
    // Any OpenTelemetry tracer provider (here the SDK's, with an exporter of your choice).
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("listings"));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(otel))?;

    // Published inside a span: the event carries its traceparent, and the subscribers'
    // `pgbus.deliver` spans (and the handlers' own spans under them) join this trace.
    let event = pgbus::NewEvent::raw("property.created", serde_json::json!({"id": 7}));
    let mut tx = pool.begin().await?;
    publisher
        .publish(&mut tx, event)
        .instrument(tracing::info_span!("create_property"))
        .await?;
    tx.commit().await?;
    Ok(())
}
// README: end

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    audit_refuses_an_event_without_a_property().await;
    publishing_fans_out_to_registered_subscriptions().await?;
    println!("README examples: ok");
    Ok(())
}
