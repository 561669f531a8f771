//! Running one test of this test binary again, in a child process.

use tokio::process::Command;

/// A command that runs the test `name` (its full path without the crate, e.g.
/// `wake::isolated_notify_wake`) of this test binary, ignored or not, alone, with its
/// output shown. The child is killed when the command's child handle is dropped.
pub fn rerun_test(name: &str) -> Command {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new(exe);
    cmd.args([
        name,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .kill_on_drop(true);
    cmd
}
