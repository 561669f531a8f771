//! W3C trace context through pgbus: a `traceparent` set by the caller arrives in the handler's
//! event untouched; with feature `otel`, publishing inside a span stores that span's context
//! and the handler's span joins the publisher's trace as its child (checked with an in-memory
//! OpenTelemetry exporter).

use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceId, TracerProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use pgbus::{NewEvent, Subscription};
use serde_json::json;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

use crate::support::database::db;
use crate::support::dispatcher::{dispatcher, start, stop};
use crate::support::journal::Journal;
use crate::support::publishing::publish_one;
use crate::support::wait::{SOON, wait_until};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_set_by_the_caller_reaches_the_handler_untouched() {
    let db = db().await;
    let pool = db.pool();
    let journal = Journal::new();
    let handle = start(dispatcher(pool).subscribe(Subscription::raw(
        "audit.trace",
        ["order.*"],
        journal.handler(),
    )))
    .await;
    publish_one(
        pool,
        NewEvent::raw("order.placed", json!({}))
            .header("traceparent", PARENT)
            .header("tracestate", "congo=t61rcWkgMzE")
            .header("correlation_id", "c-1"),
    )
    .await;
    wait_until("handled", SOON, || async { journal.len() == 1 }).await;
    stop(pool, handle).await;
    let headers = &journal.calls()[0].headers;
    assert_eq!(headers["traceparent"], PARENT);
    assert_eq!(headers["tracestate"], "congo=t61rcWkgMzE");
    assert_eq!(headers["correlation_id"], "c-1");
}

/// The finished spans named `name`.
fn spans(exporter: &InMemorySpanExporter, name: &str) -> Vec<SpanData> {
    (exporter.get_finished_spans().expect("spans").into_iter())
        .filter(|s| s.name == name)
        .collect()
}

// Single-threaded: the subscriber is installed for this thread only, and every task of the
// dispatcher runs on it.
#[tokio::test]
async fn the_handlers_span_joins_the_publishers_trace() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("pgbus-tests")));
    let _installed = tracing::subscriber::set_default(subscriber);
    // With a single dispatcher alive, tracing computes the interest of a callsite first hit
    // on another thread (another test's) from that thread's default alone, and caches
    // "never" for good. A second dispatcher makes it ask every live one.
    let _second = tracing::Dispatch::new(tracing_subscriber::registry());
    tracing::callsite::rebuild_interest_cache();

    let db = db().await;
    let pool = db.pool();
    let journal = Journal::new();
    let handler =
        journal.handler_with(|_| async { Ok(()) }.instrument(tracing::info_span!("ship.order")));
    let handle =
        start(dispatcher(pool).subscribe(Subscription::raw("shipping.ship", ["order.*"], handler)))
            .await;

    // Published inside a span: it becomes the parent. A caller's own traceparent wins.
    let checkout = tracing::info_span!("checkout");
    publish_one(pool, NewEvent::raw("order.placed", json!({ "n": 1 })))
        .instrument(checkout.clone())
        .await;
    publish_one(
        pool,
        NewEvent::raw("order.placed", json!({ "n": 2 })).header("traceparent", PARENT),
    )
    .instrument(checkout)
    .await;
    // Published outside any span: no trace context.
    publish_one(pool, NewEvent::raw("order.placed", json!({ "n": 3 }))).await;

    wait_until("three handler spans finished", SOON, || async {
        spans(&exporter, "ship.order").len() == 3
    })
    .await;
    stop(pool, handle).await;
    tokio::time::timeout(Duration::from_secs(5), async {
        while spans(&exporter, "checkout").is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the checkout span finished");

    let checkout = &spans(&exporter, "checkout")[0];
    let trace = checkout.span_context.trace_id();
    let delivers = spans(&exporter, "pgbus.deliver");
    assert_eq!(delivers.len(), 3);
    let by_n = |n: i64| {
        let call = journal
            .calls()
            .into_iter()
            .find(|c| c.data["n"] == json!(n))
            .expect("handled");
        let span = delivers
            .iter()
            .find(|s| {
                s.attributes.iter().any(|kv| {
                    kv.key.as_str() == "delivery_id"
                        && kv.value.as_str() == call.delivery_id.to_string()
                })
            })
            .expect("its pgbus.deliver span")
            .clone();
        (call, span)
    };

    let (call, deliver) = by_n(1);
    let stored = &call.headers["traceparent"];
    assert_eq!(
        stored,
        &format!(
            "00-{:032x}-{:016x}-01",
            trace,
            checkout.span_context.span_id()
        ),
        "the publishing span's context is stored with the event"
    );
    assert_eq!(
        deliver.span_context.trace_id(),
        trace,
        "the publisher's trace"
    );
    assert_eq!(deliver.parent_span_id, checkout.span_context.span_id());
    let inner = spans(&exporter, "ship.order");
    assert!(
        inner
            .iter()
            .any(|s| s.parent_span_id == deliver.span_context.span_id()
                && s.span_context.trace_id() == trace),
        "the handler's own spans are children of pgbus.deliver"
    );

    let (call, deliver) = by_n(2);
    assert_eq!(call.headers["traceparent"], PARENT, "not replaced");
    assert_eq!(
        deliver.span_context.trace_id(),
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
    );
    assert_eq!(
        deliver.parent_span_id,
        SpanId::from_hex("00f067aa0ba902b7").unwrap()
    );

    let (call, deliver) = by_n(3);
    assert!(!call.headers.contains_key("traceparent"));
    assert_ne!(deliver.span_context.trace_id(), trace, "a trace of its own");
    let _ = provider.shutdown();
}
