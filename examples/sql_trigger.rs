//! Publishing from SQL: a business table whose row changes a trigger publishes
//! (`pgbus.publish_row_change`), another service's `pgbus.publish` call, and a dispatcher
//! whose Rust handlers receive both.
//!
//! Runs on a fresh database: on `DATABASE_URL`'s server if set (created and dropped again),
//! else on a throwaway PostgreSQL started from the local server binaries.
//!
//! ```sh
//! cargo run --example sql_trigger
//! ```

use std::time::Duration;

use pgbus::{Delivery, Dispatcher, HandlerError, RawHandler, Subscription};
use pgbus_testing::TestDatabase;
use tokio::sync::mpsc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Prints each event and tells `main` it arrived.
struct Print(mpsc::UnboundedSender<()>);

#[pgbus::async_trait]
impl RawHandler for Print {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let e = &delivery.event;
        println!(
            "  handled {} (subject {:?}, source {:?}): {}",
            e.event_type, e.subject, e.source, e.data
        );
        let _ = self.0.send(());
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let db = TestDatabase::create().await?;
    let pool = db.pool();

    // The business table and its trigger: every row change becomes an event, in the
    // transaction that made it.
    sqlx::raw_sql(
        "CREATE TABLE property (id bigint PRIMARY KEY, title text NOT NULL, price_eur int);
         CREATE TRIGGER property_events AFTER INSERT OR UPDATE OR DELETE ON property
             FOR EACH ROW EXECUTE FUNCTION pgbus.publish_row_change('property');",
    )
    .execute(pool)
    .await?;

    let (seen, mut arrived) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::builder(pool.clone())
        .subscribe(Subscription::raw(
            "listings",
            ["property.*", "listing.*"],
            Print(seen),
        ))
        .build()?
        .start()
        .await?;

    // What any client can run: psql, psycopg, a migration, another service.
    sqlx::raw_sql(
        "BEGIN;
         INSERT INTO property (id, title, price_eur) VALUES (42, 'Sunny flat', 900);
         UPDATE property SET price_eur = 900 WHERE id = 42;   -- no change: no event
         UPDATE property SET price_eur = 950 WHERE id = 42;
         SELECT pgbus.publish('listing.priced', '{\"property_id\": 42, \"price_eur\": 950}',
                              'pricing-service', subject => 'property/42');
         COMMIT;
         DELETE FROM property WHERE id = 42;",
    )
    .execute(pool)
    .await?;

    for _ in 0..4 {
        tokio::time::timeout(Duration::from_secs(10), arrived.recv()).await?;
    }
    dispatcher.shutdown().await?;
    println!("4 events: created, updated, priced, deleted");
    db.drop_database().await?;
    Ok(())
}
