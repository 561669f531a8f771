//! The guardian: a small `sh` process that stops a cluster's server and removes its
//! directory once this process is gone, however it ends.
//!
//! It blocks reading a pipe whose write end only this process holds. When the process exits
//! (normally, by panic or by `SIGKILL`) or the [`Cluster`](crate::Cluster) is dropped, the
//! pipe closes and the guardian runs `pg_ctl stop -m immediate` and deletes the directory.
//! That also covers the shared cluster, which lives in a static and is never dropped.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::binaries::Binaries;

/// Cleans up after the pipe closes; `$1` is `pg_ctl`, `$2` the data directory, `$3` the
/// cluster's directory. Removal is retried: an `initdb` still running when the process died
/// keeps writing files until it notices its directory is gone.
const SCRIPT: &str = r#"trap '' INT TERM HUP
cat >/dev/null
"$1" stop -D "$2" -m immediate -w -t 30 >/dev/null 2>&1
for _ in 1 2 3 4 5 6 7 8 9 10; do
    rm -rf "$3" 2>/dev/null
    [ -e "$3" ] || exit 0
    sleep 1
done"#;

/// A running guardian; [`Guardian::release`] or the end of this process sets it off.
#[derive(Debug)]
pub(crate) struct Guardian(Child);

impl Guardian {
    /// Starts the guardian of the cluster in `dir` (data directory `dir/data`).
    ///
    /// It runs as the server's user, in its own process group and ignoring INT/TERM/HUP, so
    /// a Ctrl-C aimed at the tests does not kill it before it has cleaned up.
    pub(crate) fn spawn(bin: &Binaries, dir: &Path) -> io::Result<Guardian> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(SCRIPT)
            .arg("pgbus-pg-guardian")
            .arg(bin.path("pg_ctl"))
            .arg(dir.join("data"))
            .arg(dir)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        bin.run_as_server_user(&mut cmd);
        cmd.spawn().map(Guardian)
    }

    /// Closes the pipe and waits until the guardian has stopped the server and removed the
    /// directory.
    pub(crate) fn release(mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}
