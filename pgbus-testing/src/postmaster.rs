//! [`Postmaster`]: the cluster's running server process, our child.

use std::process::{Child, ExitStatus};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The running postmaster, if any: our child process, so it can be killed and reaped.
#[derive(Debug, Default)]
pub(crate) struct Postmaster(Mutex<Option<Child>>);

impl Postmaster {
    /// Takes over a freshly spawned postmaster.
    pub(crate) fn set(&self, child: Child) {
        *self.lock() = Some(child);
    }

    /// Its process id while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        let mut postmaster = self.lock();
        let child = postmaster.as_mut()?;
        match child.try_wait() {
            Ok(None) => Some(child.id()),
            _ => None,
        }
    }

    /// How it exited, if it has (it is not reaped yet: see [`Postmaster::reap`]).
    pub(crate) fn exit_status(&self) -> Option<ExitStatus> {
        self.lock()
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// Sends it `SIGKILL`; `Ok(None)` if it is not running, else its pid.
    pub(crate) fn kill(&self) -> std::io::Result<Option<u32>> {
        let mut postmaster = self.lock();
        let Some(child) = postmaster.as_mut() else {
            return Ok(None);
        };
        if child.try_wait().ok().flatten().is_some() {
            return Ok(None);
        }
        child.kill()?;
        Ok(Some(child.id()))
    }

    /// Forgets it once it has exited. `Err` says why it is still there.
    pub(crate) fn reap(&self) -> Result<(), String> {
        let mut postmaster = self.lock();
        match postmaster.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => Err("the postmaster is running".to_owned()),
            Some(Err(e)) => Err(format!("the postmaster cannot be waited for: {e}")),
            Some(Ok(Some(_))) | None => {
                *postmaster = None;
                Ok(())
            }
        }
    }

    /// For `Drop`: holds the postmaster while `stop` (closing the guardian's pipe, which
    /// stops the server) runs, then waits up to `timeout` for it to exit and kills it if it
    /// has not. An exited postmaster is reaped first, so `stop` does not signal a zombie and
    /// wait for it.
    pub(crate) fn stop_with(&self, stop: impl FnOnce(), timeout: Duration, poll: Duration) {
        let mut postmaster = self.lock();
        if let Some(Ok(Some(_))) = postmaster.as_mut().map(Child::try_wait) {
            *postmaster = None;
        }
        stop();
        if let Some(mut child) = postmaster.take() {
            let deadline = Instant::now() + timeout;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(poll);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Child>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
