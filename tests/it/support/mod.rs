//! Helpers shared by the integration tests, one module per concept.
//!
//! - [`brokers`]: the relay tests' brokers, and what nats-py and pika read from them.
//! - [`database`]: fresh test databases, pools, plain `count(*)` queries.
//! - [`wait`]: bounded polling ([`wait::wait_until`]) and how long "soon" is.
//! - [`states`]: the delivery states (the only place they are spelled out).
//! - [`deliveries`]: reading `pgbus.all_deliveries` (rows, one row, counts by state).
//! - [`publishing`]: publishing events in one call, or paced over a while.
//! - [`sql_publish`]: one event's inputs, published with the Rust API or `pgbus.publish`.
//! - [`dispatcher`]: dispatchers with short timings, start, shutdown, registering
//!   subscriptions.
//! - [`journal`]: handlers that record their calls.
//! - [`old_schema`]: the schema of an older version, for the upgrade tests.
//! - [`env`]: the fault tests' sizes and verbosity, from the environment.
//! - [`fault_log`]: the `fault_log` table fault-test handlers record their calls in.
//! - [`order_log`]: the `order_log` table ordered fault-test handlers record their calls'
//!   starts and ends in.
//! - [`pooler`]: a PgBouncer in transaction mode in front of the test cluster.
//! - [`ring`]: turning the delivery log's and the claims' rings by hand.
//! - [`events_ring`]: ageing the events ring by hand, and where events are.
//! - [`process`]: running one test of this binary again in a child process.
//! - [`tools`]: the independent implementations (Python, node) some tests check against.
//! - [`worker`], [`fleet`]: the fault tests' worker processes, and the set of them a test
//!   runs and kills; [`rng`]: which to kill, and when.

pub mod brokers;
pub mod database;
pub mod deliveries;
pub mod dispatcher;
pub mod env;
pub mod events_ring;
pub mod fault_log;
pub mod fleet;
pub mod journal;
pub mod old_schema;
pub mod order_log;
pub mod pooler;
pub mod process;
pub mod publishing;
pub mod ring;
pub mod rng;
pub mod sql_publish;
pub mod states;
pub mod tools;
pub mod wait;
pub mod worker;
