//! The claim floor: claiming and deleting deliveries by plain SQL, four ways.

use serde_json::Value;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::common::Res;

pub const PICK: &str = "SELECT id FROM pgbus.deliveries
    WHERE subscription = 'bench.sub' AND state < 2 AND NOT solo AND run_at <= now()
    ORDER BY priority, run_at, id LIMIT $1 FOR UPDATE SKIP LOCKED";

/// `WITH {name} AS ({rows})`, each of those claimed rows' id and attempts with its event.
fn joined_to_events(name: &str, rows: &str) -> String {
    format!(
        "WITH {name} AS ({rows})
             SELECT {name}.id, {name}.attempts, e.id, e.type, e.source, e.subject, e.key, e.data, e.headers,
                    e.created_at
             FROM {name} JOIN pgbus.events e ON e.id = {name}.event_id"
    )
}

fn lease_sql(payload: bool) -> String {
    let upd = format!(
        "UPDATE pgbus.deliveries d SET state = 1, attempts = d.attempts + 1,
                run_at = now() + interval '30 seconds'
         FROM ({PICK}) s WHERE d.id = s.id RETURNING d.id, d.event_id, d.attempts"
    );
    if payload {
        joined_to_events("c", &upd)
    } else {
        format!("WITH c AS ({upd}) SELECT c.id FROM c")
    }
}

/// The locked rows read in a CTE and joined to their events by primary key. (Written as
/// `WHERE id IN (pick)`, this planned as a hash semi-join over a sequential scan of the
/// deliveries table and understated the floor.)
fn locked_sql(payload: bool) -> String {
    if payload {
        let pick = PICK.replacen("SELECT id FROM", "SELECT id, event_id, attempts FROM", 1);
        joined_to_events("d", &pick)
    } else {
        PICK.to_owned()
    }
}

type PayloadRow = (
    i64,
    i32,
    Uuid,
    String,
    String,
    Option<String>,
    Option<String>,
    Value,
    Value,
    chrono::DateTime<chrono::Utc>,
);

async fn claim_ids(conn: &mut PgConnection, sql: &str, payload: bool, n: i64) -> Res<Vec<i64>> {
    if payload {
        let rows: Vec<PayloadRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(n)
            .fetch_all(&mut *conn)
            .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    } else {
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(n)
            .fetch_all(&mut *conn)
            .await?)
    }
}

#[derive(Clone, Copy)]
pub enum ClaimKind {
    Lease { payload: bool },
    Locked { payload: bool },
}

impl ClaimKind {
    pub fn id(self) -> &'static str {
        match self {
            ClaimKind::Lease { payload: false } => "claim_lease",
            ClaimKind::Lease { payload: true } => "claim_lease_payload",
            ClaimKind::Locked { payload: false } => "claim_locked",
            ClaimKind::Locked { payload: true } => "claim_locked_payload",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ClaimKind::Lease { payload: false } => {
                "claim: UPDATE lease (SKIP LOCKED) + commit, then DELETE + commit"
            }
            ClaimKind::Lease { payload: true } => {
                "claim: UPDATE lease joined to events (payload read), then DELETE"
            }
            ClaimKind::Locked { payload: false } => {
                "claim: BEGIN; SELECT FOR UPDATE SKIP LOCKED; DELETE; COMMIT"
            }
            ClaimKind::Locked { payload: true } => {
                "claim: BEGIN; SELECT … FOR UPDATE SKIP LOCKED joined to events; DELETE; COMMIT"
            }
        }
    }
}

pub async fn claim_worker(mut conn: PgConnection, kind: ClaimKind, batch: i64) -> Res<usize> {
    let mut total = 0;
    match kind {
        ClaimKind::Lease { payload } => {
            let sql = lease_sql(payload);
            loop {
                let ids = claim_ids(&mut conn, &sql, payload, batch).await?;
                if ids.is_empty() {
                    break;
                }
                total += ids.len();
                sqlx::query(
                    "DELETE FROM pgbus.deliveries d USING unnest($1::int8[]) AS u(id)
                     WHERE d.id = u.id AND d.state = 1",
                )
                .bind(&ids)
                .execute(&mut conn)
                .await?;
            }
        }
        ClaimKind::Locked { payload } => {
            let sql = locked_sql(payload);
            loop {
                let mut tx = conn.begin().await?;
                let ids = claim_ids(&mut tx, &sql, payload, batch).await?;
                if ids.is_empty() {
                    tx.commit().await?;
                    break;
                }
                total += ids.len();
                sqlx::query(
                    "DELETE FROM pgbus.deliveries d USING unnest($1::int8[]) AS u(id) WHERE d.id = u.id",
                )
                .bind(&ids)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
        }
    }
    conn.close().await?;
    Ok(total)
}
