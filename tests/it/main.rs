//! The integration tests: one binary, so the throwaway PostgreSQL cluster starts once.

mod support;

mod cluster;
mod dispatch;
mod lease;
mod maintain;
mod migrate;
mod publish;
mod retry;
mod shutdown;
mod util;
mod validation;
mod wake;
