//! [`ClusterOptions`]: the server settings of a [`Cluster`](crate::Cluster).

/// Server settings for a [`Cluster`](crate::Cluster).
///
/// The default favours speed (no fsync, asynchronous commit): right for tests, whose data
/// need not survive an OS crash. [`ClusterOptions::durable`] is for benchmarks.
///
/// ```
/// let opts = pgbus_testing::ClusterOptions {
///     max_connections: 50,
///     extra_settings: vec![("log_min_duration_statement".into(), "100ms".into())],
///     ..pgbus_testing::ClusterOptions::default()
/// };
/// assert!(!opts.fsync);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    /// `fsync` (and `full_page_writes`, which is set to the same value). Default: off.
    pub fsync: bool,
    /// `synchronous_commit`. Default: off.
    pub synchronous_commit: bool,
    /// `shared_buffers`, e.g. `"128MB"` (the default).
    pub shared_buffers: String,
    /// `max_connections`. Default: 200.
    pub max_connections: u32,
    /// Further `-c name=value` server settings. Default: none.
    pub extra_settings: Vec<(String, String)>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            fsync: false,
            synchronous_commit: false,
            shared_buffers: "128MB".to_owned(),
            max_connections: 200,
            extra_settings: Vec::new(),
        }
    }
}

impl ClusterOptions {
    /// Settings for benchmarks: `fsync` and `synchronous_commit` on, 512MB shared buffers.
    pub fn durable() -> Self {
        ClusterOptions {
            fsync: true,
            synchronous_commit: true,
            shared_buffers: "512MB".to_owned(),
            ..ClusterOptions::default()
        }
    }

    /// The `-c name=value` settings `postgres` is started with.
    pub(crate) fn server_settings(&self) -> Vec<String> {
        let mut settings = vec![
            "listen_addresses=127.0.0.1".to_owned(),
            format!("fsync={}", on_off(self.fsync)),
            format!("full_page_writes={}", on_off(self.fsync)),
            format!("synchronous_commit={}", on_off(self.synchronous_commit)),
            format!("shared_buffers={}", self.shared_buffers),
            format!("max_connections={}", self.max_connections),
        ];
        settings.extend(self.extra_settings.iter().map(|(k, v)| format!("{k}={v}")));
        settings
    }

    /// The main settings for reports: `fsync=on, synchronous_commit=on, shared_buffers=512MB`.
    pub(crate) fn summary(&self) -> String {
        format!(
            "fsync={}, synchronous_commit={}, shared_buffers={}",
            on_off(self.fsync),
            on_off(self.synchronous_commit),
            self.shared_buffers
        )
    }
}

fn on_off(setting: bool) -> &'static str {
    if setting { "on" } else { "off" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_follow_the_options() {
        let durable = ClusterOptions::durable();
        assert_eq!(
            durable.summary(),
            "fsync=on, synchronous_commit=on, shared_buffers=512MB"
        );
        let opts = ClusterOptions {
            extra_settings: vec![("work_mem".into(), "8MB".into())],
            ..ClusterOptions::default()
        };
        let settings = opts.server_settings();
        assert!(settings.contains(&"fsync=off".to_owned()));
        assert!(settings.contains(&"full_page_writes=off".to_owned()));
        assert_eq!(settings.last().map(String::as_str), Some("work_mem=8MB"));
    }
}
