//! Subscriptions: durable named consumer groups bound to event type patterns.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::event::Event;
use crate::handler::{Handler, Raw, RawHandler, Typed};
use crate::ordering::DeadKeyPolicy;
use crate::retry::RetryPolicy;
use crate::tx_handler::{Handling, RawTx, RawTxHandler, TxHandler, TypedTx};
use crate::validate;

/// Longest subscription name, in bytes.
pub const MAX_SUBSCRIPTION_NAME_LEN: usize = 200;

/// A named consumer group, its type patterns, its handler and its delivery settings.
///
/// Every event whose type matches one of the patterns when it is published gets one
/// delivery for this subscription. A pattern is a type name whose segments may be `*`,
/// which matches any text: `property.*` matches `property.created` and
/// `property.photo.added`; `*` matches every event.
///
/// # Registration, and patterns that change
///
/// A dispatcher registers its subscriptions when it starts: a new name is created, and a
/// name already registered with other patterns takes the starting dispatcher's patterns.
/// **The dispatcher started last wins**, and says so in a warning naming the old and new
/// patterns. Deliveries are created at publish time from the registered patterns, so during
/// a rolling deploy the handlers of both versions share the deliveries of whichever
/// patterns were registered last: a handler must accept every event the other version's
/// patterns match (a typed handler that cannot decode an event makes that delivery dead). To
/// change what a subscription means, give it a new name: the old one keeps its deliveries
/// until its last dispatcher stops.
///
/// ```no_run
/// # use pgbus::{Delivery, HandlerError, RawHandler, Subscription};
/// # struct Audit;
/// # #[pgbus::async_trait]
/// # impl RawHandler for Audit {
/// #     async fn handle(&self, _: &Delivery) -> Result<(), HandlerError> { Ok(()) }
/// # }
/// let audit = Subscription::raw("audit.all-properties", ["property.*"], Audit)
///     .concurrency(4)
///     .retry(pgbus::RetryPolicy::default().max_attempts(5));
/// ```
#[derive(Clone)]
pub struct Subscription {
    pub(crate) name: String,
    pub(crate) patterns: Vec<String>,
    pub(crate) handler: Handling,
    pub(crate) concurrency: usize,
    pub(crate) retry: RetryPolicy,
    pub(crate) handler_timeout: Duration,
    pub(crate) lease: Duration,
    pub(crate) ordered: bool,
    pub(crate) dead_key: DeadKeyPolicy,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("name", &self.name)
            .field("patterns", &self.patterns)
            .field("concurrency", &self.concurrency)
            .field("retry", &self.retry)
            .field("handler_timeout", &self.handler_timeout)
            .field("lease", &self.lease)
            .field("ordered", &self.ordered)
            .field("dead_key", &self.dead_key)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// A subscription to the typed event `E` (pattern `E::TYPE`), handled by `handler`.
    pub fn to<E: Event, H: Handler<E>>(name: impl Into<String>, handler: H) -> Self {
        Self::with_handler(
            name.into(),
            vec![E::TYPE.to_owned()],
            Handling::Plain(Arc::new(Typed {
                handler,
                _event: PhantomData,
            })),
        )
    }

    /// A subscription to the typed event `E` (pattern `E::TYPE`), handled by a
    /// transactional handler: its writes and the delivery's completion commit together (see
    /// [`TxHandler`]).
    pub fn to_tx<E: Event, H: TxHandler<E>>(name: impl Into<String>, handler: H) -> Self {
        Self::with_handler(
            name.into(),
            vec![E::TYPE.to_owned()],
            Handling::Tx(Arc::new(TypedTx {
                handler,
                _event: PhantomData,
            })),
        )
    }

    /// A subscription to every event type matching one of `patterns`, handled raw by a
    /// transactional handler (see [`TxHandler`]).
    pub fn raw_tx<H: RawTxHandler>(
        name: impl Into<String>,
        patterns: impl IntoIterator<Item = impl Into<String>>,
        handler: H,
    ) -> Self {
        Self::with_handler(
            name.into(),
            patterns.into_iter().map(Into::into).collect(),
            Handling::Tx(Arc::new(RawTx(handler))),
        )
    }

    /// A subscription to every event type matching one of `patterns`, handled raw.
    pub fn raw<H: RawHandler>(
        name: impl Into<String>,
        patterns: impl IntoIterator<Item = impl Into<String>>,
        handler: H,
    ) -> Self {
        Self::with_handler(
            name.into(),
            patterns.into_iter().map(Into::into).collect(),
            Handling::Plain(Arc::new(Raw(handler))),
        )
    }

    fn with_handler(name: String, patterns: Vec<String>, handler: Handling) -> Self {
        Subscription {
            name,
            patterns,
            handler,
            concurrency: 32,
            retry: RetryPolicy::default(),
            handler_timeout: Duration::from_secs(300),
            lease: Duration::from_secs(30),
            ordered: false,
            dead_key: DeadKeyPolicy::Block,
        }
    }

    /// The subscription's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether its handler runs in a transaction ([`TxHandler`], [`RawTxHandler`]).
    pub fn is_transactional(&self) -> bool {
        matches!(self.handler, Handling::Tx(_))
    }

    /// Most handlers of this subscription running at once in one dispatcher. Default: 32.
    /// Must be ≥ 1.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// The retry policy. Default: [`RetryPolicy::default`].
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// How long one handler call may run before it is abandoned and retried. Default:
    /// 5 minutes. Must be > 0.
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.handler_timeout = timeout;
        self
    }

    /// How long a claimed delivery stays reserved without a sign of life from its
    /// dispatcher. The dispatcher extends it while the handler runs, so it only bounds how
    /// soon a delivery of a crashed or frozen process runs again. Default: 30 s. Must be
    /// ≥ 1 s.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Orders the deliveries per event key: those whose events share a key run one at a
    /// time, in publish order, across all dispatchers; different keys run in parallel, and
    /// deliveries of events without a key are unordered. A retrying delivery holds back only
    /// its own key; a dead one holds it as the [dead-key policy](Self::dead_key_policy) says.
    /// Default: unordered. See the README's "Ordering" section for what it costs.
    ///
    /// Like the patterns, this is registered when the dispatcher starts (the dispatcher
    /// started last wins) and applies to the deliveries published from then on.
    pub fn ordered(mut self) -> Self {
        self.ordered = true;
        self
    }

    /// What an ordered subscription does with a key whose delivery went dead. Default:
    /// [`DeadKeyPolicy::Block`]. Applies only to an [ordered](Self::ordered) subscription.
    pub fn dead_key_policy(mut self, policy: DeadKeyPolicy) -> Self {
        self.dead_key = policy;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        validate_name(&self.name)?;
        if self.patterns.is_empty() {
            return Err(Error::InvalidEventType {
                type_name: String::new(),
                reason: "a subscription needs at least one pattern",
            });
        }
        for p in &self.patterns {
            validate::validate_pattern(p)?;
        }
        if self.concurrency == 0 {
            return Err(Error::config("concurrency", "must be at least 1"));
        }
        if self.handler_timeout.is_zero() {
            return Err(Error::config(
                "handler_timeout",
                "must be greater than zero",
            ));
        }
        if self.lease < Duration::from_secs(1) {
            return Err(Error::config("lease", "must be at least 1 second"));
        }
        self.retry.validate()
    }
}

/// Checks a subscription name: 1 to 200 bytes of ASCII letters, digits and `._:-`.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "must not be empty"
    } else if name.len() > MAX_SUBSCRIPTION_NAME_LEN {
        "longer than 200 bytes"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
    {
        "only ASCII letters, digits, '.', '_', ':' and '-' are allowed"
    } else {
        return Ok(());
    };
    Err(Error::InvalidSubscriptionName {
        name: name.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("opportunity-service.on-property-created").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name(&"x".repeat(201)).is_err());
    }
}
