//! The integration tests: one binary, so the throwaway PostgreSQL cluster starts once.
//! Their shared helpers are in [`support`].

mod support;

mod admin_dead_letters;
mod admin_dead_letters_guards;
mod admin_health;
mod admin_history;
mod admin_operating;
mod admin_replay;
mod admin_subscriptions;
mod asyncapi;
mod claims_ring;
mod cloudevents;
mod cluster;
mod dedupe_scope;
mod delivery_log;
mod dispatch;
mod events_ring;
mod generic_plans;
mod inbox;
mod lease;
mod log_evacuate;
mod maintain;
mod metrics_prometheus;
mod migrate;
mod migrate_upgrade;
mod migrate_upgrade_ring;
mod ordered;
mod ordered_blocked;
mod pooler;
mod publish;
mod registration;
mod relay_nats;
mod relay_rabbitmq;
mod retry;
mod shutdown;
mod sql_clients;
mod sql_publish;
mod sql_validation;
mod trace_context;
mod tx_handlers;
mod tx_handlers_takeover;
mod validation;
mod versions;
mod wake;

mod faults_handlers;
mod faults_input;
mod faults_kill;
mod faults_load;
mod faults_model;
mod faults_ordered;
mod faults_relay;
mod faults_restart;
mod faults_takeover;
mod faults_tx;
