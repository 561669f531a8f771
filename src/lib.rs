//! pgbus: a transactional outbox and event bus on PostgreSQL.
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![doc(test(attr(deny(warnings))))]

mod error;
mod migrate;
pub mod testing;

pub use error::{Error, Result};
pub use migrate::migrate;
