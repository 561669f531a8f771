//! The benches' environment: logging, `PGBUS_*` variables, how the bench was invoked, the clock.

use std::time::{SystemTime, UNIX_EPOCH};

use super::Res;

/// Logs the library's warnings (lease takeovers, failed claims or writes, retries) to stderr
/// with timestamps, so that a stall in a run can be matched with what the dispatcher saw.
/// `RUST_LOG` overrides the level (default `pgbus=warn`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("pgbus=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        _ => default,
    }
}

pub fn env_f64(name: &str, default: f64) -> f64 {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        _ => default,
    }
}

pub fn env_opt_usize(name: &str) -> Option<usize> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|_| env_usize(name, 0))
}

/// `PGBUS_BENCH_STATEMENTS=1`: load pg_stat_statements (throwaway cluster only) and print the
/// top statements of each drain. Off by default: it costs a little on every statement.
pub fn statements_enabled() -> bool {
    std::env::var("PGBUS_BENCH_STATEMENTS").is_ok_and(|v| !v.is_empty() && v != "0")
}

pub fn quick() -> bool {
    std::env::var("PGBUS_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `cargo bench` passes `--bench`; `cargo test --benches` does not. A bench that is run as a
/// test only says how to run it (it would otherwise start a server and run for minutes).
pub fn invoked_as_bench() -> bool {
    std::env::args().any(|a| a == "--bench")
        || std::env::var("PGBUS_BENCH_FORCE").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The rest of a bench's `main`: run as a test, only says how to run it (`<what>: run it with
/// ...`); else runs `run`, and exits with 1 after `<failed>: <error>` when it fails.
pub async fn run_bench(bench: &str, what: &str, failed: &str, run: impl Future<Output = Res<()>>) {
    if !invoked_as_bench() {
        eprintln!("{what}: run it with `cargo bench --bench {bench}` (skipped)");
        return;
    }
    if let Err(e) = run.await {
        eprintln!("{failed}: {e}");
        std::process::exit(1);
    }
}

pub fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}
