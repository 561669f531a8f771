//! The inbox's settings and the builder that checks them.

use std::sync::Arc;
use std::time::Duration;

use super::{Inbox, SignatureScheme, WebhookField};
use crate::error::{Error, Result};
use crate::publish::Publisher;
use crate::validate;

/// Builds an [`Inbox`]: start from [`Inbox::stripe`], [`Inbox::github`] or
/// [`Inbox::hmac_sha256`].
#[derive(Clone)]
pub struct InboxBuilder {
    pub(super) provider: String,
    pub(super) scheme: SignatureScheme,
    pub(super) secrets: Vec<Vec<u8>>,
    pub(super) type_prefix: Option<String>,
    pub(super) event_id: WebhookField,
    pub(super) event_type: WebhookField,
    pub(super) priority: i16,
    pub(super) max_body_bytes: usize,
}

impl std::fmt::Debug for InboxBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboxBuilder")
            .field("provider", &self.provider)
            .field("scheme", &self.scheme)
            .field(
                "secrets",
                &format_args!("[{} redacted]", self.secrets.len()),
            )
            .field("type_prefix", &self.type_prefix)
            .field("event_id", &self.event_id)
            .field("event_type", &self.event_type)
            .field("priority", &self.priority)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

impl InboxBuilder {
    pub(super) fn new(
        provider: impl Into<String>,
        scheme: SignatureScheme,
        secret: impl AsRef<[u8]>,
    ) -> Self {
        let provider = provider.into();
        InboxBuilder {
            type_prefix: Some(provider.clone()),
            provider,
            scheme,
            secrets: vec![secret.as_ref().to_vec()],
            event_id: WebhookField::json("/id"),
            event_type: WebhookField::json("/type"),
            priority: 0,
            max_body_bytes: 1024 * 1024,
        }
    }

    /// Accepts signatures made with another secret too, while a secret is rotated.
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secrets.push(secret.as_ref().to_vec());
        self
    }

    /// For the Stripe scheme, how far the signed time may be from now, either way.
    /// Default: 300 s, as Stripe's libraries.
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        if let SignatureScheme::Stripe { tolerance: t } = &mut self.scheme {
            *t = tolerance;
        }
        self
    }

    /// The prefix of the stored event types (`<prefix>.<provider's type>`). Default: the
    /// provider's name.
    pub fn type_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.type_prefix = Some(prefix.into());
        self
    }

    /// Stores the provider's event types as they are, unprefixed.
    pub fn no_type_prefix(mut self) -> Self {
        self.type_prefix = None;
        self
    }

    /// Where the provider's event id is.
    pub fn event_id(mut self, field: WebhookField) -> Self {
        self.event_id = field;
        self
    }

    /// Where the provider's event type is.
    pub fn event_type(mut self, field: WebhookField) -> Self {
        self.event_type = field;
        self
    }

    /// Priority of the stored events' deliveries (smaller runs first): below 0 to handle
    /// provider events before internal ones. Default: 0.
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }

    /// Largest body accepted, in bytes, checked before anything else. Default: 1 MiB.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Checks the settings and builds the inbox, storing through `publisher`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an empty secret, provider name or signature header, or a zero
    /// body limit; [`Error::InvalidEventType`] for a prefix that is not a type name.
    pub fn build(self, publisher: Publisher) -> Result<Inbox> {
        if self.secrets.iter().any(Vec::is_empty) {
            return Err(Error::config("secret", "must not be empty"));
        }
        validate::validate_text("provider", &self.provider)
            .map_err(|_| Error::config("provider", "1 to 1024 bytes, no NUL"))?;
        if self.scheme.header().is_empty() {
            return Err(Error::config("header", "must not be empty"));
        }
        if self.max_body_bytes == 0 {
            return Err(Error::config("max_body_bytes", "must be at least 1"));
        }
        if let Some(prefix) = &self.type_prefix {
            validate::validate_type(prefix)?;
        }
        Ok(Inbox {
            config: Arc::new(self),
            publisher,
        })
    }
}
