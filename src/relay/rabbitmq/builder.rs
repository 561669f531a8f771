//! Building a [`RabbitMqRelay`].

use std::sync::Arc;
use std::time::Duration;

use lapin::ExchangeKind;

use super::link::{Declare, Link};
use super::{Inner, RabbitMqRelay};
use crate::error::{Error, Result};
use crate::relay::{DEFAULT_ACK_TIMEOUT, Destinations, Format};

/// Settings of a [`RabbitMqRelay`]; [`build`](Self::build) makes it.
#[derive(Debug)]
pub struct RabbitMqRelayBuilder {
    uri: String,
    exchange: String,
    declare: Option<ExchangeKind>,
    destinations: Destinations,
    format: Format,
    persistent: bool,
    channels: usize,
    ack_timeout: Duration,
}

impl RabbitMqRelayBuilder {
    pub(super) fn new(uri: String, exchange: String) -> Self {
        RabbitMqRelayBuilder {
            uri,
            exchange,
            declare: None,
            destinations: Destinations::default(),
            format: Format::default(),
            persistent: true,
            channels: 1,
            ack_timeout: DEFAULT_ACK_TIMEOUT,
        }
    }

    /// The routing key of each event. Default: the event type ([`Destinations::default`]).
    pub fn destinations(mut self, destinations: Destinations) -> Self {
        self.destinations = destinations;
        self
    }

    /// Binary (default) or structured CloudEvents.
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// Declares the exchange (durable, of this kind) on every connection. Without it the
    /// exchange must exist: publishing to a missing one fails and is retried.
    pub fn declare_exchange(mut self, kind: ExchangeKind) -> Self {
        self.declare = Some(kind);
        self
    }

    /// Whether messages are persistent (delivery mode 2, the default): a durable queue keeps
    /// them across a broker restart, and the broker confirms them once written.
    pub fn persistent(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        self
    }

    /// How many channels publish (round robin) on the relay's one connection. Default: 1 (on
    /// one local broker, 1 channel moved about 10% more events per second than 4 in the
    /// relay bench). Between 1 and 64.
    pub fn channels(mut self, channels: usize) -> Self {
        self.channels = channels;
        self
    }

    /// How long one publish waits for its confirm (and a connection attempt for the
    /// broker) before the delivery is retried. Default: [`DEFAULT_ACK_TIMEOUT`] (10 s).
    /// Must be > 0.
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// The relay. It connects when it first publishes (and again after the connection
    /// broke), so a broker that is down only makes deliveries retry.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for invalid settings.
    pub fn build(self) -> Result<RabbitMqRelay> {
        if self.ack_timeout.is_zero() {
            return Err(Error::config("ack_timeout", "must be greater than zero"));
        }
        if !(1..=64).contains(&self.channels) {
            return Err(Error::config("channels", "must be between 1 and 64"));
        }
        if self.exchange.len() > 255 {
            return Err(Error::config("exchange", "longer than 255 bytes"));
        }
        if self.declare.is_some() && self.exchange.is_empty() {
            return Err(Error::config(
                "declare_exchange",
                "the default exchange (\"\") cannot be declared",
            ));
        }
        let declare = self.declare.map(|kind| Declare {
            exchange: self.exchange.clone(),
            kind,
        });
        Ok(RabbitMqRelay {
            inner: Arc::new(Inner {
                link: Link::new(self.uri, self.channels, declare, self.ack_timeout),
                exchange: self.exchange,
                destinations: self.destinations,
                format: self.format,
                persistent: self.persistent,
                ack_timeout: self.ack_timeout,
            }),
        })
    }
}
