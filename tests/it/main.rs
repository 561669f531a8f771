//! The integration tests: one binary, so the throwaway PostgreSQL cluster starts once.

mod support;

mod cluster;
mod migrate;
mod maintain;
