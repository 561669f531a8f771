//! Schema versions through a dispatcher: the version stored with each typed event, an older
//! one upgraded for a newer handler, one it cannot read dead with an error naming both
//! versions; and payloads checked against the type's JSON Schema by an independent
//! validator (Python's jsonschema).

use std::process::Command;

use pgbus::{
    DecodeError, Delivery, Event, Handler, HandlerError, NewEvent, Publisher, Subscription,
    VersionedPayload,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::support::database::{count, db, table_counts};
use crate::support::deliveries::only_delivery;
use crate::support::dispatcher::{dispatcher, register, start, stop};
use crate::support::journal::Journal;
use crate::support::states::DEAD;
use crate::support::tools::{python, run};
use crate::support::wait::{SOON, wait_until};

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct RegisteredV1 {
    name: String,
}
impl Event for RegisteredV1 {
    const TYPE: &'static str = "user.registered";
}

/// A user registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
struct Registered {
    /// Given name.
    first: String,
    /// Family name.
    last: String,
}
impl Event for Registered {
    const TYPE: &'static str = "user.registered";
    const VERSION: u32 = 2;
    fn upgrade(older: VersionedPayload) -> Result<Self, DecodeError> {
        let v1: RegisteredV1 = older.decode()?;
        let (first, last) = v1.name.split_once(' ').unwrap_or((&v1.name, ""));
        Ok(Registered {
            first: first.into(),
            last: last.into(),
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct RegisteredV3 {
    first: String,
    last: String,
    email: String,
}
impl Event for RegisteredV3 {
    const TYPE: &'static str = "user.registered";
    const VERSION: u32 = 3;
}

#[derive(Clone)]
struct Seen(Journal);

#[pgbus::async_trait]
impl Handler<Registered> for Seen {
    async fn handle(&self, event: Registered, delivery: &Delivery) -> Result<(), HandlerError> {
        let mut d = delivery.clone();
        d.event.data = serde_json::to_value(&event).unwrap();
        pgbus::RawHandler::handle(&self.0.handler(), &d).await
    }
}

async fn publish(pool: &sqlx::PgPool, event: NewEvent) -> uuid::Uuid {
    let id = event.id();
    Publisher::new("users")
        .unwrap()
        .publish(&mut pool.acquire().await.unwrap(), event)
        .await
        .expect("publish");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_versions_are_upgraded_and_unknown_ones_are_dead() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("users.welcome", &["user.registered"])]).await;

    let v1 = publish(
        pool,
        NewEvent::from_event(&RegisteredV1 {
            name: "Ada Lovelace".into(),
        })
        .unwrap(),
    )
    .await;
    let v2 = publish(
        pool,
        NewEvent::from_event(&Registered {
            first: "Alan".into(),
            last: "Turing".into(),
        })
        .unwrap(),
    )
    .await;
    let v3 = publish(
        pool,
        NewEvent::from_event(&RegisteredV3 {
            first: "G".into(),
            last: "H".into(),
            email: "g@h".into(),
        })
        .unwrap(),
    )
    .await;
    let stored = |id: uuid::Uuid| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT headers->>'pgbus-version' FROM pgbus.events WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(
        (stored(v1).await, stored(v2).await, stored(v3).await),
        ("1".into(), "2".into(), "3".into())
    );

    let journal = Journal::new();
    let handle = start(
        dispatcher(pool).subscribe(Subscription::to::<Registered, _>(
            "users.welcome",
            Seen(journal.clone()),
        )),
    )
    .await;
    wait_until("two handled, one dead", SOON, || async {
        count(
            pool,
            "SELECT count(*) FROM pgbus.deliveries WHERE state = 3",
        )
        .await
            == 1
            && journal.len() == 2
    })
    .await;
    stop(pool, handle).await;

    let mut handled: Vec<_> = journal
        .calls()
        .into_iter()
        .map(|c| (c.event_id, c.data))
        .collect();
    handled.sort_by_key(|(id, _)| *id);
    assert_eq!(
        handled,
        vec![
            (v1, json!({"first": "Ada", "last": "Lovelace"})),
            (v2, json!({"first": "Alan", "last": "Turing"}))
        ]
    );
    let dead = only_delivery(pool, "users.welcome").await;
    assert_eq!((dead.event_id, dead.state), (v3, DEAD));
    let error = dead.last_error.unwrap();
    assert!(
        error.contains("schema version 3, newer than version 2"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_version_header_is_refused_before_anything_is_written() {
    let db = db().await;
    let pool = db.pool();
    let publisher = Publisher::new("users").unwrap();
    let mut conn = pool.acquire().await.unwrap();
    for bad in ["0", "two", "02", ""] {
        let event = NewEvent::raw("user.registered", json!({})).header(pgbus::VERSION_HEADER, bad);
        let e = publisher.publish(&mut conn, event).await.unwrap_err();
        assert!(
            matches!(e, pgbus::Error::InvalidField { .. }),
            "{bad:?}: {e}"
        );
    }
    let time = NewEvent::raw("a.b", json!({})).header("pgbus-time", "not a time");
    assert!(publisher.publish(&mut conn, time).await.is_err());
    assert_eq!(table_counts(pool).await, (0, 0, 0));
}

#[test]
fn payloads_are_checked_against_the_schema_by_an_independent_validator() {
    let Some(python) = python() else { return };
    let schema = pgbus::catalog::schema_for::<Registered>();
    assert_eq!(schema["description"], "A user registered.");
    let good = serde_json::to_value(Registered {
        first: "Ada".into(),
        last: "Lovelace".into(),
    })
    .unwrap();
    let cases = json!([
        [good, true],
        [{"first": "Ada"}, false],
        [{"first": 1, "last": "x"}, false],
        [["not", "an", "object"], false]
    ]);
    let check = r#"
import json, sys, jsonschema
schema, cases = json.load(sys.stdin)
jsonschema.Draft7Validator.check_schema(schema)
v = jsonschema.Draft7Validator(schema)
print(json.dumps([v.is_valid(instance) for instance, _ in cases]))
"#;
    let mut command = Command::new(python);
    command.args(["-c", check]);
    let verdicts: Vec<bool> =
        serde_json::from_str(&run(command, &json!([schema, cases]).to_string())).unwrap();
    let want: Vec<bool> = cases
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c[1].as_bool().unwrap())
        .collect();
    assert_eq!(verdicts, want);
}
