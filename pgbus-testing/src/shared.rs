//! [`shared_cluster`]: the one cluster a process's test databases live on.

use crate::{Cluster, ClusterOptions, TestingError};

static SHARED_CLUSTER: tokio::sync::OnceCell<Cluster> = tokio::sync::OnceCell::const_new();

/// The process's shared cluster with default options, started on first use. Unix only.
///
/// It is never dropped; its guardian stops it and removes its directory when the process
/// exits. Don't stop or kill it: other tests use it. Fault tests start their own
/// [`Cluster`].
///
/// # Errors
///
/// As [`Cluster::start`]. A failed start is retried by the next call.
pub async fn shared_cluster() -> Result<&'static Cluster, TestingError> {
    SHARED_CLUSTER
        .get_or_try_init(|| Cluster::start(ClusterOptions::default()))
        .await
}
