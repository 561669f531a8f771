//! The independent implementations some tests check pgbus against (the Python CloudEvents
//! SDK and jsonschema, the broker clients nats-py and pika, `@asyncapi/parser`, `stripe`), installed by `.ci/tools` into
//! `target/ci-tools` (or `$PGBUS_TOOLS_DIR`), and the scripts in `tests/tools/` that drive
//! them.
//!
//! A test whose tool is missing prints one line and passes, except under `CI=true`, where
//! a missing tool is a failure.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn dir() -> PathBuf {
    std::env::var_os("PGBUS_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ci-tools"))
}

/// A script of `tests/tools/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tools")
        .join(name)
}

/// Says that `tool` is missing: a failure under `CI=true`, else one line and a skip.
pub fn missing(tool: &str) {
    let message = format!(
        "{tool} is not installed: run .ci/tools (it installs into {})",
        dir().display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}");
    }
    eprintln!("skipped: {message}");
}

/// The Python of the tools' virtual environment, if it has `cloudevents` and `jsonschema`.
pub fn python() -> Option<PathBuf> {
    let python = dir().join("venv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import cloudevents, jsonschema"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Some(python)
    } else {
        missing("the Python CloudEvents SDK and jsonschema");
        None
    }
}

/// The Python of the tools' virtual environment, if it has `psycopg`.
pub fn python_psycopg() -> Option<PathBuf> {
    python_with("psycopg", "Python with psycopg")
}

/// The Python of the tools' virtual environment, if it has the broker clients `nats-py`
/// and `pika`.
pub fn broker_python() -> Option<PathBuf> {
    python_with("nats, pika", "the Python broker clients nats-py and pika")
}

/// The Python of the tools' virtual environment, if it can import `modules`; else says
/// (once) that `what` is missing.
fn python_with(modules: &str, what: &str) -> Option<PathBuf> {
    let python = dir().join("venv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Some(python)
    } else {
        missing(what);
        None
    }
}

/// A `node` command that finds the tools' packages, if `@asyncapi/parser` and `stripe` are
/// there.
pub fn node() -> Option<Command> {
    let modules = dir().join("node/node_modules");
    let node = || {
        let mut c = Command::new("node");
        c.env("NODE_PATH", &modules);
        c
    };
    let ok = node()
        .args(["-e", "require('@asyncapi/parser'); require('stripe')"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Some(node())
    } else {
        missing("node with @asyncapi/parser and stripe");
        None
    }
}

/// Runs `command` with `input` on its standard input; its standard output, or a panic with
/// its standard error when it fails.
pub fn run(mut command: Command, input: &str) -> String {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("writing the script's input");
    let out = child.wait_with_output().expect("waiting for the script");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}\n{stdout}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// [`run`] in a blocking task, for async tests that serve while the script runs.
pub async fn run_async(command: Command, input: String) -> String {
    tokio::task::spawn_blocking(move || run(command, &input))
        .await
        .expect("the script's task")
}
