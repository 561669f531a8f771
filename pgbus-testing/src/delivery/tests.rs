//! Unit tests of [`DeliveryBuilder`].

use super::*;

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Listed {
    property_id: i64,
    title: String,
}

impl Event for Listed {
    const TYPE: &'static str = "property.listed";
}

struct Count(std::sync::atomic::AtomicU32);

#[pgbus::async_trait]
impl pgbus::Handler<Listed> for Count {
    async fn handle(&self, event: Listed, delivery: &Delivery) -> Result<(), pgbus::HandlerError> {
        assert_eq!(event.property_id, 7);
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if delivery.is_last_attempt() {
            Err(pgbus::HandlerError::permanent("last"))
        } else {
            Ok(())
        }
    }
}

fn listed() -> Listed {
    Listed {
        property_id: 7,
        title: "Flat".into(),
    }
}

#[test]
fn defaults() {
    let before = Utc::now();
    let delivery = DeliveryBuilder::of(&listed()).build();
    assert_eq!(delivery.id, 1);
    assert_eq!(delivery.attempt, 1);
    assert_eq!(delivery.max_attempts, 25);
    assert_eq!(
        delivery.max_attempts,
        pgbus::RetryPolicy::default().attempts()
    );
    assert!(!delivery.is_last_attempt());
    assert_eq!(&*delivery.subscription, "test");
    let event = &delivery.event;
    assert_eq!(event.event_type, "property.listed");
    assert_eq!(event.source, "pgbus");
    assert_eq!(
        (event.subject.as_deref(), event.key.as_deref()),
        (None, None)
    );
    // Only the schema version, as publishing stores it.
    assert_eq!(event.headers.len(), 1);
    assert_eq!(event.headers[pgbus::VERSION_HEADER], "1");
    assert_eq!(event.id.get_version_num(), 7);
    assert!(event.created_at >= before && event.created_at <= Utc::now());
    assert_eq!(event.decode::<Listed>().expect("decodes"), listed());
}

#[test]
fn setters() {
    let id = Uuid::now_v7();
    let at = DateTime::from_timestamp(1_700_000_000, 0).expect("valid timestamp");
    let delivery = DeliveryBuilder::raw("audit.any", serde_json::json!({"n": 1}))
        .id(99)
        .attempt(4)
        .max_attempts(4)
        .subscription(String::from("audit"))
        .event_id(id)
        .source("property-service")
        .subject("property/7")
        .key("7")
        .header("correlation_id", "c-1")
        .header("correlation_id", "c-2")
        .header("traceparent", "00-ab-cd-01")
        .created_at(at)
        .build();
    assert_eq!(
        (delivery.id, delivery.attempt, delivery.max_attempts),
        (99, 4, 4)
    );
    assert!(delivery.is_last_attempt());
    assert_eq!(&*delivery.subscription, "audit");
    let event = delivery.event;
    assert_eq!(event.id, id);
    assert_eq!(event.event_type, "audit.any");
    assert_eq!(event.source, "property-service");
    assert_eq!(event.subject.as_deref(), Some("property/7"));
    assert_eq!(event.key.as_deref(), Some("7"));
    assert_eq!(event.data, serde_json::json!({"n": 1}));
    assert_eq!(event.headers.len(), 2);
    assert_eq!(event.headers["correlation_id"], "c-2");
    assert_eq!(event.created_at, at);
}

#[test]
fn last_attempt_is_attempt_max_attempts() {
    let at = |attempt| {
        DeliveryBuilder::of(&listed())
            .attempt(attempt)
            .max_attempts(3)
            .build()
            .is_last_attempt()
    };
    assert_eq!([at(1), at(2), at(3)], [false, false, true]);
}

#[test]
fn typed_payload_is_what_publishing_stores() {
    let delivery = DeliveryBuilder::of(&listed()).build();
    assert_eq!(
        delivery.event.data,
        serde_json::json!({"property_id": 7, "title": "Flat"})
    );
}

#[test]
#[should_panic(expected = "property.bad")]
fn unserializable_event_panics_with_its_type() {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Bad(std::collections::HashMap<(i32, i32), i32>);
    impl Event for Bad {
        const TYPE: &'static str = "property.bad";
    }
    let _ = DeliveryBuilder::of(&Bad([((1, 2), 3)].into()));
}

#[tokio::test]
async fn handlers_are_called_directly() {
    let handler = Count(Default::default());
    let first = DeliveryBuilder::of(&listed()).build();
    pgbus::Handler::handle(&handler, listed(), &first)
        .await
        .expect("first attempt succeeds");
    let last = DeliveryBuilder::of(&listed()).attempt(25).build();
    let err = pgbus::Handler::handle(&handler, listed(), &last)
        .await
        .expect_err("last attempt fails");
    assert!(matches!(err, pgbus::HandlerError::Permanent { .. }));
    assert_eq!(handler.0.load(std::sync::atomic::Ordering::Relaxed), 2);
}
