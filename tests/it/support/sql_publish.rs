//! One event's inputs, published either with the Rust API or with `pgbus.publish` from SQL.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use pgbus::{NewEvent, Publisher};
use serde_json::Value;
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

/// What a caller hands to either publish path.
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub event_type: String,
    pub data: Value,
    pub subject: Option<String>,
    pub key: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub dedupe_key: Option<String>,
    pub priority: i16,
    pub deliver_at: Option<DateTime<Utc>>,
}

impl Input {
    pub fn new(event_type: &str, data: Value) -> Input {
        Input {
            event_type: event_type.to_owned(),
            data,
            ..Input::default()
        }
    }

    pub fn new_event(&self) -> NewEvent {
        let mut e =
            NewEvent::raw(self.event_type.clone(), self.data.clone()).priority(self.priority);
        if let Some(s) = &self.subject {
            e = e.subject(s.clone());
        }
        if let Some(k) = &self.key {
            e = e.key(k.clone());
        }
        for (name, value) in &self.headers {
            e = e.header(name.clone(), value.clone());
        }
        if let Some(d) = &self.dedupe_key {
            e = e.dedupe_key(d.clone());
        }
        if let Some(at) = self.deliver_at {
            e = e.deliver_at(at);
        }
        e
    }

    /// Publishes with the Rust API; the event id (the original's for a duplicate).
    pub async fn publish_rust(
        &self,
        conn: &mut PgConnection,
        publisher: &Publisher,
    ) -> pgbus::Result<Uuid> {
        Ok(publisher.publish(conn, self.new_event()).await?.id())
    }

    /// Publishes with `SELECT pgbus.publish(...)`; the id it returns.
    pub async fn publish_sql(&self, conn: &mut PgConnection, source: &str) -> sqlx::Result<Uuid> {
        sqlx::query_scalar("SELECT pgbus.publish($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(&self.event_type)
            .bind(Json(&self.data))
            .bind(source)
            .bind(&self.subject)
            .bind(&self.key)
            .bind(Json(&self.headers))
            .bind(&self.dedupe_key)
            .bind(self.priority)
            .bind(self.deliver_at)
            .fetch_one(conn)
            .await
    }
}
