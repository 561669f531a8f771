//! The signed-webhook inbox (feature `inbox`): verify a provider's signature and store the
//! webhook as an event exactly once, in the caller's transaction.
//!
//! A webhook becomes an ordinary event of type `<prefix>.<provider's type>` (e.g.
//! `stripe.checkout.session.completed`) with the body as its payload, deduplicated by the
//! provider's event id (dedupe key `<provider>:<id>`), so a provider's retry of a webhook
//! already stored reports [`PublishOutcome::Duplicate`] with the original event's id. Its
//! CloudEvent carries the provider as `source` and the provider's event id as `id`.
//!
//! Every refusal is a [`WebhookError`] inside [`Error::Webhook`](crate::Error::Webhook),
//! returned before anything is written: body over the size limit, missing or malformed
//! signature header, no matching signature (wrong secret, tampered body), a timestamp
//! outside the tolerance (a replay), a body that is not a JSON object, no event id or type.
//!
//! ```no_run
//! # async fn demo(pool: sqlx::PgPool, headers: http::HeaderMap, body: Vec<u8>) -> pgbus::Result<()> {
//! use pgbus::inbox::Inbox;
//!
//! let publisher = pgbus::Publisher::new("payments")?;
//! let inbox = Inbox::stripe(std::env::var("STRIPE_WEBHOOK_SECRET").unwrap_or_default())
//!     .priority(-10) // before internal events
//!     .build(publisher)?;
//!
//! // In the HTTP handler:
//! let mut tx = pool.begin().await?;
//! let outcome = inbox.receive(&mut tx, &headers, &body).await?; // Duplicate on a retry
//! tx.commit().await?;
//! # Ok(()) }
//! ```

mod builder;
mod error;
mod field;
mod headers;
mod signature;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sqlx::PgConnection;

pub use builder::InboxBuilder;
pub use error::WebhookError;
pub use field::WebhookField;
pub use headers::WebhookHeaders;
pub use signature::{SignatureScheme, hmac_sha256_hex, stripe_signature_header};

use crate::error::Result;
use crate::event::NewEvent;
use crate::publish::{PublishOutcome, Publisher};
use crate::{reserved, validate};

/// Verifies and stores the webhooks of one provider endpoint. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Inbox {
    config: Arc<InboxBuilder>,
    publisher: Publisher,
}

impl Inbox {
    /// Stripe's webhooks, signed with the endpoint's secret (`whsec_...`): header
    /// `Stripe-Signature`, tolerance 300 s, event id `/id` and type `/type` of the body,
    /// types prefixed `stripe.`.
    pub fn stripe(secret: impl AsRef<[u8]>) -> InboxBuilder {
        InboxBuilder::new(
            "stripe",
            SignatureScheme::Stripe {
                tolerance: Duration::from_secs(300),
            },
            secret,
        )
    }

    /// GitHub's webhooks: header `X-Hub-Signature-256` (`sha256=<hex>`), event id the
    /// header `X-GitHub-Delivery`, type the header `X-GitHub-Event`, prefixed `github.`.
    pub fn github(secret: impl AsRef<[u8]>) -> InboxBuilder {
        InboxBuilder::new(
            "github",
            SignatureScheme::HmacSha256 {
                header: "X-Hub-Signature-256".into(),
                prefix: "sha256=".into(),
            },
            secret,
        )
        .event_id(WebhookField::header("X-GitHub-Delivery"))
        .event_type(WebhookField::header("X-GitHub-Event"))
    }

    /// A provider signing the body with HMAC-SHA256 in `header` as `<prefix><hex>`: event
    /// id `/id` and type `/type` of the body unless set, types prefixed `<provider>.`.
    pub fn hmac_sha256(
        provider: impl Into<String>,
        header: impl Into<String>,
        prefix: impl Into<String>,
        secret: impl AsRef<[u8]>,
    ) -> InboxBuilder {
        let scheme = SignatureScheme::HmacSha256 {
            header: header.into(),
            prefix: prefix.into(),
        };
        InboxBuilder::new(provider, scheme, secret)
    }

    /// The name of the header carrying the signature.
    pub fn signature_header(&self) -> &str {
        self.config.scheme.header()
    }

    /// Verifies a webhook and stores it as an event exactly once, through the publisher, on
    /// `conn` (pass `&mut tx` to store it inside a transaction). A webhook whose event id
    /// is already stored writes nothing and reports [`PublishOutcome::Duplicate`] with the
    /// original event's id: answer the provider with a 2xx for it too.
    ///
    /// # Errors
    ///
    /// [`Error::Webhook`](crate::Error::Webhook) for a refusal, an event type that is not a pgbus type name
    /// ([`Error::InvalidEventType`](crate::Error::InvalidEventType)), the publisher's validation errors; all before
    /// anything is written. [`Error::Database`](crate::Error::Database) when the write fails.
    pub async fn receive(
        &self,
        conn: &mut PgConnection,
        headers: &(impl WebhookHeaders + ?Sized),
        body: &[u8],
    ) -> Result<PublishOutcome> {
        let event = self.verify(headers, body)?;
        self.publisher.publish(conn, event).await
    }

    /// Verifies a webhook now and returns the event [`receive`](Self::receive) would store.
    ///
    /// # Errors
    ///
    /// As [`receive`](Self::receive), without the database.
    pub fn verify(
        &self,
        headers: &(impl WebhookHeaders + ?Sized),
        body: &[u8],
    ) -> Result<NewEvent> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.verify_at(headers, body, now)
    }

    /// As [`verify`](Self::verify), at Unix time `now`.
    ///
    /// # Errors
    ///
    /// As [`verify`](Self::verify).
    pub fn verify_at(
        &self,
        headers: &(impl WebhookHeaders + ?Sized),
        body: &[u8],
        now: i64,
    ) -> Result<NewEvent> {
        let c = &*self.config;
        if body.len() > c.max_body_bytes {
            return Err(WebhookError::BodyTooLarge {
                size: body.len(),
                limit: c.max_body_bytes,
            }
            .into());
        }
        let name = c.scheme.header();
        let value = headers
            .header(name)
            .ok_or_else(|| WebhookError::MissingHeader {
                name: name.to_owned(),
            })?;
        c.scheme.verify(value, body, &c.secrets, now)?;
        let data: Value =
            serde_json::from_slice(body).map_err(|e| WebhookError::BodyNotJson(e.to_string()))?;
        if !data.is_object() {
            return Err(
                WebhookError::BodyNotJson("a JSON value other than an object".into()).into(),
            );
        }
        let headers: &dyn WebhookHeaders = &headers;
        let id = c.event_id.read("event id", headers, &data)?;
        let provider_type = c.event_type.read("event type", headers, &data)?;
        let event_type = match &c.type_prefix {
            Some(prefix) => format!("{prefix}.{provider_type}"),
            None => provider_type,
        };
        validate::validate_type(&event_type)?;
        Ok(NewEvent::raw(event_type, data)
            .dedupe_key(format!("{}:{id}", c.provider))
            // The key names the provider's event whatever its type: stored once, globally.
            .dedupe_scope(crate::DedupeScope::Global)
            .priority(c.priority)
            .header(reserved::SOURCE, c.provider.clone())
            .header(reserved::ID, id))
    }
}
