//! The delivery state machine: the states, what can happen to a delivery, and the one pure
//! function that decides what follows.
//!
//! ```text
//!             claim (attempt + 1)
//!   pending ───────────────────────▶ running ──── success ────▶ done (or deleted)
//!      ▲                               │
//!      │  retryable failure, lease     ├── permanent failure, undecodable,
//!      │  lost, shutdown (given back)  │   last attempt failed or lost ──▶ dead
//!      └───────────────────────────────┘
//! ```
//!
//! Every writer of a delivery's outcome (the handler's result, a lost lease found by a claim,
//! a shutdown) asks [`next`] for the target and hands it to the completer, which writes it
//! fenced by the lease and decides nothing.

use std::time::Duration;

use crate::retry::RetryPolicy;

/// The state of a delivery, as stored in `pgbus.deliveries.state` (a `smallint` with a CHECK
/// constraint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type)]
#[repr(i16)]
#[non_exhaustive]
pub enum DeliveryState {
    /// Waiting to run, due at its `run_at`.
    Pending = 0,
    /// Claimed by a dispatcher, whose lease expires at `run_at`.
    Running = 1,
    /// Handled successfully (kept only when the dispatcher retains done deliveries).
    Done = 2,
    /// Given up on: never retried automatically; `last_error` says why.
    Dead = 3,
}

impl DeliveryState {
    /// The state's name: `pending`, `running`, `done` or `dead`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Running => "running",
            DeliveryState::Done => "done",
            DeliveryState::Dead => "dead",
        }
    }
}

impl std::fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Serialized as its name ([`DeliveryState::as_str`]).
impl serde::Serialize for DeliveryState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What happened to a running delivery.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cause {
    /// The handler succeeded.
    Succeeded,
    /// The attempt failed and may be retried: a handler error, a panic, a timeout.
    /// `delay` is the handler's own choice of delay, if any.
    Failed {
        message: String,
        delay: Option<Duration>,
    },
    /// Retrying cannot help: a permanent handler error (message already prefixed).
    Permanent(String),
    /// The delivery cannot run at all (its payload does not decode, its event is gone).
    Undeliverable(String),
    /// A claim found its lease expired: its worker was lost during the attempt.
    LeaseLost,
    /// Given back without having run (claimed but not started, e.g. at shutdown).
    Unstarted,
    /// Interrupted by a shutdown after it started.
    Interrupted,
}

/// The row a cause leads to, for the completer to write.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Transition {
    /// The target state (never `Running`).
    pub(crate) state: DeliveryState,
    /// A pending delivery becomes due this long from now.
    pub(crate) delay: Duration,
    /// Whether the attempt counts (false: it never ran, so the claim's count is undone).
    pub(crate) counted: bool,
    /// The new `last_error` (`None` keeps the previous one).
    pub(crate) error: Option<String>,
    /// Whether the delivery is a crash suspect afterwards (runs alone in its dispatcher).
    pub(crate) solo: bool,
    /// Done and not retained: the row is deleted instead of updated.
    pub(crate) delete: bool,
}

impl Transition {
    /// Whether the delivery is finished (done or dead): `finished_at` is set.
    pub(crate) fn finished(&self) -> bool {
        matches!(self.state, DeliveryState::Done | DeliveryState::Dead)
    }

    fn pending(delay: Duration, error: Option<String>, solo: bool) -> Self {
        Transition {
            state: DeliveryState::Pending,
            delay,
            counted: true,
            error,
            solo,
            delete: false,
        }
    }

    fn dead(error: String) -> Self {
        Transition {
            state: DeliveryState::Dead,
            delay: Duration::ZERO,
            counted: true,
            error: Some(error),
            solo: false,
            delete: false,
        }
    }
}

/// What a running delivery's attempt leads to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempt<'a> {
    /// The attempt's number (from 1).
    pub(crate) number: u32,
    /// The subscription's retry policy.
    pub(crate) policy: &'a RetryPolicy,
    /// Whether the delivery was a crash suspect when claimed.
    pub(crate) suspect: bool,
    /// Whether done deliveries are kept (else deleted).
    pub(crate) retain_done: bool,
}

/// Decides the next state of a running delivery after `cause`. `unit` is a uniform random
/// number in `[0, 1)` for the backoff's jitter.
pub(crate) fn next(attempt: Attempt<'_>, cause: Cause, unit: f64) -> Transition {
    let Attempt {
        number,
        policy,
        suspect,
        retain_done,
    } = attempt;
    let last = policy.exhausted(number);
    match cause {
        Cause::Succeeded => Transition {
            state: DeliveryState::Done,
            delay: Duration::ZERO,
            counted: true,
            error: None,
            solo: false,
            delete: !retain_done,
        },
        Cause::Failed { message, .. } if last => {
            Transition::dead(format!("gave up after {number} attempts: {message}"))
        }
        Cause::Failed { message, delay } => Transition::pending(
            delay.unwrap_or_else(|| policy.delay(number, unit)),
            Some(message),
            false,
        ),
        Cause::Permanent(message) | Cause::Undeliverable(message) => Transition::dead(message),
        Cause::LeaseLost => {
            let message = format!(
                "lease expired during attempt {number} of {}: its worker was lost (killed, \
                 crashed, or hung past its lease)",
                policy.max_attempts
            );
            if last {
                // Still marked: it was lost with its worker, like a suspect.
                Transition {
                    solo: true,
                    ..Transition::dead(message)
                }
            } else {
                Transition::pending(Duration::ZERO, Some(message), true)
            }
        }
        Cause::Unstarted => Transition {
            counted: false,
            ..Transition::pending(Duration::ZERO, None, suspect)
        },
        Cause::Interrupted if last => Transition::dead(format!(
            "gave up after {number} attempts: interrupted by dispatcher shutdown"
        )),
        Cause::Interrupted => Transition::pending(
            Duration::ZERO,
            Some("interrupted by dispatcher shutdown".to_owned()),
            suspect,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeliveryState::{Dead, Done, Pending};

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
            .max_attempts(3)
            .base_delay(Duration::from_secs(1))
            .max_delay(Duration::from_secs(60))
            .jitter(0.0)
    }

    fn failed(message: &str, delay: Option<u64>) -> Cause {
        Cause::Failed {
            message: message.to_owned(),
            delay: delay.map(Duration::from_secs),
        }
    }

    fn expect(state: DeliveryState, delay: u64, error: Option<&str>, solo: bool) -> Transition {
        Transition {
            state,
            delay: Duration::from_secs(delay),
            counted: true,
            error: error.map(str::to_owned),
            solo,
            delete: false,
        }
    }

    fn lost(attempt: u32) -> String {
        format!(
            "lease expired during attempt {attempt} of 3: its worker was lost (killed, crashed, \
             or hung past its lease)"
        )
    }

    /// The policy of the README's delivery guarantees, row by row, with 3 attempts, a 1 s
    /// base delay and no jitter: (attempt, suspect, retain done, cause) → target.
    #[test]
    fn the_policy_table() {
        let done = |delete| Transition {
            delete,
            ..expect(Done, 0, None, false)
        };
        let given_back = |solo| Transition {
            counted: false,
            ..expect(Pending, 0, None, solo)
        };
        let gave_up = "gave up after 3 attempts: boom";
        let interrupted = "interrupted by dispatcher shutdown";
        let interrupted_last = "gave up after 3 attempts: interrupted by dispatcher shutdown";
        let table: Vec<(u32, bool, bool, Cause, Transition)> = vec![
            (1, false, false, Cause::Succeeded, done(true)),
            (1, false, true, Cause::Succeeded, done(false)),
            (3, true, false, Cause::Succeeded, done(true)),
            // Backoff: base × 2^(attempt − 1); a suspect that fails is no longer one.
            (
                1,
                false,
                false,
                failed("boom", None),
                expect(Pending, 1, Some("boom"), false),
            ),
            (
                2,
                true,
                false,
                failed("boom", None),
                expect(Pending, 2, Some("boom"), false),
            ),
            // The handler's own delay wins, until the last attempt.
            (
                1,
                false,
                false,
                failed("429", Some(30)),
                expect(Pending, 30, Some("429"), false),
            ),
            (
                3,
                false,
                false,
                failed("boom", Some(30)),
                expect(Dead, 0, Some(gave_up), false),
            ),
            (
                1,
                false,
                true,
                Cause::Permanent("no".into()),
                expect(Dead, 0, Some("no"), false),
            ),
            (
                1,
                false,
                false,
                Cause::Undeliverable("bad".into()),
                expect(Dead, 0, Some("bad"), false),
            ),
            // A lost lease: a crash suspect, or dead (still marked) after the last attempt.
            (
                2,
                false,
                false,
                Cause::LeaseLost,
                expect(Pending, 0, Some(&lost(2)), true),
            ),
            (
                3,
                true,
                false,
                Cause::LeaseLost,
                expect(Dead, 0, Some(&lost(3)), true),
            ),
            // Given back unstarted: the attempt is not counted, the suspect mark stays.
            (1, false, false, Cause::Unstarted, given_back(false)),
            (3, true, false, Cause::Unstarted, given_back(true)),
            (
                2,
                true,
                false,
                Cause::Interrupted,
                expect(Pending, 0, Some(interrupted), true),
            ),
            (
                3,
                false,
                false,
                Cause::Interrupted,
                expect(Dead, 0, Some(interrupted_last), false),
            ),
        ];
        let p = policy();
        for (number, suspect, retain_done, cause, want) in table {
            let label = format!("attempt {number}, suspect {suspect}, {cause:?}");
            let attempt = Attempt {
                number,
                policy: &p,
                suspect,
                retain_done,
            };
            let got = next(attempt, cause, 0.5);
            assert_eq!(got, want, "{label}");
            assert_eq!(got.finished(), matches!(want.state, Done | Dead), "{label}");
        }
    }

    #[test]
    fn jitter_stays_in_its_band() {
        let p = RetryPolicy::default().jitter(0.25);
        let attempt = Attempt {
            number: 3,
            policy: &p,
            suspect: false,
            retain_done: false,
        };
        for unit in [0.0, 0.25, 0.5, 0.999] {
            let secs = next(attempt, failed("x", None), unit).delay.as_secs_f64();
            assert!((3.0..=5.0).contains(&secs), "{secs}");
        }
    }
}
