//! W3C trace context (`traceparent`, `tracestate`) carried in an event's headers: captured at
//! publish from the current span, and made the parent of the handler's span, with feature
//! `otel` (OpenTelemetry through `tracing-opentelemetry`). A header the caller set is never
//! replaced; without the feature the headers are carried through untouched, like any other.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::event::NewEvent;

/// The W3C trace context header naming the parent span.
#[cfg(feature = "otel")]
const TRACEPARENT: &str = "traceparent";
/// The W3C trace context header with vendor-specific state.
#[cfg(feature = "otel")]
const TRACESTATE: &str = "tracestate";

/// Adds the current span's trace context to the events that carry none (feature `otel`; the
/// current span must be recorded by a `tracing-opentelemetry` layer).
#[cfg_attr(not(feature = "otel"), allow(unused_variables))]
pub(crate) fn inject(events: &mut [Cow<'_, NewEvent>]) {
    #[cfg(feature = "otel")]
    {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;

        let span = tracing::Span::current();
        if span.is_disabled() {
            return;
        }
        let cx = span.context();
        let span_ref = cx.span();
        let sc = span_ref.span_context();
        if !sc.is_valid() {
            return;
        }
        let parent = w3c::format(sc);
        let state = sc.trace_state().header();
        for e in events {
            if e.headers.contains_key(TRACEPARENT) {
                continue;
            }
            let e = e.to_mut();
            e.headers.insert(TRACEPARENT.to_owned(), parent.clone());
            if !state.is_empty() {
                (e.headers.entry(TRACESTATE.to_owned())).or_insert_with(|| state.clone());
            }
        }
    }
}

/// Makes the span of a delivery a child of the span its event names in `traceparent`
/// (feature `otel`); a missing or malformed header leaves the span as it is.
#[cfg_attr(not(feature = "otel"), allow(unused_variables))]
pub(crate) fn adopt(span: &tracing::Span, headers: &BTreeMap<String, String>) {
    #[cfg(feature = "otel")]
    {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;

        let Some(parent) = headers.get(TRACEPARENT) else {
            return;
        };
        let state = headers.get(TRACESTATE).map(String::as_str);
        if let Some(sc) = w3c::parse(parent, state) {
            let cx = opentelemetry::Context::new().with_remote_span_context(sc);
            let _ = span.set_parent(cx);
        }
    }
}

/// The `traceparent` format, version 00 (<https://www.w3.org/TR/trace-context/>).
#[cfg(feature = "otel")]
mod w3c {
    use std::str::FromStr;

    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    /// `00-<trace id>-<span id>-<flags>`.
    pub(super) fn format(sc: &SpanContext) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    }

    /// A remote span context from the headers, or `None` when `traceparent` is not valid
    /// (wrong lengths, not lowercase hex, version ff, an all-zero id). A `tracestate` that
    /// does not parse is dropped, as the specification allows.
    pub(super) fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<SpanContext> {
        let mut parts = traceparent.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        // Later versions may add fields after the flags; version 00 has exactly four.
        if !hex(version, 2) || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        if !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
            return None;
        }
        let trace_id = TraceId::from_hex(trace).ok()?;
        let span_id = SpanId::from_hex(span).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
            return None;
        }
        let state = tracestate
            .and_then(|s| TraceState::from_str(s).ok())
            .unwrap_or_default();
        Some(SpanContext::new(
            trace_id,
            span_id,
            TraceFlags::new(flags & TraceFlags::SAMPLED.to_u8()),
            true,
            state,
        ))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

        #[test]
        fn a_traceparent_parses_and_formats_back_to_itself() {
            let sc = parse(PARENT, Some("congo=t61rcWkgMzE")).expect("valid");
            assert!(sc.is_remote() && sc.is_sampled());
            assert_eq!(format(&sc), PARENT);
            assert_eq!(sc.trace_state().header(), "congo=t61rcWkgMzE");
        }

        #[test]
        fn malformed_traceparents_are_refused() {
            for bad in [
                "",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
                "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            ] {
                assert!(parse(bad, None).is_none(), "{bad:?}");
            }
        }
    }
}
