//! The relay's connection to RabbitMQ: one connection with a few channels in confirm mode,
//! made when first needed and made again after it broke.
//!
//! lapin does not reconnect by itself here: a publish that finds its channel or connection
//! broken marks the session broken, and the next publish connects again. While the broker
//! is away, one connection attempt is made at a time and its failure is remembered for
//! [`RETRY_CONNECT_AFTER`], so hundreds of waiting deliveries fail fast (and retry with
//! their backoff) instead of each trying to connect.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use lapin::options::{ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use super::BROKER;
use super::confirms::Publisher;
use crate::relay::RelayError;

/// How long a failed connection attempt is remembered before the next is made.
const RETRY_CONNECT_AFTER: Duration = Duration::from_millis(500);

/// What a session declares when it connects.
#[derive(Debug, Clone)]
pub(super) struct Declare {
    pub(super) exchange: String,
    pub(super) kind: ExchangeKind,
}

/// One connection, its channels, and each channel's publisher.
pub(super) struct Session {
    connection: Connection,
    channels: Vec<Channel>,
    publishers: Vec<Publisher>,
    next: AtomicUsize,
}

impl Session {
    /// The next channel's publisher, round robin.
    pub(super) fn publisher(&self) -> &Publisher {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.publishers.len();
        &self.publishers[i]
    }

    fn is_usable(&self) -> bool {
        self.connection.status().connected() && self.channels.iter().all(|c| c.status().connected())
    }
}

/// The shared, reconnecting link.
pub(super) struct Link {
    uri: String,
    channels: usize,
    declare: Option<Declare>,
    timeout: Duration,
    current: RwLock<Option<Arc<Session>>>,
    connecting: tokio::sync::Mutex<Option<(Instant, RelayError)>>,
}

impl Link {
    pub(super) fn new(
        uri: String,
        channels: usize,
        declare: Option<Declare>,
        timeout: Duration,
    ) -> Self {
        Link {
            uri,
            channels,
            declare,
            timeout,
            current: RwLock::new(None),
            connecting: tokio::sync::Mutex::new(None),
        }
    }

    fn usable(&self) -> Option<Arc<Session>> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        current.as_ref().filter(|s| s.is_usable()).cloned()
    }

    /// A usable session: the current one, or a new one.
    pub(super) async fn session(&self) -> Result<Arc<Session>, RelayError> {
        if let Some(session) = self.usable() {
            return Ok(session);
        }
        let mut last_failure = self.connecting.lock().await;
        if let Some(session) = self.usable() {
            return Ok(session);
        }
        if let Some((at, error)) = &*last_failure
            && at.elapsed() < RETRY_CONNECT_AFTER
        {
            return Err(error.clone());
        }
        match tokio::time::timeout(self.timeout, self.connect()).await {
            Ok(Ok(session)) => {
                let session = Arc::new(session);
                let old = self
                    .current
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .replace(session.clone());
                if let Some(old) = old {
                    close_in_background(old);
                }
                *last_failure = None;
                Ok(session)
            }
            Ok(Err(error)) => {
                *last_failure = Some((Instant::now(), error.clone()));
                Err(error)
            }
            Err(_) => {
                let error = RelayError::Connect {
                    broker: BROKER,
                    message: format!("no connection within {:?}", self.timeout),
                };
                *last_failure = Some((Instant::now(), error.clone()));
                Err(error)
            }
        }
    }

    async fn connect(&self) -> Result<Session, RelayError> {
        let connect_error = |e: lapin::Error| RelayError::Connect {
            broker: BROKER,
            message: e.to_string(),
        };
        let properties = ConnectionProperties::default().with_connection_name("pgbus-relay".into());
        let connection = Connection::connect(&self.uri, properties)
            .await
            .map_err(connect_error)?;
        let mut channels = Vec::with_capacity(self.channels);
        for _ in 0..self.channels {
            let channel = connection.create_channel().await.map_err(connect_error)?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(connect_error)?;
            channels.push(channel);
        }
        if let Some(declare) = &self.declare {
            channels[0]
                .exchange_declare(
                    declare.exchange.as_str().into(),
                    declare.kind.clone(),
                    ExchangeDeclareOptions {
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| RelayError::Setup {
                    broker: BROKER,
                    what: format!("exchange {:?}", declare.exchange),
                    message: e.to_string(),
                })?;
        }
        let publishers = channels.iter().cloned().map(Publisher::start).collect();
        Ok(Session {
            connection,
            channels,
            publishers,
            next: AtomicUsize::new(0),
        })
    }

    /// Forgets `session` if it is still the current one and no longer usable, so that the
    /// next publish connects again.
    pub(super) fn broken(&self, session: &Arc<Session>) {
        if session.is_usable() {
            return;
        }
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, session))
            && let Some(old) = current.take()
        {
            close_in_background(old);
        }
    }
}

/// Closes a replaced session's connection without waiting (it is usually broken already).
fn close_in_background(session: Arc<Session>) {
    tokio::spawn(async move {
        let _ = session
            .connection
            .close(200, "pgbus relay reconnecting".into())
            .await;
    });
}
