//! Recording metrics from data already in hand: publish knows the event types, the delivery
//! task knows when a handler started and ended, the outcome decided for it says whether it
//! was delivered, retried or dead. No statement is added anywhere; without the `metrics`
//! feature nothing is recorded. Names, labels and units are listed in the README ("Metrics").
#![cfg_attr(not(feature = "metrics"), allow(dead_code))]

use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(feature = "metrics")]
use chrono::{DateTime, Utc};

use crate::handler::Delivery;
#[cfg(feature = "metrics")]
use crate::state::DeliveryState;
use crate::state::Transition;

/// Counter: events written by publish, by `event_type`.
pub(crate) const PUBLISHED: &str = "pgbus_events_published_total";
/// Counter: deliveries whose handler succeeded, by `subscription` and `event_type`.
pub(crate) const DELIVERED: &str = "pgbus_deliveries_delivered_total";
/// Counter: failed attempts that will be retried, by `subscription` and `event_type`.
pub(crate) const RETRIED: &str = "pgbus_deliveries_retried_total";
/// Counter: deliveries that became dead letters, by `subscription` and `event_type`.
pub(crate) const DEAD: &str = "pgbus_deliveries_dead_total";
/// Histogram, seconds: how long handlers ran, by `subscription`.
pub(crate) const HANDLER_DURATION: &str = "pgbus_handler_duration_seconds";
/// Histogram, seconds: from the event's publish to its first attempt's start, by
/// `subscription`.
pub(crate) const DELIVERY_LATENCY: &str = "pgbus_delivery_latency_seconds";
/// Gauge: pending deliveries (due now or later), by `subscription`.
pub(crate) const PENDING: &str = "pgbus_subscription_pending";
/// Gauge: running deliveries (claimed by a dispatcher), by `subscription`.
pub(crate) const RUNNING: &str = "pgbus_subscription_running";
/// Gauge, seconds: how long the oldest due pending delivery has waited, by `subscription`.
pub(crate) const LAG: &str = "pgbus_subscription_lag_seconds";

/// Counts published events by type: one increment per distinct type of the batch.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn published<'a>(types: impl Iterator<Item = &'a str>) {
    #[cfg(feature = "metrics")]
    {
        let mut counts: Vec<(&str, u64)> = Vec::new();
        for t in types {
            match counts.iter_mut().find(|(seen, _)| *seen == t) {
                Some((_, n)) => *n += 1,
                None => counts.push((t, 1)),
            }
        }
        for (t, n) in counts {
            ::metrics::counter!(PUBLISHED, "event_type" => t.to_owned()).increment(n);
        }
    }
}

/// A subscription's metric handles, registered with the recorder once, when its dispatcher
/// starts (so the recorder must be installed before), so that a delivery costs no key
/// building or registry lookup: its outcome counters by event type, made on first use.
pub(crate) struct SubMetrics {
    #[cfg(feature = "metrics")]
    name: Arc<str>,
    #[cfg(feature = "metrics")]
    duration: ::metrics::Histogram,
    #[cfg(feature = "metrics")]
    latency: ::metrics::Histogram,
    #[cfg(feature = "metrics")]
    outcomes: std::sync::Mutex<std::collections::HashMap<String, Arc<Outcomes>>>,
}

/// The outcome counters of one subscription and event type.
#[cfg(feature = "metrics")]
struct Outcomes {
    delivered: ::metrics::Counter,
    retried: ::metrics::Counter,
    dead: ::metrics::Counter,
}

impl std::fmt::Debug for SubMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubMetrics").finish_non_exhaustive()
    }
}

impl SubMetrics {
    /// The handles of subscription `name`.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(name: &Arc<str>) -> SubMetrics {
        SubMetrics {
            #[cfg(feature = "metrics")]
            name: name.clone(),
            #[cfg(feature = "metrics")]
            duration: ::metrics::histogram!(HANDLER_DURATION, "subscription" => name.clone()),
            #[cfg(feature = "metrics")]
            latency: ::metrics::histogram!(DELIVERY_LATENCY, "subscription" => name.clone()),
            #[cfg(feature = "metrics")]
            outcomes: Default::default(),
        }
    }

    #[cfg(feature = "metrics")]
    fn outcomes(&self, event_type: &str) -> Arc<Outcomes> {
        let mut all = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(o) = all.get(event_type) {
            return o.clone();
        }
        let labels = [
            ("subscription", self.name.to_string()),
            ("event_type", event_type.to_owned()),
        ];
        let o = Arc::new(Outcomes {
            delivered: ::metrics::counter!(DELIVERED, &labels),
            retried: ::metrics::counter!(RETRIED, &labels),
            dead: ::metrics::counter!(DEAD, &labels),
        });
        all.insert(event_type.to_owned(), o.clone());
        o
    }
}

/// One handler run, from its start: records the publish→start latency of a first attempt,
/// and, when it ends, the handler's duration and the outcome.
#[derive(Debug)]
pub(crate) struct Run<'a> {
    started: Instant,
    #[cfg(feature = "metrics")]
    metrics: &'a SubMetrics,
    #[cfg(feature = "metrics")]
    outcomes: Arc<Outcomes>,
    #[cfg(not(feature = "metrics"))]
    metrics: std::marker::PhantomData<&'a SubMetrics>,
}

#[cfg(feature = "metrics")]
impl std::fmt::Debug for Outcomes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcomes").finish_non_exhaustive()
    }
}

impl<'a> Run<'a> {
    /// A handler starts running `delivery`, of the subscription with `metrics`, now.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn start(delivery: &Delivery, metrics: &'a SubMetrics) -> Run<'a> {
        #[cfg(feature = "metrics")]
        if delivery.attempt == 1 {
            let latency = latency(delivery.event.created_at, Utc::now());
            metrics.latency.record(latency.as_secs_f64());
        }
        Run {
            started: Instant::now(),
            #[cfg(feature = "metrics")]
            metrics,
            #[cfg(feature = "metrics")]
            outcomes: metrics.outcomes(&delivery.event.event_type),
            #[cfg(not(feature = "metrics"))]
            metrics: std::marker::PhantomData,
        }
    }

    /// How long the handler has run.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The handler ran for `duration` and its delivery goes to `transition`.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn finished(self, duration: Duration, transition: &Transition) {
        #[cfg(feature = "metrics")]
        {
            self.metrics.duration.record(duration.as_secs_f64());
            let counter = match transition.state {
                DeliveryState::Done => &self.outcomes.delivered,
                DeliveryState::Dead => &self.outcomes.dead,
                DeliveryState::Pending if transition.counted => &self.outcomes.retried,
                _ => return,
            };
            counter.increment(1);
        }
    }
}

/// The time from publish to `now`, zero when the clocks disagree the other way.
#[cfg(feature = "metrics")]
fn latency(published: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (now - published).to_std().unwrap_or_default()
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::*;

    #[test]
    fn latency_is_never_negative() {
        let t = Utc::now();
        assert_eq!(latency(t, t - chrono::Duration::seconds(1)), Duration::ZERO);
        assert_eq!(
            latency(t, t + chrono::Duration::milliseconds(1500)),
            Duration::from_millis(1500)
        );
    }
}
