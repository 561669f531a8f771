//! AsyncAPI documents from catalogs, validated by the official parser (`@asyncapi/parser`)
//! in both YAML and JSON: the quickstart service's (the `asyncapi` example) and a catalog
//! with consumed events, wildcard and undocumented subscriptions and clashing definitions.

use pgbus::catalog::{Catalog, EventDoc};
use serde_json::{Value, json};

use crate::support::tools::{node, run, script};

#[allow(dead_code, unreachable_pub)]
#[path = "../../examples/asyncapi.rs"]
mod example;

/// Another service's event, with a nested type named as one of the example's.
/// A deal was closed.
#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct DealClosed {
    deal_id: String,
    agent: Agent,
}

/// Not the example's `Agent`: same name, other fields.
#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct Agent {
    email: String,
}

impl pgbus::Event for DealClosed {
    const TYPE: &'static str = "deal.closed";
}

fn busy_catalog() -> Catalog {
    example::catalog()
        .consumes(EventDoc::with_schema::<DealClosed>())
        .consumes(
            EventDoc::raw("user.registered")
                .version(3)
                .schema(json!({"type": "object"})),
        )
        .subscribes("reports.deals-and-users", ["deal.*", "user.registered"])
        .subscribes("audit:everything", ["*"])
        .subscribes("billing.invoices", ["invoice.*", "payment.settled"])
}

/// Parses `catalog`'s document with the parser, as YAML and as JSON; what it found.
fn parsed(catalog: &Catalog) -> Option<Vec<Value>> {
    let node = node()?;
    let document = catalog.asyncapi().expect("a valid catalog");
    let dir = tempdir();
    let (yaml, json) = (dir.join("asyncapi.yaml"), dir.join("asyncapi.json"));
    std::fs::write(&yaml, document.to_yaml()).unwrap();
    std::fs::write(&json, document.to_json_string()).unwrap();
    let mut command = node;
    command
        .arg(script("validate_asyncapi.js"))
        .arg(&yaml)
        .arg(&json);
    let out = run(command, "");
    let _ = std::fs::remove_dir_all(&dir);
    Some(
        out.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect(),
    )
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pgbus-asyncapi-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn strings(v: &Value) -> Vec<String> {
    let mut s: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect();
    s.sort();
    s
}

#[test]
fn the_quickstart_document_is_valid_asyncapi_3() {
    let Some(found) = parsed(&example::catalog()) else {
        return;
    };
    for doc in &found {
        assert_eq!(doc["errors"], json!([]), "{doc}");
        assert_eq!(doc["version"], "3.0.0");
        assert_eq!(strings(&doc["channels"]), ["property.created"]);
        assert_eq!(
            strings(&doc["operations"]),
            [
                "receive property.created",
                "receive property.created",
                "send property.created"
            ]
        );
    }
    // YAML and JSON are one document.
    assert_eq!(found[0]["operations"], found[1]["operations"]);
}

#[test]
fn a_busy_catalog_is_valid_asyncapi_3() {
    let catalog = busy_catalog();
    let Some(found) = parsed(&catalog) else {
        return;
    };
    for doc in &found {
        assert_eq!(doc["errors"], json!([]), "{doc}");
        assert_eq!(
            strings(&doc["channels"]),
            [
                "deal.closed",
                "invoice.*",
                "payment.settled",
                "property.created",
                "user.registered"
            ]
        );
    }
    assert_eq!(found[0]["operations"], found[1]["operations"]);
    assert_eq!(found[0]["payload_types"], found[1]["payload_types"]);

    // The two `Agent`s are two schemas; every `$ref` resolves.
    let doc = catalog.asyncapi().unwrap().into_json();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    assert!(
        schemas.contains_key("Agent") && schemas.contains_key("Agent_2"),
        "{schemas:?}"
    );
    let ops = doc["operations"].as_object().unwrap();
    // `*` matches every channel: one receive operation each.
    let everything = ops
        .keys()
        .filter(|k| k.starts_with("receive_audit_everything"))
        .count();
    assert_eq!(everything, 5, "{:?}", ops.keys().collect::<Vec<_>>());
    // Undocumented events get a channel of their own, received by the subscriptions whose
    // patterns match them.
    let billing: Vec<_> = ops
        .keys()
        .filter(|k| k.starts_with("receive_billing"))
        .collect();
    assert_eq!(billing.len(), 2, "{billing:?}");
}

#[test]
fn an_inconsistent_catalog_is_refused() {
    let twice = Catalog::new("s", "1")
        .publishes(EventDoc::raw("a.b"))
        .consumes(EventDoc::raw("a.b"));
    assert!(matches!(twice.asyncapi(), Err(pgbus::Error::Catalog(_))));
    let bad_type = Catalog::new("s", "1").publishes(EventDoc::raw("a b"));
    assert!(matches!(
        bad_type.asyncapi(),
        Err(pgbus::Error::InvalidEventType { .. })
    ));
    let bad_pattern = Catalog::new("s", "1").subscribes("x", ["a.*b"]);
    assert!(matches!(
        bad_pattern.asyncapi(),
        Err(pgbus::Error::InvalidEventType { .. })
    ));
    let v0 = Catalog::new("s", "1").publishes(EventDoc::raw("a.b").version(0));
    assert!(matches!(v0.validate(), Err(pgbus::Error::Catalog(_))));
    let dup = Catalog::new("s", "1")
        .subscribes("x", ["a"])
        .subscribes("x", ["b"]);
    assert!(matches!(
        dup.validate(),
        Err(pgbus::Error::DuplicateSubscription(_))
    ));
}
