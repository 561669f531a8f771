//! What both brokers need: finding a binary, free ports, the temporary directory and its
//! guardian, killing a process group, and waiting until the log says the server is ready.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use crate::TestingError;
use crate::unique_name::unique_name;

/// Kills every process group listed in `$1/pgids` and removes `$1` once the pipe closes
/// (this process ended, or the broker was dropped).
const GUARDIAN: &str = r#"trap '' INT TERM HUP
cat >/dev/null
for g in $(cat "$1/pgids" 2>/dev/null); do kill -9 -- "-$g" 2>/dev/null; done
for _ in 1 2 3 4 5; do
    rm -rf "$1" 2>/dev/null
    [ -e "$1" ] || exit 0
    sleep 1
done"#;

/// The first of `candidates` (absolute paths, or names looked up in `PATH`) that exists.
pub(crate) fn find_binary(
    binary: &'static str,
    package: &'static str,
    candidates: &[&str],
) -> Result<PathBuf, TestingError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut searched = Vec::new();
    for candidate in candidates {
        if candidate.starts_with('/') {
            if Path::new(candidate).is_file() {
                return Ok(PathBuf::from(candidate));
            }
            searched.push((*candidate).to_owned());
        } else {
            for dir in std::env::split_paths(&path) {
                let p = dir.join(candidate);
                if p.is_file() {
                    return Ok(p);
                }
            }
            searched.push(format!("{candidate} in PATH"));
        }
    }
    Err(TestingError::BrokerNotFound {
        binary,
        searched: searched.join(", "),
        package,
    })
}

/// A broker's temporary directory, with the guardian that cleans up after it.
#[derive(Debug)]
pub(crate) struct BrokerDir {
    pub(crate) path: PathBuf,
    guardian: Child,
}

impl BrokerDir {
    pub(crate) fn create(prefix: &str) -> Result<Self, TestingError> {
        let path = std::env::temp_dir().join(unique_name(prefix));
        std::fs::create_dir(&path)
            .map_err(TestingError::io(format!("creating {}", path.display())))?;
        let guardian = Command::new("sh")
            .arg("-c")
            .arg(GUARDIAN)
            .arg("pgbus-broker-guardian")
            .arg(&path)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(TestingError::io("starting the broker's guardian"))?;
        Ok(BrokerDir { path, guardian })
    }

    /// Records the process groups the guardian kills (the broker's, and any helper's).
    pub(crate) fn set_groups(&self, pgids: &[u32]) -> Result<(), TestingError> {
        let file = self.path.join("pgids");
        let mut f = std::fs::File::create(&file)
            .map_err(TestingError::io(format!("writing {}", file.display())))?;
        for g in pgids {
            writeln!(f, "{g}").map_err(TestingError::io("writing the pgids file"))?;
        }
        Ok(())
    }

    /// Sets off the guardian and waits until it has killed and removed everything.
    pub(crate) fn release(&mut self) {
        drop(self.guardian.stdin.take());
        let _ = self.guardian.wait();
    }
}

impl Drop for BrokerDir {
    fn drop(&mut self) {
        self.release();
    }
}

/// Starts `cmd` in a process group of its own (its id is the child's pid).
pub(crate) fn spawn_group(mut cmd: Command, what: &str) -> Result<Child, TestingError> {
    cmd.stdin(Stdio::null()).process_group(0);
    cmd.spawn()
        .map_err(TestingError::io(format!("starting {what}")))
}

/// Kills process group `pgid` with SIGKILL and reaps its leader `child`.
pub(crate) fn kill_group(child: &mut Child) {
    let pgid = child.id();
    let _ = Command::new("kill")
        .args(["-9", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// The last lines of a log file.
pub(crate) fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Waits until `log` has `marker` after byte `from` and `port` accepts connections, or
/// `child` exits, or `timeout` passes.
pub(crate) async fn wait_ready(
    broker: &'static str,
    port: u16,
    child: &mut Child,
    log: &Path,
    from: usize,
    marker: &str,
    timeout: Duration,
) -> Result<(), TestingError> {
    let started = Instant::now();
    let not_ready = |reason: String| TestingError::BrokerNotReady {
        broker,
        port,
        reason,
        log_tail: log_tail(log),
    };
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(not_ready(format!("it exited ({status})")));
        }
        let logged = std::fs::read(log)
            .ok()
            .and_then(|b| {
                b.get(from..)
                    .map(|b| String::from_utf8_lossy(b).contains(marker))
            })
            .unwrap_or(false);
        if logged
            && tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        {
            return Ok(());
        }
        if started.elapsed() > timeout {
            return Err(not_ready(format!("not ready within {timeout:?}")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The size of a file, 0 if it is missing.
pub(crate) fn file_len(path: &Path) -> usize {
    std::fs::metadata(path).map_or(0, |m| m.len() as usize)
}
