//! Test support for [`pgbus`]: a throwaway PostgreSQL per test binary, a freshly
//! migrated database per test, and deliveries built by hand to unit-test handlers.
//!
//! Take it as a dev-dependency. A tour:
//!
//! **A database per test.** [`TestDatabase::create`] gives each test its own database with
//! the pgbus schema, and a pool to it. Where it lives:
//!
//! - with `DATABASE_URL` set ([`database_url_from_env`]), on that server: created, migrated
//!   and dropped again for each test;
//! - otherwise, on Unix, on the process's [shared cluster](shared_cluster), a throwaway
//!   server started once from the local PostgreSQL binaries (`pg_config --bindir` or
//!   `/usr/lib/postgresql/*/bin`); each database is a copy of one migrated template;
//! - on other platforms `DATABASE_URL` is required ([`TestingError::DatabaseUrlRequired`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), pgbus_testing::TestingError> {
//! let db = pgbus_testing::TestDatabase::create().await?;
//! let publisher = pgbus::Publisher::new("test")?;
//! let mut tx = db.pool().begin().await?;
//! publisher
//!     .publish(&mut tx, pgbus::NewEvent::raw("property.created", serde_json::json!({"id": 1})))
//!     .await?;
//! tx.commit().await?;
//! # Ok(())
//! # }
//! ```
//!
//! **Handlers without a database.** [`DeliveryBuilder`] makes the [`pgbus::Delivery`] a
//! dispatcher would pass, so a handler is called directly:
//!
//! ```
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Serialize, Deserialize)]
//! # struct PropertyCreated { property_id: i64 }
//! # impl pgbus::Event for PropertyCreated { const TYPE: &'static str = "property.created"; }
//! # struct NotifyAgents;
//! # #[pgbus::async_trait]
//! # impl pgbus::Handler<PropertyCreated> for NotifyAgents {
//! #     async fn handle(&self, _: PropertyCreated, _: &pgbus::Delivery) -> Result<(), pgbus::HandlerError> { Ok(()) }
//! # }
//! use pgbus::Handler;
//! use pgbus_testing::DeliveryBuilder;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), pgbus::HandlerError> {
//! let event = PropertyCreated { property_id: 42 };
//! let delivery = DeliveryBuilder::of(&event).attempt(25).build();
//! assert!(delivery.is_last_attempt());
//! NotifyAgents.handle(event, &delivery).await?;
//! # Ok(())
//! # }
//! ```
//!
//! **A server to crash** (Unix). Fault tests and benchmarks start a [`Cluster`] of their
//! own, with [`ClusterOptions`] ([`ClusterOptions::durable`] for benchmarks), and stop,
//! kill and restart it.
//!
//! ```no_run
//! # #[cfg(unix)]
//! # async fn demo() -> Result<(), pgbus_testing::TestingError> {
//! use pgbus_testing::{Cluster, ClusterOptions};
//!
//! let cluster = Cluster::start(ClusterOptions::durable()).await?;
//! println!("{}", cluster.settings_summary());
//! cluster.kill9().await?;
//! cluster.start_again().await?;
//! # Ok(())
//! # }
//! ```
//!
//! **Behind a connection pooler** (Unix). [`PgBouncer`] starts a PgBouncer in transaction
//! mode in front of a cluster.
//!
//! Nothing is left behind when the process ends, however it ends: every cluster has a
//! guardian process (`sh`) that stops the server (`pg_ctl stop -m immediate`) and deletes
//! its temporary directory once the test process is gone, normally, by panic or by
//! `SIGKILL`. That also covers the shared cluster, which lives in a static and is never
//! dropped.
//!
//! **Brokers for relays** (Unix, features `nats` and `rabbitmq`): `NatsServer` starts a
//! throwaway `nats-server -js`, `RabbitMqServer` a throwaway RabbitMQ node, from Debian's
//! packages, on free loopback ports; both can be killed with `SIGKILL` and started again,
//! and are removed like the clusters.
//!
//! As root, `initdb` and `postgres` refuse to run, so they (and the guardian) run as the
//! `postgres` OS user, which must exist (the `postgresql` packages create it).
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![doc(test(attr(deny(warnings), allow(dead_code, unused_variables))))]

mod admin;
mod database;
mod database_url;
mod delivery;
mod error;
mod server;
mod unique_name;

#[cfg(unix)]
mod binaries;
#[cfg(all(unix, any(feature = "nats", feature = "rabbitmq")))]
mod broker;
#[cfg(unix)]
mod cluster;
#[cfg(unix)]
mod cluster_dir;
#[cfg(unix)]
mod free_port;
#[cfg(unix)]
mod guardian;
#[cfg(unix)]
mod options;
#[cfg(unix)]
mod os_user;
#[cfg(unix)]
mod pgbouncer;
#[cfg(unix)]
mod postmaster;
#[cfg(unix)]
mod shared;
#[cfg(unix)]
mod shared_memory;
#[cfg(unix)]
mod template;

pub use database::TestDatabase;
pub use database_url::database_url_from_env;
pub use delivery::DeliveryBuilder;
pub use error::TestingError;

#[cfg(all(unix, feature = "nats"))]
pub use broker::nats::NatsServer;
#[cfg(all(unix, feature = "rabbitmq"))]
pub use broker::rabbitmq::RabbitMqServer;
#[cfg(unix)]
pub use cluster::Cluster;
#[cfg(unix)]
pub use options::ClusterOptions;
#[cfg(unix)]
pub use pgbouncer::PgBouncer;
#[cfg(unix)]
pub use shared::shared_cluster;

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn futures_are_send() {
        fn send<T: Send>(_: T) {}
        fn cluster_futures(cluster: &Cluster) {
            send(cluster.stop_fast());
            send(cluster.kill9());
            send(cluster.start_again());
        }
        let _ = cluster_futures as fn(&Cluster);
        send(Cluster::start(ClusterOptions::default()));
        send(shared_cluster());
        send(TestDatabase::create_empty());
        send(TestDatabase::create());
        fn migrate_future(pool: &sqlx::PgPool) {
            send(pgbus::migrate(pool));
        }
        let _ = migrate_future as fn(&sqlx::PgPool);
    }
}
