//! Identifiers of channels, messages, operations and schemas: `[A-Za-z0-9_-]`, unique.

use std::collections::BTreeSet;

/// Hands out unique identifiers.
#[derive(Debug, Default)]
pub(super) struct Ids {
    taken: BTreeSet<String>,
}

impl Ids {
    /// A fresh identifier made from `name`: other characters become `_`, and a taken one
    /// gets a suffix `_2`, `_3`, ...
    pub(super) fn fresh(&mut self, name: &str) -> String {
        let base = sanitize(name);
        let mut id = base.clone();
        let mut n = 2;
        while !self.taken.insert(id.clone()) {
            id = format!("{base}_{n}");
            n += 1;
        }
        id
    }
}

/// `name` with every character outside `[A-Za-z0-9_-]` replaced by `_`.
pub(super) fn sanitize(name: &str) -> String {
    let id: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if id.is_empty() { "_".to_owned() } else { id }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sanitized_and_unique() {
        let mut ids = Ids::default();
        assert_eq!(ids.fresh("property.created"), "property_created");
        assert_eq!(ids.fresh("property_created"), "property_created_2");
        assert_eq!(ids.fresh("property:created"), "property_created_3");
        assert_eq!(ids.fresh(""), "_");
    }
}
