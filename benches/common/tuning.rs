//! Dispatcher and subscription settings from the environment.

use std::time::Duration;

use pgbus::{Dispatcher, RawHandler, Subscription};
use serde_json::{Value, json};
use sqlx::postgres::PgPool;

use super::{EVENT_TYPE, Res, env_opt_usize};

/// Dispatcher and subscription settings: library defaults unless overridden by
/// `PGBUS_BATCH_SIZE`, `PGBUS_CONCURRENCY`, `PGBUS_COMPLETE_BATCH`, `PGBUS_COMPLETE_DELAY_MS`,
/// `PGBUS_POLL_MS`.
#[derive(Debug, Clone, Default)]
pub struct Tuning {
    pub batch_size: Option<usize>,
    pub concurrency: Option<usize>,
    pub complete_batch: Option<usize>,
    pub complete_delay_ms: Option<usize>,
    pub poll_ms: Option<usize>,
}

impl Tuning {
    pub fn from_env() -> Self {
        Tuning {
            batch_size: env_opt_usize("PGBUS_BATCH_SIZE"),
            concurrency: env_opt_usize("PGBUS_CONCURRENCY"),
            complete_batch: env_opt_usize("PGBUS_COMPLETE_BATCH"),
            complete_delay_ms: env_opt_usize("PGBUS_COMPLETE_DELAY_MS"),
            poll_ms: env_opt_usize("PGBUS_POLL_MS"),
        }
    }

    pub fn describe(&self) -> Value {
        let show = |v: Option<usize>, default: &str| {
            v.map_or_else(|| format!("{default} (default)"), |v| v.to_string())
        };
        json!({
            "batch_size": show(self.batch_size, "500"),
            "concurrency": show(self.concurrency, "32"),
            "complete_batch": show(self.complete_batch, "1000"),
            "complete_delay_ms": show(self.complete_delay_ms, "0"),
            "poll_ms": show(self.poll_ms, "1000"),
            "listen": true,
            "is_default": self.batch_size.is_none() && self.concurrency.is_none()
                && self.complete_batch.is_none() && self.complete_delay_ms.is_none()
                && self.poll_ms.is_none(),
        })
    }

    pub fn subscription(&self, name: &str, handler: impl RawHandler) -> Subscription {
        self.tuned(Subscription::raw(name, [EVENT_TYPE], handler))
    }

    /// A subscription with a transactional handler.
    pub fn tx_subscription(&self, name: &str, handler: impl pgbus::RawTxHandler) -> Subscription {
        self.tuned(Subscription::raw_tx(name, [EVENT_TYPE], handler))
    }

    fn tuned(&self, sub: Subscription) -> Subscription {
        match self.concurrency {
            Some(c) => sub.concurrency(c),
            None => sub,
        }
    }

    pub fn dispatcher(&self, pool: &PgPool, subs: Vec<Subscription>) -> Res<Dispatcher> {
        let mut b = Dispatcher::builder(pool.clone()).shutdown_timeout(Duration::from_secs(10));
        for s in subs {
            b = b.subscribe(s);
        }
        if let Some(n) = self.batch_size {
            b = b.batch_size(n);
        }
        if let Some(n) = self.complete_batch {
            b = b.complete_batch(n);
        }
        if let Some(ms) = self.complete_delay_ms {
            b = b.complete_delay(Duration::from_millis(ms as u64));
        }
        if let Some(ms) = self.poll_ms {
            b = b.poll_interval(Duration::from_millis(ms as u64));
        }
        Ok(b.build()?)
    }
}
