//! Where a relay sends each event: a subject (NATS) or routing key (AMQP) from its type.

use std::fmt;
use std::sync::Arc;

use crate::catalog::pattern::matches;
use crate::error::Result;
use crate::event::EventEnvelope;
use crate::validate::validate_pattern;

type DestinationFn = Arc<dyn Fn(&EventEnvelope) -> String + Send + Sync>;

/// The mapping from an event to its destination: a NATS subject, an AMQP routing key.
///
/// Routes are tried in the order they were added; the first whose pattern matches the event
/// type gives the destination. Without a matching route, the destination is the prefix
/// followed by the event type: with [`Destinations::prefix`]`("events.")`, the event type
/// `property.created` goes to `events.property.created`.
///
/// ```
/// use pgbus::relay::Destinations;
///
/// let destinations = Destinations::prefix("events.")
///     .route("deal.closed_won", "sales.won")?
///     .route("audit.*", "audit")?;
/// assert_eq!(destinations.for_type("property.created"), "events.property.created");
/// assert_eq!(destinations.for_type("deal.closed_won"), "sales.won");
/// assert_eq!(destinations.for_type("audit.login.failed"), "audit");
/// # Ok::<(), pgbus::Error>(())
/// ```
#[derive(Clone)]
pub struct Destinations {
    prefix: String,
    routes: Vec<(String, String)>,
    custom: Option<DestinationFn>,
}

impl fmt::Debug for Destinations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Destinations")
            .field("prefix", &self.prefix)
            .field("routes", &self.routes)
            .field("custom", &self.custom.is_some())
            .finish()
    }
}

impl Default for Destinations {
    /// The event type itself: [`Destinations::prefix`]`("")`.
    fn default() -> Self {
        Destinations::prefix("")
    }
}

impl Destinations {
    /// Each event to `prefix` followed by its type.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        Destinations {
            prefix: prefix.into(),
            routes: Vec::new(),
            custom: None,
        }
    }

    /// Events whose type matches `pattern` (a type name whose segments may be `*`, as in a
    /// subscription) to `destination`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEventType`](crate::Error::InvalidEventType) for an invalid pattern.
    pub fn route(
        mut self,
        pattern: impl Into<String>,
        destination: impl Into<String>,
    ) -> Result<Self> {
        let pattern = pattern.into();
        validate_pattern(&pattern)?;
        self.routes.push((pattern, destination.into()));
        Ok(self)
    }

    /// Every event to what `f` says (routes and prefix are then unused): for destinations
    /// from the subject, the source or a header.
    pub fn with_fn(f: impl Fn(&EventEnvelope) -> String + Send + Sync + 'static) -> Self {
        Destinations {
            prefix: String::new(),
            routes: Vec::new(),
            custom: Some(Arc::new(f)),
        }
    }

    /// The destination of an event of type `event_type` by the routes and prefix (a
    /// [`with_fn`](Self::with_fn) mapping needs the whole event: see
    /// [`destination`](Self::destination)).
    pub fn for_type(&self, event_type: &str) -> String {
        self.routes
            .iter()
            .find(|(pattern, _)| matches(pattern, event_type))
            .map_or_else(
                || format!("{}{event_type}", self.prefix),
                |(_, d)| d.clone(),
            )
    }

    /// The destination of `event`.
    pub fn destination(&self, event: &EventEnvelope) -> String {
        match &self.custom {
            Some(f) => f(event),
            None => self.for_type(&event.event_type),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(event_type: &str) -> EventEnvelope {
        EventEnvelope {
            id: uuid::Uuid::now_v7(),
            event_type: event_type.into(),
            source: "listings".into(),
            subject: Some("property/7".into()),
            key: None,
            data: serde_json::Value::Null,
            headers: Default::default(),
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn routes_in_order_then_the_prefix() {
        let d = Destinations::prefix("events.")
            .route("property.photo.*", "photos")
            .unwrap()
            .route("property.*", "properties")
            .unwrap();
        assert_eq!(d.for_type("property.photo.added"), "photos");
        assert_eq!(d.for_type("property.created"), "properties");
        assert_eq!(d.for_type("deal.won"), "events.deal.won");
        assert_eq!(Destinations::default().for_type("deal.won"), "deal.won");
        assert!(Destinations::prefix("x").route("bad pattern", "y").is_err());
    }

    #[test]
    fn a_function_sees_the_whole_event() {
        let d = Destinations::with_fn(|e| format!("{}.{}", e.source, e.event_type));
        assert_eq!(d.destination(&envelope("deal.won")), "listings.deal.won");
        assert!(format!("{d:?}").contains("custom: true"));
    }
}
