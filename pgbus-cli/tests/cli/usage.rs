//! `--help`, usage errors and an unreachable database.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_usage_and_connection_errors() {
    let help = pgbus_with(None, &["--help"], "").await.ok();
    for text in [
        "Exit codes",
        "pgbus dead retry 42",
        "health",
        "tail",
        "replay",
    ] {
        assert!(
            help.stdout.contains(text),
            "--help lacks {text:?}: {}",
            help.stdout
        );
    }
    let dead_help = pgbus_with(None, &["dead", "retry", "--help"], "")
        .await
        .ok();
    assert!(dead_help.stdout.contains("--keep-attempts"));
    let no_command = pgbus_with(None, &[], "").await;
    assert_eq!(no_command.code, 2);
    let no_url = pgbus_with(None, &["status"], "").await;
    assert_eq!(no_url.code, 2);
    assert!(no_url.stderr.contains("DATABASE_URL"), "{}", no_url.stderr);
    let nowhere = "postgres://nobody@127.0.0.1:1/none";
    let refused = pgbus_with(Some(nowhere), &["status"], "").await;
    assert_eq!(refused.code, 2);
    assert_eq!(
        refused.stderr.lines().count(),
        1,
        "one line: {}",
        refused.stderr
    );
    assert!(refused.stderr.starts_with("pgbus: cannot connect"));
    // A probe on a database it cannot reach: unhealthy, exit code 1.
    let probe = pgbus_with(Some(nowhere), &["health", "--json"], "").await;
    assert_eq!(probe.code, 1);
    assert_eq!(
        probe.json()["problems"][0]["problem"],
        "database_unreachable"
    );
}
