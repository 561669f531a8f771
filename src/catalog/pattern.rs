//! Whether a subscription pattern matches an event type, as publishing's fan-out decides:
//! a whole `*` segment matches any text, further segments included.

/// Whether `pattern` (validated) matches `event_type`.
pub(crate) fn matches(pattern: &str, event_type: &str) -> bool {
    // The pattern's literal parts, split at each `*`; every one must appear in order, the
    // first at the start and the last at the end (SQL `LIKE` with `%` for `*`).
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == event_type;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !event_type.starts_with(first) || event_type.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &event_type[first.len()..];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn patterns_match_as_publishing_does() {
        assert!(matches("property.created", "property.created"));
        assert!(!matches("property.created", "property.created.x"));
        assert!(matches("property.*", "property.created"));
        assert!(matches("property.*", "property.photo.added"));
        assert!(!matches("property.*", "deal.closed"));
        assert!(matches("*", "anything.at.all"));
        assert!(matches("*.created", "deal.won.created"));
        assert!(!matches("*.created", "created"));
        assert!(matches("a.*.c.*", "a.b.c.d"));
        assert!(!matches("a.*.c.*", "a.b.d.e"));
        assert!(!matches("a.*.a", "a.a"));
    }
}
