//! Building a [`NatsRelay`]: the connection, the stream, the mapping.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use super::{BROKER, Inner, NatsRelay};
use crate::error::{Error, Result};
use crate::relay::{DEFAULT_ACK_TIMEOUT, Destinations, Format, RelayError};

/// JetStream's default duplicate window, which [`NatsRelayBuilder::create_stream`] uses
/// unless told otherwise.
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Settings of a [`NatsRelay`]; [`connect`](Self::connect) makes it.
#[derive(Debug)]
pub struct NatsRelayBuilder {
    url: String,
    client: Option<async_nats::Client>,
    destinations: Destinations,
    format: Format,
    stream: Option<String>,
    create_subjects: Option<Vec<String>>,
    duplicate_window: Duration,
    ack_timeout: Duration,
}

impl NatsRelayBuilder {
    pub(super) fn new(url: String) -> Self {
        NatsRelayBuilder {
            url,
            client: None,
            destinations: Destinations::default(),
            format: Format::default(),
            stream: None,
            create_subjects: None,
            duplicate_window: DEFAULT_DUPLICATE_WINDOW,
            ack_timeout: DEFAULT_ACK_TIMEOUT,
        }
    }

    /// Publishes through `client` (connected with options of your own: credentials, TLS)
    /// instead of connecting to the URL.
    pub fn client(mut self, client: async_nats::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The subject of each event. Default: the event type ([`Destinations::default`]).
    pub fn destinations(mut self, destinations: Destinations) -> Self {
        self.destinations = destinations;
        self
    }

    /// Binary (default) or structured CloudEvents.
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// The stream every message must be stored in (sent as `Nats-Expected-Stream`, and
    /// checked against the acknowledgement).
    pub fn stream(mut self, name: impl Into<String>) -> Self {
        self.stream = Some(name.into());
        self
    }

    /// Creates the [`stream`](Self::stream) at [`connect`](Self::connect) if it does not
    /// exist: file storage, these subjects, the [`duplicate_window`](Self::duplicate_window).
    /// An existing stream is left as it is.
    pub fn create_stream(mut self, subjects: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.create_subjects = Some(subjects.into_iter().map(Into::into).collect());
        self
    }

    /// The duplicate window of a stream [`create_stream`](Self::create_stream) creates.
    /// Default: [`DEFAULT_DUPLICATE_WINDOW`] (2 minutes).
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }

    /// How long one publish waits for its acknowledgement before the delivery is retried.
    /// Default: [`DEFAULT_ACK_TIMEOUT`] (10 s). Must be > 0.
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// Connects (a server that is down is retried in the background, so this returns
    /// without it unless the stream is to be created) and creates the stream if asked.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for invalid settings; [`Error::Relay`] when connecting or
    /// creating the stream fails.
    pub async fn connect(self) -> Result<NatsRelay> {
        if self.ack_timeout.is_zero() {
            return Err(Error::config("ack_timeout", "must be greater than zero"));
        }
        if self.create_subjects.is_some() && self.stream.is_none() {
            return Err(Error::config(
                "create_stream",
                "needs the stream's name: call `stream` too",
            ));
        }
        let client = match self.client {
            Some(client) => client,
            None => async_nats::ConnectOptions::new()
                .name("pgbus-relay")
                .retry_on_initial_connect()
                .connect(self.url.as_str())
                .await
                .map_err(|e| RelayError::Connect {
                    broker: BROKER,
                    message: e.to_string(),
                })?,
        };
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(self.ack_timeout)
            .build(client);
        if let (Some(name), Some(subjects)) = (&self.stream, self.create_subjects) {
            let config = stream::Config {
                name: name.clone(),
                subjects,
                storage: stream::StorageType::File,
                duplicate_window: self.duplicate_window,
                ..Default::default()
            };
            jetstream
                .get_or_create_stream(config)
                .await
                .map_err(|e| RelayError::Setup {
                    broker: BROKER,
                    what: format!("stream {name:?}"),
                    message: e.to_string(),
                })?;
        }
        Ok(NatsRelay {
            inner: std::sync::Arc::new(Inner {
                jetstream,
                destinations: self.destinations,
                format: self.format,
                stream: self.stream,
                ack_timeout: self.ack_timeout,
            }),
        })
    }
}
