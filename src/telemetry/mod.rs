//! What pgbus tells the outside about its work: metrics through the `metrics` facade (feature
//! `metrics`, `metrics.rs`, sampled gauges in `gauges.rs`) and W3C trace context carried from
//! publish into the handler's span (`trace_context.rs`, OpenTelemetry with feature `otel`).
//! Without the features every function here does nothing, so call sites need no `cfg`.

pub(crate) mod gauges;
pub(crate) mod metrics;
pub(crate) mod trace_context;
