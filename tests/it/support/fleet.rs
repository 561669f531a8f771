//! A set of fault-test worker processes (see [`super::worker`]) that a test starts, kills
//! with SIGKILL and replaces.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use sqlx::PgPool;
use tokio::process::Child;

use super::database::count;
use super::env::verbose;
use super::process::rerun_test;
use super::rng::Rng;
use super::wait::wait_until;
use super::worker::{WORKER_TEST, WorkerConfig};

/// A set of worker processes; every one still running is killed when this is dropped
/// (also on panic), and each exits by itself if the test process dies.
#[derive(Debug)]
pub struct Fleet {
    config: WorkerConfig,
    /// (pid, process) of the running workers.
    workers: Vec<(u32, Child)>,
    /// Pids of the workers this fleet killed.
    pub killed: HashSet<u32>,
    /// Workers that exited by themselves: (pid, exit status).
    pub exited: Vec<(u32, String)>,
    spawned: usize,
}

impl Fleet {
    pub fn new(config: WorkerConfig) -> Fleet {
        Fleet {
            config,
            workers: Vec::new(),
            killed: HashSet::new(),
            exited: Vec::new(),
            spawned: 0,
        }
    }

    /// Starts `workers` workers and waits (up to 60 s) until they have registered their
    /// subscriptions in the database of `pool`.
    pub async fn start(pool: &PgPool, config: WorkerConfig, workers: usize) -> Fleet {
        let subscriptions = config.subscriptions.len() as i64;
        let mut fleet = Fleet::new(config);
        fleet.spawn_n(workers);
        wait_until(
            "the workers to register their subscriptions",
            Duration::from_secs(60),
            || async {
                count(pool, "SELECT count(*) FROM pgbus.subscriptions").await == subscriptions
            },
        )
        .await;
        fleet
    }

    /// Starts `n` more workers.
    pub fn spawn_n(&mut self, n: usize) {
        for _ in 0..n {
            self.spawn();
        }
    }

    /// Starts one more worker.
    pub fn spawn(&mut self) -> u32 {
        let mut cmd = rerun_test(WORKER_TEST);
        self.config.export(&mut cmd);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(if verbose() {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        let child = cmd.spawn().expect("spawning a worker process");
        let pid = child.id().expect("a running worker has a pid");
        self.workers.push((pid, child));
        self.spawned += 1;
        pid
    }

    /// How many workers were started in all.
    pub fn spawned(&self) -> usize {
        self.spawned
    }

    /// How many workers run now.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Kills worker `index` with SIGKILL and waits for it; returns its pid.
    pub async fn kill(&mut self, index: usize) -> u32 {
        let (pid, mut child) = self.workers.swap_remove(index);
        let _ = child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        self.killed.insert(pid);
        pid
    }

    /// Forgets workers that exited by themselves (recording them in `exited`); returns
    /// how many did.
    pub fn reap(&mut self) -> usize {
        let mut n = 0;
        let mut i = 0;
        while i < self.workers.len() {
            match self.workers[i].1.try_wait() {
                Ok(Some(status)) => {
                    let (pid, _) = self.workers.swap_remove(i);
                    self.exited.push((pid, status.to_string()));
                    n += 1;
                }
                _ => i += 1,
            }
        }
        n
    }

    /// One step of a kill loop: waits a random `pause_ms` (`lo..hi` milliseconds), checks that
    /// no worker exited by itself meanwhile, kills a random worker with SIGKILL and starts
    /// a replacement.
    pub async fn kill_random(&mut self, rng: &mut Rng, pause_ms: (u64, u64)) {
        tokio::time::sleep(Duration::from_millis(rng.range(pause_ms.0, pause_ms.1))).await;
        assert_eq!(
            self.reap(),
            0,
            "a worker exited without being killed: {:?}",
            self.exited
        );
        let victim = rng.range(0, self.len() as u64) as usize;
        self.kill(victim).await;
        self.spawn();
    }

    /// Kills every worker.
    pub async fn kill_all(&mut self) {
        while !self.workers.is_empty() {
            self.kill(0).await;
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (_, child) in &mut self.workers {
            let _ = child.start_kill();
        }
    }
}
