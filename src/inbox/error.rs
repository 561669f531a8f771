//! Why a webhook was refused.

use std::time::Duration;

/// A webhook the inbox refused. Nothing is stored for it; answer the provider with a 4xx.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The signature header (or the header holding the event id or type) is missing.
    #[error("the header {name} is missing")]
    MissingHeader {
        /// The header's name.
        name: String,
    },
    /// The signature header cannot be read.
    #[error("the header {name} is malformed: {reason}")]
    MalformedHeader {
        /// The header's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No signature in the header matches the body under any configured secret: a wrong
    /// secret, a forged header or a tampered body.
    #[error("no signature matches the body (wrong secret, forged signature or tampered body)")]
    SignatureMismatch,
    /// The signed timestamp is outside the tolerance window: a replay, or a clock far off.
    #[error(
        "the signature's timestamp {timestamp} is {} s away from now ({now}), more than the \
         tolerance of {} s",
        timestamp.abs_diff(*now),
        tolerance.as_secs()
    )]
    TimestampOutsideTolerance {
        /// The signed Unix time.
        timestamp: i64,
        /// The Unix time it was checked at.
        now: i64,
        /// The tolerance.
        tolerance: Duration,
    },
    /// The body is larger than the inbox accepts.
    #[error("the body of {size} bytes exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The body's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The body (authentic) is not a JSON object.
    #[error("the body is not a JSON object: {0}")]
    BodyNotJson(String),
    /// The event id or type is not where the inbox looks for it.
    #[error("the webhook's {what} is missing (looked for {location})")]
    MissingField {
        /// `event id` or `event type`.
        what: &'static str,
        /// Where it was looked for.
        location: String,
    },
}
