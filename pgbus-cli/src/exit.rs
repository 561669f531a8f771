//! Errors as the user sees them: one line on standard error and an exit code.

use std::fmt;
use std::process::ExitCode;

/// Exit code 1: unhealthy, or a request refused (see the `--help` of `pgbus`).
pub const REFUSED: u8 = 1;
/// Exit code 2: usage, connection and every other error.
pub const FAILED: u8 = 2;

/// A failed command: its message and exit code.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: u8,
    /// One line for standard error.
    pub message: String,
}

impl Failure {
    /// A refused request (exit code 1).
    pub fn refused(message: impl Into<String>) -> Failure {
        Failure {
            code: REFUSED,
            message: message.into(),
        }
    }

    /// A usage or other error (exit code 2).
    pub fn failed(message: impl Into<String>) -> Failure {
        Failure {
            code: FAILED,
            message: message.into(),
        }
    }

    /// The process exit code.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<pgbus::Error> for Failure {
    fn from(e: pgbus::Error) -> Failure {
        use pgbus::Error as E;
        match &e {
            E::UnknownSubscription(_)
            | E::UnknownDelivery(_)
            | E::UnknownEvent(_)
            | E::NotDead { .. }
            | E::DuplicateSubscription(_) => Failure::refused(e.to_string()),
            _ => Failure::failed(e.to_string()),
        }
    }
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Failure {
        Failure::failed(format!("database error: {e}"))
    }
}

impl From<serde_json::Error> for Failure {
    fn from(e: serde_json::Error) -> Failure {
        Failure::failed(format!("JSON: {e}"))
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::failed(format!("I/O error: {e}"))
    }
}

/// A command's result.
pub type CliResult<T = ()> = Result<T, Failure>;
