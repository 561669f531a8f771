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

mod faults_handlers;
mod faults_input;
mod faults_kill;
mod faults_load;
mod faults_model;
mod faults_restart;
mod faults_support;
mod faults_worker;
