//! What a run ran on: the machine, the PostgreSQL version and settings.

use serde_json::{Value, json};
use sqlx::Connection;

use super::{Res, Server};

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

pub fn machine() -> Value {
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    json!({
        "nproc": nproc,
        "memory_gib": (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "cpu_model": model,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "loadavg_at_start": read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        "rustc": rustc,
    })
}

const SETTINGS: &[&str] = &[
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_level",
    "shared_buffers",
    "max_connections",
    "max_wal_size",
    "checkpoint_timeout",
    "work_mem",
    "autovacuum",
    "autovacuum_naptime",
    "jit",
    "shared_preload_libraries",
];

pub async fn postgres(server: &Server) -> Res<Value> {
    let mut c = server.admin().await?;
    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(&mut c)
        .await?;
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY($1) ORDER BY name",
    )
    .bind(SETTINGS)
    .fetch_all(&mut c)
    .await?;
    c.close().await?;
    let settings: serde_json::Map<String, Value> = rows
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Ok(json!({
        "version": version,
        "server": if server.is_throwaway() { "throwaway cluster started by the bench (pgbus_testing::ClusterOptions::durable())" } else { "DATABASE_URL" },
        "settings": settings,
    }))
}

pub fn print_header(machine: &Value, pg: &Value) {
    println!(
        "machine: {} vCPU, {} GiB RAM, {} (kernel {}; load average at start {})",
        machine["nproc"],
        machine["memory_gib"],
        machine["cpu_model"].as_str().unwrap_or("?"),
        machine["kernel"].as_str().unwrap_or("?"),
        machine["loadavg_at_start"].as_str().unwrap_or("?"),
    );
    println!("server:  {}", pg["version"].as_str().unwrap_or("?"));
    let s = pg["settings"].as_object().cloned().unwrap_or_default();
    let line: Vec<String> = s
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("?")))
        .collect();
    println!(
        "         {} ({})",
        line.join(" "),
        pg["server"].as_str().unwrap_or("")
    );
}

/// Starts the server and prints the machine and server header; returns the server and both
/// descriptions (for the results file).
pub async fn start_described() -> Res<(Server, Value, Value)> {
    let server = Server::start().await?;
    let machine = machine();
    let pg = postgres(&server).await?;
    print_header(&machine, &pg);
    Ok((server, machine, pg))
}
