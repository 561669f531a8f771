//! Feature `metrics`: a dispatcher with the Prometheus recorder installed, its `/metrics`
//! served over HTTP and scraped like Prometheus does, the exposition text parsed, and every
//! counter, histogram count and gauge checked against what was published and handled.
//!
//! The recorder is installed for this test's thread only and the runtime is single-threaded,
//! so every task of the dispatcher records into it and no other test does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusBuilder;
use pgbus::{HandlerError, NewEvent, Subscription};
use prometheus_parse::{Scrape, Value};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::database::db;
use crate::support::dispatcher::{dispatcher, quick_retry, start, stop};
use crate::support::journal::Journal;
use crate::support::publishing::publish_events;
use crate::support::wait::{SOON, wait_until};

const SUB: &str = "orders.ship";

/// GET `/metrics` over a plain HTTP/1.1 connection; the body, after checking the status and
/// its length.
async fn get_metrics(addr: SocketAddr) -> String {
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut response = String::new();
    conn.read_to_string(&mut response).await.expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("headers end");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .expect("a content-length");
    assert_eq!(body.len(), length, "the whole body");
    body.to_owned()
}

/// The samples of a scrape by metric name and sorted labels.
struct Samples(HashMap<(String, Vec<(String, String)>), Value>);

impl Samples {
    fn parse(text: &str) -> Samples {
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("exposition");
        Samples(
            scrape
                .samples
                .into_iter()
                .map(|s| {
                    let mut labels: Vec<(String, String)> = s
                        .labels
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    labels.sort();
                    ((s.metric, labels), s.value)
                })
                .collect(),
        )
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<&Value> {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        labels.sort();
        self.0.get(&(name.to_owned(), labels))
    }

    /// A counter's value (0 when absent).
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.get(name, labels) {
            Some(Value::Counter(v) | Value::Untyped(v)) => *v,
            None => 0.0,
            Some(other) => panic!("{name} is not a counter: {other:?}"),
        }
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        match self.get(name, labels)? {
            Value::Gauge(v) | Value::Untyped(v) => Some(*v),
            other => panic!("{name} is not a gauge: {other:?}"),
        }
    }

    /// How many values a histogram (rendered as a summary by default) holds: its `_count`.
    fn observations(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.counter(&format!("{name}_count"), labels)
    }
}

#[tokio::test]
async fn a_prometheus_scrape_counts_what_the_dispatcher_published_and_handled() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let prometheus = recorder.handle();
    let _installed = metrics::set_default_local_recorder(&recorder);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let router = Router::new().route(
        "/metrics",
        get(move || std::future::ready(prometheus.render())),
    );
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let db = db().await;
    let pool = db.pool();
    let journal = Journal::new();
    // `placed` events succeed, except {"flaky": true} whose first attempt fails;
    // `cancelled` ones fail permanently.
    let handler = journal.handler_with(|d| async move {
        match d.event.event_type.as_str() {
            "order.cancelled" => Err(HandlerError::permanent("cannot ship a cancelled order")),
            _ if d.event.data["flaky"] == json!(true) && d.attempt == 1 => {
                Err(HandlerError::retry("carrier busy"))
            }
            _ => Ok(()),
        }
    });
    let handle = start(
        dispatcher(pool)
            .subscribe(Subscription::raw(SUB, ["order.*"], handler).retry(quick_retry()))
            .maintenance_interval(Duration::from_millis(100)),
    )
    .await;
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    publish_events(
        pool,
        &[
            NewEvent::raw("order.placed", json!({ "n": 1 })),
            NewEvent::raw("order.placed", json!({ "n": 2 })),
            NewEvent::raw("order.placed", json!({ "n": 3, "flaky": true })),
            NewEvent::raw("order.cancelled", json!({ "n": 4 })),
            // Not due for an hour: pending, not lagging.
            NewEvent::raw("order.placed", json!({ "n": 5 })).deliver_at(later),
        ],
    )
    .await;
    publish_events(pool, &[NewEvent::raw("invoice.sent", json!({}))]).await;

    let sub = ("subscription", SUB);
    let placed = [sub, ("event_type", "order.placed")];
    let cancelled = [sub, ("event_type", "order.cancelled")];
    wait_until("the outcomes and the gauges scraped", SOON, || async {
        let s = Samples::parse(&get_metrics(addr).await);
        s.counter("pgbus_deliveries_delivered_total", &placed) == 3.0
            && s.counter("pgbus_deliveries_dead_total", &cancelled) == 1.0
            && s.gauge("pgbus_subscription_pending", &[sub]) == Some(1.0)
            && s.gauge("pgbus_subscription_running", &[sub]) == Some(0.0)
    })
    .await;

    let s = Samples::parse(&get_metrics(addr).await);
    assert_eq!(
        s.counter(
            "pgbus_events_published_total",
            &[("event_type", "order.placed")]
        ),
        4.0
    );
    assert_eq!(
        s.counter(
            "pgbus_events_published_total",
            &[("event_type", "order.cancelled")]
        ),
        1.0
    );
    assert_eq!(
        s.counter(
            "pgbus_events_published_total",
            &[("event_type", "invoice.sent")]
        ),
        1.0,
        "counted even with no subscriber"
    );
    assert_eq!(s.counter("pgbus_deliveries_retried_total", &placed), 1.0);
    assert_eq!(
        s.counter("pgbus_deliveries_delivered_total", &cancelled),
        0.0
    );
    assert_eq!(s.counter("pgbus_deliveries_dead_total", &placed), 0.0);
    // Attempts that ran: orders 1 and 2 once, the flaky 3 twice, the cancelled 4 once.
    assert_eq!(journal.len(), 5);
    assert_eq!(
        s.observations("pgbus_handler_duration_seconds", &[sub]),
        5.0
    );
    assert_eq!(
        s.observations("pgbus_delivery_latency_seconds", &[sub]),
        4.0,
        "first attempts only"
    );
    let lag = s.gauge("pgbus_subscription_lag_seconds", &[sub]);
    assert_eq!(lag, Some(0.0), "nothing due waits");

    stop(pool, handle).await;
    server.abort();
}
