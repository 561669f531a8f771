//! Where results go: JSON result files and SVG plots.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::Res;

pub fn timestamp() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()
}

/// Where result files go: `$PGBUS_BENCH_OUT`, else `target/pgbus-bench` of this crate.
pub fn out_dir() -> PathBuf {
    std::env::var_os("PGBUS_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pgbus-bench"))
}

/// `$var`, else `benches/results/<file>` of this crate.
pub fn svg_path(var: &str, file: &str) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("benches/results")
            .join(file)
    })
}

/// The report in the results file `$var` names, when it is set: a bench then only redraws its
/// plot from it.
pub fn report_to_redraw(var: &str) -> Option<Value> {
    let path = std::env::var_os(var)?;
    let bytes = std::fs::read(&path).expect("read results");
    Some(serde_json::from_slice(&bytes).expect("results JSON"))
}

pub fn write_results(prefix: &str, stamp: &str, report: &Value) -> Res<PathBuf> {
    let dir = out_dir();
    std::fs::create_dir_all(&dir)?;
    let body = serde_json::to_string_pretty(report)?;
    let file = dir.join(format!("{prefix}-{stamp}.json"));
    std::fs::write(&file, &body)?;
    let latest = if prefix == "results" {
        "latest.json".to_owned()
    } else {
        format!("{prefix}-latest.json")
    };
    std::fs::write(dir.join(latest), &body)?;
    Ok(file)
}
