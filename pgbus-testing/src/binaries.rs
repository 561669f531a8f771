//! Finding the PostgreSQL server binaries and running them as the right user.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::TestingError;
use crate::os_user;

/// Where the PostgreSQL binaries are and whom to run them as.
#[derive(Debug, Clone)]
pub(crate) struct Binaries {
    dir: PathBuf,
    /// `(uid, gid)` of the `postgres` user when we are root.
    pub(crate) run_as: Option<(u32, u32)>,
}

impl Binaries {
    /// The directory of `pg_config --bindir`, else the highest
    /// `/usr/lib/postgresql/<version>/bin`; and the user to run them as.
    pub(crate) async fn find() -> Result<Self, TestingError> {
        let mut searched = Vec::new();
        let mut dir = None;
        if let Ok(out) = tokio::process::Command::new("pg_config")
            .arg("--bindir")
            .output()
            .await
        {
            let candidate = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if out.status.success() && candidate.join("initdb").is_file() {
                dir = Some(candidate);
            } else {
                searched.push(candidate.display().to_string());
            }
        }
        if dir.is_none() {
            dir = highest_debian_bindir();
            searched.push("/usr/lib/postgresql/*/bin".to_owned());
        }
        let dir = dir.ok_or_else(|| TestingError::BinariesNotFound {
            searched: searched.join(", "),
        })?;
        let run_as = os_user::server_user()?;
        Ok(Binaries { dir, run_as })
    }

    /// The path of `tool` (`initdb`, `pg_ctl`, `postgres`).
    pub(crate) fn path(&self, tool: &str) -> PathBuf {
        self.dir.join(tool)
    }

    /// A command for `tool` that runs as the right user in `cwd`, stdin from /dev/null.
    pub(crate) fn command(&self, tool: &str, cwd: &Path) -> Command {
        let mut cmd = Command::new(self.path(tool));
        cmd.current_dir(cwd).stdin(Stdio::null());
        self.run_as_server_user(&mut cmd);
        cmd
    }

    /// Makes `cmd` run as the server's user (a no-op unless we are root).
    pub(crate) fn run_as_server_user(&self, cmd: &mut Command) {
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
    }

    /// Runs `tool` to completion, failing with its output if it fails.
    pub(crate) async fn run(
        &self,
        tool: &str,
        cwd: &Path,
        args: &[&str],
    ) -> Result<(), TestingError> {
        let mut cmd = self.command(tool, cwd);
        cmd.args(args);
        let line = format!("{} {}", self.path(tool).display(), args.join(" "));
        let out = tokio::process::Command::from(cmd)
            .output()
            .await
            .map_err(TestingError::io(format!("running {line}")))?;
        if out.status.success() {
            return Ok(());
        }
        Err(TestingError::Command {
            command: line,
            status: out.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}

/// The highest-versioned `/usr/lib/postgresql/<version>/bin` that has `initdb`.
fn highest_debian_bindir() -> Option<PathBuf> {
    fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
}
