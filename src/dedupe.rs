//! Dedupe scopes: within what a dedupe key must be unique.

/// Within what an event's dedupe key is unique: a second event with the same key *in the
/// same scope* is a duplicate (it writes nothing and publishing reports
/// [`PublishOutcome::Duplicate`](crate::PublishOutcome::Duplicate)).
///
/// The default is [`DedupeScope::EventType`]: a key names one occurrence of one kind of
/// fact (`invoice.paid` of invoice `1`), and two kinds of facts that happen to use the same
/// key (`user.created` of user `1`) are not duplicates of each other.
///
/// A key is kept (and deduplicates) for the dispatcher's dedupe retention (by default its
/// event retention, 7 days), counted from the first event's publish; after that the same
/// key publishes a new event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum DedupeScope {
    /// Unique among the events of the same type (the default).
    #[default]
    EventType,
    /// Unique among the events of the same source (the publisher's).
    Source,
    /// Unique across all events, whatever their type and source.
    Global,
}

impl DedupeScope {
    /// The scope as stored in `pgbus.dedupe_keys.scope`: `type:<event type>`,
    /// `source:<source>` or `*` (the SQL function `pgbus.publish` writes `type:<type>`).
    pub(crate) fn column(self, event_type: &str, source: &str) -> String {
        match self {
            DedupeScope::EventType => format!("type:{event_type}"),
            DedupeScope::Source => format!("source:{source}"),
            DedupeScope::Global => "*".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_name_what_they_are_unique_within() {
        assert_eq!(DedupeScope::default(), DedupeScope::EventType);
        assert_eq!(
            DedupeScope::EventType.column("invoice.paid", "billing"),
            "type:invoice.paid"
        );
        assert_eq!(
            DedupeScope::Source.column("invoice.paid", "billing"),
            "source:billing"
        );
        assert_eq!(DedupeScope::Global.column("invoice.paid", "billing"), "*");
    }
}
