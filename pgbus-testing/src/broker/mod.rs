//! Throwaway message brokers for relay tests (features `nats` and `rabbitmq`, Unix): a
//! server started from the local binaries (Debian's `nats-server` and `rabbitmq-server`
//! packages) on free loopback ports in a temporary directory, that a test can kill with
//! `SIGKILL` and start again on the same port and data, and that is stopped and removed
//! when it is dropped or the test process ends, however it ends.
//!
//! Both run as the user the tests run as, root included.

mod process;

#[cfg(feature = "nats")]
pub(crate) mod nats;
#[cfg(feature = "rabbitmq")]
pub(crate) mod rabbitmq;
