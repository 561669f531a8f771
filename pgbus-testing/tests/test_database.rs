//! `TestDatabase` end to end, on `DATABASE_URL` or the shared cluster.

use pgbus_testing::TestDatabase;

async fn has_pgbus_schema(db: &TestDatabase) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'pgbus')")
        .fetch_one(db.pool())
        .await
        .expect("query pg_namespace")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_are_fresh_migrated_and_dropped() {
    let (a, b) = tokio::try_join!(TestDatabase::create(), TestDatabase::create())
        .unwrap_or_else(|e| panic!("creating test databases failed: {e}"));
    assert_ne!(a.name(), b.name());
    assert!(a.url().contains(a.name()), "{}", a.url());
    assert!(has_pgbus_schema(&a).await && has_pgbus_schema(&b).await);
    #[cfg(unix)]
    assert_eq!(
        a.cluster().is_some(),
        pgbus_testing::database_url_from_env().is_none()
    );

    let empty = TestDatabase::create_empty().await.expect("create_empty");
    assert!(!has_pgbus_schema(&empty).await);

    let (name, url) = (a.name().to_owned(), a.url().to_owned());
    a.drop_database().await.expect("drop_database");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(b.pool())
            .await
            .expect("query pg_database");
    assert!(!exists, "{name} ({url}) still exists");
}
