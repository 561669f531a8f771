//! `PGBUS_BENCH_STATEMENTS=1`: the top statements of a drain from pg_stat_statements.

use serde_json::{Value, json};
use sqlx::{Executor, PgConnection};

use crate::common::{Res, round1, round3};

pub async fn start_statements(c: &mut PgConnection) -> Res<()> {
    c.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await?;
    c.execute("SELECT pg_stat_statements_reset()").await?;
    Ok(())
}

pub async fn top_statements(c: &mut PgConnection) -> Res<Value> {
    let rows: Vec<(String, i64, f64, f64, i64)> = sqlx::query_as(
        "SELECT regexp_replace(left(query, 200), '\\s+', ' ', 'g'), calls, total_exec_time,
                mean_exec_time, rows
         FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND query NOT ILIKE '%pg_stat_statements%'
         ORDER BY total_exec_time DESC LIMIT 8",
    )
    .fetch_all(c)
    .await?;
    Ok(Value::Array(
        rows.into_iter()
            .map(|(q, calls, total, mean, rows)| {
                json!({ "query": q, "calls": calls, "total_ms": round1(total),
                        "mean_ms": round3(mean), "rows": rows })
            })
            .collect(),
    ))
}

pub fn print_statements(s: &Value) {
    eprintln!("    pg_stat_statements (by total time):");
    for r in s.as_array().into_iter().flatten() {
        eprintln!(
            "    {:>9.1} ms total {:>7} calls {:>8.3} ms mean {:>8} rows  {}",
            r["total_ms"].as_f64().unwrap_or(0.0),
            r["calls"],
            r["mean_ms"].as_f64().unwrap_or(0.0),
            r["rows"],
            r["query"].as_str().unwrap_or("")
        );
    }
}
