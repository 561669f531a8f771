//! Shared by the `throughput`, `soak` and `peer_driver` benches: the server and fresh databases
//! ([`server`]), the machine and server description ([`describe`]), the environment
//! ([`env`]), dispatcher settings ([`tuning`]), the no-op handler ([`handler`]), handlers that write
//! one row ([`effect`]), publishing and
//! checking ([`queue`]), percentiles and number formats ([`stats`]), result files ([`files`])
//! and SVG plots ([`plot`]).
//!
//! Not every bench uses every helper.
#![allow(dead_code, unused_imports)]

pub mod describe;
pub mod effect;
pub mod env;
pub mod files;
pub mod handler;
pub mod plot;
pub mod queue;
pub mod server;
pub mod stats;
pub mod tuning;

pub use describe::*;
pub use effect::*;
pub use env::*;
pub use files::*;
pub use handler::*;
pub use queue::*;
pub use server::*;
pub use stats::*;
pub use tuning::*;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Res<T> = Result<T, BoxError>;

/// The event type every bench publishes, and the pattern its subscriptions match.
pub const EVENT_TYPE: &str = "bench.noop";
/// Events per `publish_all` call when pre-enqueueing.
pub const BATCH: usize = 1000;
