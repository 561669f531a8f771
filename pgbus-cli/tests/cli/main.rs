//! The `pgbus` binary run for real against a throwaway PostgreSQL (the test support's
//! cluster, or `DATABASE_URL`): every command, its output, its exit code, and every `--json`
//! output parsed.

mod dead;
mod events;
mod ops;
mod subscriptions;
mod usage;

pub use std::io::{BufRead, BufReader};
pub use std::process::Stdio;
pub use std::time::{Duration, Instant};

pub use pgbus::{Delivery, HandlerError, NewEvent, Publisher, RawHandler, Subscription};
pub use pgbus_testing::TestDatabase;
pub use serde_json::{Value, json};
pub use sqlx::PgPool;

const BIN: &str = env!("CARGO_BIN_EXE_pgbus");

/// What one run of the binary did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Stdout parsed as JSON.
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs `pgbus args...` on `url` (none: no URL at all), with `stdin`.
async fn pgbus_with(url: Option<&str>, args: &[&str], stdin: &str) -> Run {
    let mut cmd = assert_cmd::Command::new(BIN);
    cmd.env_remove("DATABASE_URL")
        .args(args)
        .write_stdin(stdin.to_owned());
    if let Some(url) = url {
        cmd.arg("--database-url").arg(url);
    }
    let out = tokio::task::spawn_blocking(move || cmd.timeout(Duration::from_secs(60)).output())
        .await
        .unwrap()
        .expect("running pgbus");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn pgbus(db: &TestDatabase, args: &[&str]) -> Run {
    pgbus_with(Some(db.url()), args, "").await
}

async fn database() -> TestDatabase {
    TestDatabase::create().await.expect("a test database")
}

/// Polls `f` every 20 ms until it is true, for at most 20 s.
async fn wait_until<F: AsyncFnMut() -> bool>(what: &str, mut f: F) {
    let started = Instant::now();
    while !f().await {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// A handler that always gives up.
struct Declines;

#[pgbus::async_trait]
impl RawHandler for Declines {
    async fn handle(&self, _: &Delivery) -> Result<(), HandlerError> {
        Err(HandlerError::permanent("card declined"))
    }
}

/// Registers `name` on `pattern` (a dispatcher started and stopped).
async fn register(pool: &PgPool, name: &str, pattern: &str) {
    let handle = pgbus::Dispatcher::builder(pool.clone())
        .subscribe(Subscription::raw(name, [pattern], Declines))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    handle.shutdown().await.unwrap();
}

async fn publish(pool: &PgPool, event: NewEvent) -> uuid::Uuid {
    let mut conn = pool.acquire().await.unwrap();
    Publisher::new("tests")
        .unwrap()
        .publish(&mut conn, event)
        .await
        .unwrap()
        .id()
}
