//! A Stripe webhook endpoint on axum: every webhook is verified and stored as an event
//! exactly once, in a transaction, and a dispatcher handles the stored events, Stripe's
//! before the service's own (a lower priority number).
//!
//! ```text
//! STRIPE_WEBHOOK_SECRET=whsec_... cargo run --example webhook_inbox --features inbox
//! ```
//!
//! It listens on `WEBHOOK_ADDR` (default `127.0.0.1:3000`) at `POST /webhooks/stripe` and
//! answers 200 once a webhook is stored (also for a provider's retry of one already
//! stored), 400 when it is refused (bad signature, replay, not JSON, ...), 500 when the
//! database fails (the provider retries later). Without `DATABASE_URL` it starts a
//! throwaway PostgreSQL; Ctrl-C stops it.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use pgbus::inbox::Inbox;
use pgbus::{
    Delivery, Dispatcher, HandlerError, PublishOutcome, Publisher, RawHandler, Subscription,
};
use sqlx::PgPool;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The path Stripe posts to.
pub const PATH: &str = "/webhooks/stripe";

#[derive(Clone)]
struct App {
    pool: PgPool,
    inbox: Inbox,
}

/// The inbox of Stripe's webhooks, signed with `secret`; Stripe's events run before the
/// service's own.
pub fn stripe_inbox(secret: &str) -> pgbus::Result<Inbox> {
    Inbox::stripe(secret)
        .priority(-10)
        .build(Publisher::new("payments-service")?)
}

/// The HTTP endpoint.
pub fn router(pool: PgPool, inbox: Inbox) -> Router {
    Router::new()
        .route(PATH, post(receive))
        .with_state(App { pool, inbox })
}

async fn receive(State(app): State<App>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let stored = async {
        let mut tx = app.pool.begin().await?;
        // ... the service's own writes may go in the same transaction ...
        let outcome = app.inbox.receive(&mut tx, &headers, &body).await?;
        tx.commit().await?;
        Ok::<_, pgbus::Error>(outcome)
    };
    match stored.await {
        Ok(PublishOutcome::Published { id, .. }) => (StatusCode::OK, format!("stored as {id}")),
        Ok(PublishOutcome::Duplicate { id }) => (StatusCode::OK, format!("already stored as {id}")),
        Ok(other) => (StatusCode::OK, format!("{other:?}")),
        Err(e) if e.is_invalid_input() => (StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => {
            eprintln!("storing a webhook failed: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "try again later".to_owned(),
            )
        }
    }
}

/// Handles the stored Stripe events (`stripe.*`).
struct StripeEvents;

#[pgbus::async_trait]
impl RawHandler for StripeEvents {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let event = &delivery.event;
        match event.event_type.as_str() {
            "stripe.checkout.session.completed" => {
                println!("checkout completed: {}", event.data["id"])
            }
            "stripe.payment_intent.succeeded" => {
                println!("payment succeeded: {}", event.data["id"])
            }
            other => println!("{other}: nothing to do"),
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let secret = std::env::var("STRIPE_WEBHOOK_SECRET").unwrap_or_else(|_| {
        eprintln!("STRIPE_WEBHOOK_SECRET is not set: using whsec_test");
        "whsec_test".to_owned()
    });
    let addr = std::env::var("WEBHOOK_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());

    let (_cluster, url) = match std::env::var("DATABASE_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let cluster =
                pgbus_testing::Cluster::start(pgbus_testing::ClusterOptions::default()).await?;
            let url = cluster.url("postgres");
            (Some(cluster), url)
        }
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(10)
        .connect(&url)
        .await?;
    pgbus::migrate(&pool).await?;

    let dispatcher = Dispatcher::builder(pool.clone())
        .subscribe(Subscription::raw(
            "payments.stripe",
            ["stripe.*"],
            StripeEvents,
        ))
        .shutdown_timeout(Duration::from_secs(10))
        .build()?
        .start()
        .await?;

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}{PATH}", listener.local_addr()?);
    axum::serve(listener, router(pool, stripe_inbox(&secret)?))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    dispatcher.shutdown().await?;
    Ok(())
}
