//! `pgbus_testing::Cluster`: the throwaway server that fault tests kill and restart.

use std::path::PathBuf;
use std::time::Duration;

use pgbus_testing::{Cluster, ClusterOptions, TestingError};
use sqlx::{Connection, PgConnection, PgPool};

use crate::support::wait::wait_until;

async fn start() -> Cluster {
    Cluster::start(ClusterOptions::default())
        .await
        .unwrap_or_else(|e| panic!("starting a cluster failed: {e}"))
}

async fn select_1(url: &str) -> Result<i32, sqlx::Error> {
    let mut conn = PgConnection::connect(url).await?;
    let one = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await?;
    conn.close().await?;
    Ok(one)
}

fn process_exists(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        // A zombie has exited; only its parent has not collected it yet.
        .is_ok_and(|stat| !matches!(stat.rsplit(')').next(), Some(rest) if rest.trim_start().starts_with('Z')))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_then_start_again_recovers_committed_data() {
    let cluster = start().await;
    let url = cluster.url("postgres");
    let pool = PgPool::connect(&url).await.expect("pool");
    sqlx::query("CREATE TABLE survivors (n int)")
        .execute(&pool)
        .await
        .expect("create table");

    for round in 1..=2 {
        // A commit acknowledged with synchronous_commit on is in the WAL the server wrote,
        // so it survives the crash (fsync off only matters for an OS crash).
        let mut tx = pool.begin().await.expect("begin");
        sqlx::query("SET LOCAL synchronous_commit = on")
            .execute(&mut *tx)
            .await
            .expect("set");
        sqlx::query("INSERT INTO survivors VALUES ($1)")
            .bind(round)
            .execute(&mut *tx)
            .await
            .expect("insert");
        tx.commit().await.expect("commit");

        let pid = cluster.postmaster_pid().expect("postmaster runs");
        cluster.kill9().await.expect("kill9");
        assert!(!process_exists(pid), "postmaster {pid} still exists");
        assert_eq!(cluster.postmaster_pid(), None);
        assert!(select_1(&url).await.is_err(), "server answers after kill9");
        assert!(matches!(
            cluster.kill9().await,
            Err(TestingError::NotRunning { .. })
        ));

        cluster.start_again().await.expect("start_again");
        assert_ne!(cluster.postmaster_pid(), Some(pid));
        assert_eq!(select_1(&url).await.expect("query after restart"), 1);
        // The pool from before the crash gets working connections again.
        wait_until(
            "the old pool to reconnect after the restart",
            Duration::from_secs(10),
            || async { sqlx::query("SELECT 1").execute(&pool).await.is_ok() },
        )
        .await;
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM survivors")
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(count, i64::from(round));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_fast_then_start_again() {
    let cluster = start().await;
    let url = cluster.url("postgres");
    assert!(
        cluster.settings_summary().starts_with("PostgreSQL "),
        "{}",
        cluster.settings_summary()
    );
    assert!(cluster.settings_summary().contains("fsync=off"));
    assert!(matches!(
        cluster.start_again().await,
        Err(TestingError::AlreadyRunning { .. })
    ));

    cluster.stop_fast().await.expect("stop_fast");
    assert_eq!(cluster.postmaster_pid(), None);
    assert!(
        select_1(&url).await.is_err(),
        "server answers after stop_fast"
    );

    cluster.start_again().await.expect("start_again");
    let mut conn = PgConnection::connect(&url).await.expect("connect");
    let fsync: String = sqlx::query_scalar("SHOW fsync")
        .fetch_one(&mut conn)
        .await
        .expect("show fsync");
    assert_eq!(fsync, "off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_cluster_stops_it_and_removes_its_directory() {
    let cluster = start().await;
    let data_dir: String = {
        let mut conn = PgConnection::connect(&cluster.url("postgres"))
            .await
            .expect("connect");
        sqlx::query_scalar("SHOW data_directory")
            .fetch_one(&mut conn)
            .await
            .expect("show data_directory")
    };
    let temp_dir = PathBuf::from(data_dir)
        .parent()
        .expect("data directory has a parent")
        .to_owned();
    assert!(temp_dir.is_dir());
    let pid = cluster.postmaster_pid().expect("postmaster runs");

    drop(cluster);

    assert!(!process_exists(pid), "postmaster {pid} still exists");
    assert!(!temp_dir.exists(), "{} still exists", temp_dir.display());
}
