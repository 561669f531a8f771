//! The admin API's event history: an entity's audit trail in publish order with what each
//! subscription made of every event, events by type and time, pages.

use chrono::Utc;
use pgbus::admin::{EventQuery, TimeRange};
use pgbus::{Admin, DeliveryState, Error, NewEvent, Subscription};
use serde_json::json;

use crate::support::database::db;
use crate::support::dispatcher::{dispatcher, register, start, stop};
use crate::support::journal::Journal;
use crate::support::publishing::{publish_n, publish_one};
use crate::support::wait::{SOON, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entitys_history_in_publish_order_with_each_subscriptions_outcome() {
    let db = db().await;
    let pool = db.pool();
    let admin = Admin::new(pool.clone());
    // "search.index" handles everything (done rows deleted); "crm.notify" has no dispatcher.
    register(pool, &[("crm.notify", &["property.created"])]).await;
    let journal = Journal::new();
    let handle = start(dispatcher(pool).subscribe(Subscription::raw(
        "search.index",
        ["property.*"],
        journal.handler(),
    )))
    .await;
    let mut ids = Vec::new();
    for (t, price) in [
        ("property.created", 100),
        ("property.price_changed", 90),
        ("property.price_changed", 80),
    ] {
        ids.push(
            publish_one(
                pool,
                NewEvent::raw(t, json!({ "price": price })).subject("property/7"),
            )
            .await,
        );
    }
    publish_one(
        pool,
        NewEvent::raw("property.created", json!({})).subject("property/8"),
    )
    .await;
    wait_until("search.index to handle all 4", SOON, || async {
        journal.len() == 4
    })
    .await;
    stop(pool, handle).await;

    let page = admin
        .subject_history("property/7", 100, None)
        .await
        .expect("history");
    let got: Vec<_> = page.events.iter().map(|h| h.event.id).collect();
    assert_eq!(got, ids, "publish order");
    assert_eq!(page.next, None);
    let created = &page.events[0];
    assert_eq!(created.event.event_type, "property.created");
    assert_eq!(created.event.data, json!({ "price": 100 }));
    let outcomes: Vec<(&str, Option<DeliveryState>)> = created
        .deliveries
        .iter()
        .map(|d| (d.subscription.as_str(), d.state))
        .collect();
    // crm.notify's delivery waits; search.index's is done and deleted (no row).
    assert_eq!(
        outcomes,
        [
            ("crm.notify", Some(DeliveryState::Pending)),
            ("search.index", None)
        ]
    );
    assert_eq!(
        page.events[1].deliveries.len(),
        1,
        "only search.index matches"
    );

    // Pages of 2.
    let first = admin.subject_history("property/7", 2, None).await.unwrap();
    assert_eq!(first.events.len(), 2);
    let rest = admin
        .subject_history("property/7", 2, first.next)
        .await
        .unwrap();
    assert_eq!(rest.events.len(), 1);
    assert_eq!(rest.events[0].event.id, ids[2]);
    assert_eq!(rest.next, None);
}

#[tokio::test]
async fn events_by_type_and_time_range() {
    let db = db().await;
    let pool = db.pool();
    let admin = Admin::new(pool.clone());
    publish_n(pool, "invoice.paid", 3).await;
    let middle = Utc::now();
    let later = publish_n(pool, "invoice.paid", 2).await;
    publish_n(pool, "user.created", 4).await;

    let paid = admin
        .events(&EventQuery::new().types(["invoice.*"]), 100, None)
        .await
        .unwrap();
    assert_eq!(paid.events.len(), 5);
    let recent = admin
        .events(
            &EventQuery::new()
                .types(["invoice.paid"])
                .created(TimeRange::since(middle)),
            100,
            None,
        )
        .await
        .unwrap();
    let mut got: Vec<_> = recent.events.iter().map(|h| h.event.id).collect();
    let mut later = later;
    got.sort();
    later.sort();
    assert_eq!(got, later);
    let all = admin.events(&EventQuery::new(), 100, None).await.unwrap();
    assert_eq!(all.events.len(), 9);
    assert!(all.events.iter().all(|h| h.deliveries.is_empty()));

    let now = Utc::now();
    assert!(matches!(
        admin
            .events(
                &EventQuery::new().created(TimeRange::between(now, now)),
                10,
                None
            )
            .await,
        Err(Error::InvalidTimeRange { .. })
    ));
    assert!(matches!(
        admin.subject_history("x", 0, None).await,
        Err(Error::OutOfRange { .. })
    ));
}
