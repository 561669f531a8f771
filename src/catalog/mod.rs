//! The service's event catalog: the typed events it publishes (type, schema version, JSON
//! Schema, description), the events of other services it documents, and its subscriptions.
//! With the `asyncapi` feature, `Catalog::asyncapi` renders it as an AsyncAPI 3.0
//! document.
//!
//! ```
//! use pgbus::catalog::{Catalog, EventDoc};
//! # #[derive(serde::Serialize, serde::Deserialize)]
//! # struct PropertyCreated { property_id: i64 }
//! # impl pgbus::Event for PropertyCreated { const TYPE: &'static str = "property.created"; }
//!
//! let catalog = Catalog::new("listings", "1.0.0")
//!     .source("listings-service")
//!     .publishes(EventDoc::of::<PropertyCreated>().description("A property was listed."))
//!     .subscribes("audit.properties", ["property.*"]);
//! catalog.validate()?;
//! assert_eq!(catalog.published()[0].event_type(), "property.created");
//! # Ok::<(), pgbus::Error>(())
//! ```

mod event_doc;
pub(crate) mod pattern;
#[cfg(feature = "schema")]
mod schema;

use std::collections::BTreeSet;

pub use event_doc::EventDoc;
#[cfg(feature = "asyncapi")]
pub(crate) use pattern::matches;
#[cfg(feature = "schema")]
pub use schema::schema_for;

use crate::error::{Error, Result};
use crate::subscription::Subscription;
use crate::validate;

/// A subscription as the catalog documents it: its name and type patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionDoc {
    /// The subscription's name.
    pub name: String,
    /// Its type patterns.
    pub patterns: Vec<String>,
}

/// The events a service publishes and consumes, and its subscriptions.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub(crate) title: String,
    pub(crate) version: String,
    pub(crate) description: Option<String>,
    pub(crate) source: Option<String>,
    pub(crate) schema_base: Option<String>,
    pub(crate) published: Vec<EventDoc>,
    pub(crate) consumed: Vec<EventDoc>,
    pub(crate) subscriptions: Vec<SubscriptionDoc>,
}

impl Catalog {
    /// An empty catalog of the service `title`, whose API is at `version` (e.g. `1.0.0`).
    pub fn new(title: impl Into<String>, version: impl Into<String>) -> Self {
        Catalog {
            title: title.into(),
            version: version.into(),
            ..Catalog::default()
        }
    }

    /// What the service is.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// The `source` its events carry (its [`Publisher`](crate::Publisher)'s source).
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Where the service publishes its schemas: the `dataschema` of version `n` of type
    /// `t` is `<base>/<t>/v<n>.json` ([`dataschema_uri`](crate::cloudevents::dataschema_uri)).
    /// Default: none, `urn:pgbus:schema:<t>:v<n>`.
    pub fn schema_base(mut self, base: impl Into<String>) -> Self {
        self.schema_base = Some(base.into());
        self
    }

    /// An event type the service publishes.
    pub fn publishes(mut self, event: EventDoc) -> Self {
        self.published.push(event);
        self
    }

    /// An event type of another service that this one receives, to document its payload.
    pub fn consumes(mut self, event: EventDoc) -> Self {
        self.consumed.push(event);
        self
    }

    /// A subscription of the service, by name and patterns.
    pub fn subscribes(
        mut self,
        name: impl Into<String>,
        patterns: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.subscriptions.push(SubscriptionDoc {
            name: name.into(),
            patterns: patterns.into_iter().map(Into::into).collect(),
        });
        self
    }

    /// A subscription of the service, as given to its dispatcher.
    pub fn subscription(self, subscription: &Subscription) -> Self {
        let patterns = subscription.patterns.clone();
        self.subscribes(subscription.name(), patterns)
    }

    /// The service's title.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The events it publishes, in the order given.
    pub fn published(&self) -> &[EventDoc] {
        &self.published
    }

    /// The events of other services it documents, in the order given.
    pub fn consumed(&self) -> &[EventDoc] {
        &self.consumed
    }

    /// Its subscriptions, in the order given.
    pub fn subscriptions(&self) -> &[SubscriptionDoc] {
        &self.subscriptions
    }

    /// The documented event (published or consumed) of type `event_type`.
    pub fn event(&self, event_type: &str) -> Option<&EventDoc> {
        self.published
            .iter()
            .chain(&self.consumed)
            .find(|e| e.event_type() == event_type)
    }

    /// Checks the catalog: type names and patterns as publishing and subscribing check
    /// them, versions from 1, each event type documented once, subscription names valid
    /// and unique.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEventType`], [`Error::InvalidSubscriptionName`] or
    /// [`Error::Catalog`] for the first problem found.
    pub fn validate(&self) -> Result<()> {
        if self.title.is_empty() || self.version.is_empty() {
            return Err(Error::Catalog(
                "the title and version must not be empty".into(),
            ));
        }
        let mut types = BTreeSet::new();
        for event in self.published.iter().chain(&self.consumed) {
            validate::validate_type(event.event_type())?;
            if event.schema_version() == 0 {
                return Err(Error::Catalog(format!(
                    "{}: schema versions start at 1",
                    event.event_type()
                )));
            }
            if !types.insert(event.event_type()) {
                return Err(Error::Catalog(format!(
                    "event type {:?} is documented twice",
                    event.event_type()
                )));
            }
        }
        let mut names = BTreeSet::new();
        for sub in &self.subscriptions {
            crate::subscription::validate_name(&sub.name)?;
            if !names.insert(sub.name.as_str()) {
                return Err(Error::DuplicateSubscription(sub.name.clone()));
            }
            if sub.patterns.is_empty() {
                return Err(Error::Catalog(format!(
                    "subscription {:?} has no pattern",
                    sub.name
                )));
            }
            for p in &sub.patterns {
                validate::validate_pattern(p)?;
            }
        }
        Ok(())
    }
}
