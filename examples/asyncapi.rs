//! The AsyncAPI 3.0 document of the quickstart's listings service, from its event catalog.
//!
//! ```text
//! cargo run --example asyncapi --features asyncapi,schema -- [DIR]
//! ```
//!
//! Writes `asyncapi.yaml` and `asyncapi.json` into `DIR` (default `target/asyncapi`): the
//! `property.created` channel with its payload's JSON Schema (from the type, doc comments
//! included) and CloudEvents headers, a `send` operation for it, and a `receive` operation
//! for each of the quickstart's subscriptions.

use std::path::PathBuf;

use pgbus::catalog::{Catalog, EventDoc};
use pgbus::{DecodeError, Event, VersionedPayload};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A property was listed for sale.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct PropertyCreated {
    /// The property's id in the listings service.
    pub property_id: i64,
    /// The listing's title.
    pub title: String,
    /// Where it is.
    pub city: String,
    /// Asking price, in whole euros.
    pub price_eur: i64,
    /// Who listed it (added in version 2).
    pub agent: Option<Agent>,
}

/// A listing agent.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Agent {
    /// The agent's id.
    pub id: i64,
    /// Display name.
    pub name: String,
}

/// Version 1 of `property.created`, without the agent.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct PropertyCreatedV1 {
    /// The property's id.
    pub property_id: i64,
    /// The listing's title.
    pub title: String,
    /// Where it is.
    pub city: String,
    /// Asking price, in whole euros.
    pub price_eur: i64,
}

impl Event for PropertyCreatedV1 {
    const TYPE: &'static str = "property.created";
}

impl Event for PropertyCreated {
    const TYPE: &'static str = "property.created";
    const VERSION: u32 = 2;

    fn upgrade(older: VersionedPayload) -> Result<Self, DecodeError> {
        let v1: PropertyCreatedV1 = older.decode()?;
        Ok(PropertyCreated {
            property_id: v1.property_id,
            title: v1.title,
            city: v1.city,
            price_eur: v1.price_eur,
            agent: None,
        })
    }
}

/// The listings service's catalog: what it publishes and what its subscriptions receive.
pub fn catalog() -> Catalog {
    Catalog::new("pgbus quickstart: listings service", "1.0.0")
        .description("Publishes `property.created` when a property is listed.")
        .source("pgbus-quickstart")
        .schema_base("https://schemas.example.com/listings")
        .publishes(EventDoc::with_schema::<PropertyCreated>())
        .subscribes("listings.follow-up", ["property.created"])
        .subscribes("analytics.record", ["property.*"])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("target/asyncapi"), PathBuf::from);
    let document = catalog().asyncapi()?;
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("asyncapi.yaml"), document.to_yaml())?;
    std::fs::write(dir.join("asyncapi.json"), document.to_json_string())?;
    println!(
        "wrote {0}/asyncapi.yaml and {0}/asyncapi.json",
        dir.display()
    );
    Ok(())
}
