//! The publisher's settings and the builder that checks them.

use std::sync::Arc;
use std::time::Duration;

use super::notify::Debounce;
use super::{Inner, Publisher};
use crate::error::{Error, Result};
use crate::validate;

/// Builds a [`Publisher`].
#[derive(Debug, Clone)]
pub struct PublisherBuilder {
    source: String,
    max_payload_bytes: usize,
    notify: bool,
    notify_debounce: Duration,
    transaction_pooler: bool,
}

impl Default for PublisherBuilder {
    fn default() -> Self {
        PublisherBuilder {
            source: "pgbus".to_owned(),
            max_payload_bytes: 1024 * 1024,
            notify: true,
            notify_debounce: Duration::from_millis(1),
            transaction_pooler: false,
        }
    }
}

impl PublisherBuilder {
    /// The `source` stored with every event (the publishing service). Default: `"pgbus"`.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// Largest serialized payload accepted, in bytes. Default: 1 MiB. Must be at least 2.
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = bytes;
        self
    }

    /// Whether publishes NOTIFY idle dispatchers (delivered at commit). Default: `true`.
    /// Without it, dispatchers in other processes find new events at their poll interval,
    /// and those in this process are woken at publish time, which finds the event only if
    /// the transaction commits within about a quarter of a second.
    pub fn notify(mut self, notify: bool) -> Self {
        self.notify = notify;
        self
    }

    /// At most one NOTIFY per this window per publisher. Default: 1 ms. Zero notifies on
    /// every publish statement.
    ///
    /// A transaction that NOTIFYs holds a database-wide lock from its commit until the
    /// commit is flushed, so concurrent notifying publishers commit one at a time (measured
    /// here with 16 publishers: about 1,000 events/s with a zero window, 5,000 with 1 ms).
    /// A publish inside a window relies on the NOTIFY of the publish that opened it: a
    /// dispatcher woken by that one looks again for a quarter of a second (at 1, 3, 7, …,
    /// 255 ms), so a transaction that commits later than that is found at the dispatcher's
    /// poll interval.
    pub fn notify_debounce(mut self, window: Duration) -> Self {
        self.notify_debounce = window;
        self
    }

    /// Whether connections go through a transaction-mode pooler (PgBouncer with
    /// `pool_mode = transaction`, Supavisor, RDS Proxy), where consecutive transactions of one
    /// connection may run on different server connections. Then the publish statements are
    /// not prepared once per connection (PgBouncer before 1.21 would run them where they do
    /// not exist, or run another client's statement of the same name) but sent unnamed,
    /// inside a transaction (a savepoint when the caller's connection is in one, which is how
    /// publishing is meant to be used). Costs a round trip or two per publish. Default:
    /// `false`.
    pub fn transaction_pooler(mut self, pooled: bool) -> Self {
        self.transaction_pooler = pooled;
        self
    }

    /// Checks the settings and builds the publisher.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidField`] for an empty, over-long or NUL-holding source,
    /// [`Error::Config`] for a payload limit below 2 bytes.
    pub fn build(self) -> Result<Publisher> {
        validate::validate_text("source", &self.source)?;
        if self.max_payload_bytes < 2 {
            return Err(Error::config("max_payload_bytes", "must be at least 2"));
        }
        Ok(Publisher {
            inner: Arc::new(Inner {
                source: self.source,
                max_payload_bytes: self.max_payload_bytes,
                notify: Debounce::new(self.notify, self.notify_debounce),
                transaction_pooler: self.transaction_pooler,
            }),
        })
    }
}
