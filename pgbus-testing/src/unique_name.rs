//! Names of temporary directories and databases that no other process or call uses.

use std::sync::atomic::{AtomicU64, Ordering};

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A name no other process or earlier call used: prefix, pid, counter and random bits.
/// Short enough for a PostgreSQL identifier with the prefixes used here.
pub(crate) fn unique_name(prefix: &str) -> String {
    let random = uuid::Uuid::now_v7().simple().to_string();
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed),
        &random[24..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_fit_an_identifier() {
        let (a, b) = (unique_name("pgbus_test"), unique_name("pgbus_test"));
        assert_ne!(a, b);
        assert!(a.len() < 63, "{a}");
    }
}
