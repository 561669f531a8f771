//! Prometheus metrics of a dispatcher, served at `GET /metrics` (feature `metrics`, with the
//! `metrics-exporter-prometheus` recorder and axum).
//!
//! ```text
//! cargo run --example metrics --features metrics
//! curl -s localhost:9100/metrics | grep pgbus_
//! ```
//!
//! It listens on `METRICS_ADDR` (default `127.0.0.1:9100`), runs a dispatcher with one
//! subscription whose handler fails every third event once, and publishes an event every
//! 200 ms, so that every metric moves. Without `DATABASE_URL` it starts a throwaway
//! PostgreSQL; Ctrl-C stops it.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use pgbus::{Delivery, Dispatcher, HandlerError, NewEvent, Publisher, RawHandler, Subscription};
use pgbus_testing::{Cluster, ClusterOptions};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgConnection};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The subscription of the example.
const SUBSCRIPTION: &str = "metrics-demo.record";

/// Fails the first attempt of every third event, so that retries show.
struct Record;

#[pgbus::async_trait]
impl RawHandler for Record {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let n = delivery.event.data["n"].as_i64().unwrap_or(0);
        if n % 3 == 0 && delivery.attempt == 1 {
            return Err(HandlerError::retry_after(
                "flaky downstream",
                Duration::ZERO,
            ));
        }
        Ok(())
    }
}

/// The router: `GET /metrics` renders what the recorder holds, in the Prometheus text format.
fn router(handle: PrometheusHandle) -> Router {
    Router::new().route("/metrics", get(move || std::future::ready(handle.render())))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // Install the recorder before the dispatcher starts: pgbus records into whichever
    // recorder the `metrics` facade has.
    let handle = PrometheusBuilder::new().install_recorder()?;

    let (cluster, url) = match std::env::var("DATABASE_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let cluster = Cluster::start(ClusterOptions::default()).await?;
            let mut admin = PgConnection::connect(&cluster.url("postgres")).await?;
            admin.execute("CREATE DATABASE metrics_demo").await?;
            admin.close().await?;
            let url = cluster.url("metrics_demo");
            (Some(cluster), url)
        }
    };
    let pool = PgPoolOptions::new()
        .max_connections(5)
        .connect(&url)
        .await?;
    pgbus::migrate(&pool).await?;
    let dispatcher = Dispatcher::builder(pool.clone())
        .subscribe(Subscription::raw(SUBSCRIPTION, ["demo.*"], Record))
        .maintenance_interval(Duration::from_secs(5))
        .build()?
        .start()
        .await?;

    let token = dispatcher.token();
    let publisher = Publisher::new("metrics-demo")?;
    {
        let (pool, token) = (pool.clone(), token.clone());
        tokio::spawn(async move {
            let mut n = 0_i64;
            while !token.is_cancelled() {
                n += 1;
                let event = NewEvent::raw("demo.ticked", serde_json::json!({ "n": n }));
                let mut conn = match pool.acquire().await {
                    Ok(conn) => conn,
                    Err(_) => break,
                };
                if let Err(e) = publisher.publish(&mut conn, event).await {
                    eprintln!("publishing failed: {e}");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }

    let addr = std::env::var("METRICS_ADDR").unwrap_or_else(|_| "127.0.0.1:9100".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("serving http://{addr}/metrics; Ctrl-C stops");
    let stop = token.clone();
    axum::serve(listener, router(handle))
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            stop.cancel();
        })
        .await?;

    dispatcher.shutdown().await?;
    pool.close().await;
    if let Some(cluster) = cluster {
        cluster.stop_fast().await?;
    }
    Ok(())
}
