//! Blocked keys of ordered subscriptions: a retrying key holds back only itself, both
//! dead-key policies, and `Admin::blocked_keys`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pgbus::admin::{BlockedBy, RetryMode};
use pgbus::{Admin, DeadKeyPolicy, HandlerError};

use crate::ordered::{Spans, failing, publish_keys, seqs_of};
use crate::support::database::{count, db};
use crate::support::deliveries::delivery_count_in;
use crate::support::dispatcher::{dispatcher, start, stop};
use crate::support::states::DEAD;
use crate::support::wait::{SOON, wait_until};

/// The blocked keys of subscription `fifo` (up to 100).
async fn blocked(admin: &Admin) -> Vec<pgbus::admin::BlockedKey> {
    admin
        .blocked_keys("fifo", None, 100)
        .await
        .expect("blocked keys")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retrying_key_holds_back_only_itself() {
    let db = db().await;
    let pool = db.pool();
    let admin = Admin::new(pool.clone());
    let spans = Spans::default();
    let release = Arc::new(AtomicBool::new(false));
    let gate = release.clone();
    let sub = failing("fifo", &spans, move |key, seq, _| {
        (key == "stuck" && seq == 0 && !gate.load(Ordering::SeqCst))
            .then(|| HandlerError::retry_after("downstream is down", Duration::from_millis(100)))
    });
    let handle = start(dispatcher(pool).subscribe(sub)).await;
    let others: Vec<String> = (0..20).map(|k| format!("k{k:02}")).collect();
    let mut keys: Vec<&str> = others.iter().map(String::as_str).collect();
    keys.insert(7, "stuck");
    publish_keys(pool, &keys, 5).await;

    wait_until("every other key to be handled", SOON, || async {
        spans.len() >= 20 * 5
    })
    .await;
    assert!(
        seqs_of(&spans, "stuck").is_empty(),
        "stuck ran while its head was failing"
    );
    for k in &others {
        assert_eq!(seqs_of(&spans, k), [0, 1, 2, 3, 4], "key {k}");
    }
    wait_until("the stuck key to be listed as blocked", SOON, || async {
        let blocked = blocked(&admin).await;
        blocked.len() == 1
            && blocked[0].key == "stuck"
            && blocked[0].blocked_by == BlockedBy::Retrying
            && blocked[0].waiting == 4
            && blocked[0].last_error.as_deref() == Some("downstream is down")
    })
    .await;

    release.store(true, Ordering::SeqCst);
    wait_until("the stuck key to catch up", SOON, || async {
        seqs_of(&spans, "stuck").len() == 5
    })
    .await;
    assert_eq!(seqs_of(&spans, "stuck"), [0, 1, 2, 3, 4]);
    assert!(blocked(&admin).await.is_empty());
    stop(pool, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_key_stays_blocked_until_its_dead_letter_is_retried() {
    let db = db().await;
    let pool = db.pool();
    let admin = Admin::new(pool.clone());
    let spans = Spans::default();
    let fixed = Arc::new(AtomicBool::new(false));
    let gate = fixed.clone();
    let sub = failing("fifo", &spans, move |key, seq, _| {
        (key == "bad" && seq == 0 && !gate.load(Ordering::SeqCst))
            .then(|| HandlerError::permanent("cannot parse"))
    });
    let handle = start(dispatcher(pool).subscribe(sub)).await;
    publish_keys(pool, &["bad", "good"], 3).await;

    wait_until("the good key to be handled", SOON, || async {
        seqs_of(&spans, "good").len() == 3
    })
    .await;
    wait_until(
        "the bad key to be listed as blocked by its dead letter",
        SOON,
        || async {
            let blocked = blocked(&admin).await;
            blocked.len() == 1
                && blocked[0].key == "bad"
                && blocked[0].blocked_by == BlockedBy::Dead
                && blocked[0].waiting == 2
        },
    )
    .await;
    let dead = blocked(&admin).await[0].delivery_id;
    assert!(
        seqs_of(&spans, "bad").is_empty(),
        "bad's later events ran past its dead letter"
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM pgbus.deliveries WHERE key = 'bad' AND state = 0"
        )
        .await,
        2,
        "its later deliveries wait, pending"
    );

    fixed.store(true, Ordering::SeqCst);
    admin
        .retry_dead_letter(dead, RetryMode::ResetAttempts)
        .await
        .expect("retry the dead letter");
    wait_until("the bad key to catch up in order", SOON, || async {
        seqs_of(&spans, "bad").len() == 3
    })
    .await;
    assert_eq!(seqs_of(&spans, "bad"), [0, 1, 2]);
    stop(pool, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discarded_dead_letter_unblocks_its_key() {
    let db = db().await;
    let pool = db.pool();
    let admin = Admin::new(pool.clone());
    let spans = Spans::default();
    let sub = failing("fifo", &spans, |key, seq, _| {
        (key == "bad" && seq == 0).then(|| HandlerError::permanent("cannot parse"))
    });
    let handle = start(dispatcher(pool).subscribe(sub)).await;
    publish_keys(pool, &["bad"], 3).await;
    wait_until("the bad key to be blocked", SOON, || async {
        let blocked = blocked(&admin).await;
        blocked.len() == 1 && blocked[0].waiting == 2
    })
    .await;
    let dead = blocked(&admin).await[0].delivery_id;
    admin.discard_dead_letter(dead).await.expect("discard");
    wait_until("the rest of the key to run", SOON, || async {
        seqs_of(&spans, "bad").len() == 2
    })
    .await;
    assert_eq!(seqs_of(&spans, "bad"), [1, 2]);
    stop(pool, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_move_on_a_dead_key_runs_its_next_delivery() {
    let db = db().await;
    let pool = db.pool();
    let admin = Admin::new(pool.clone());
    let spans = Spans::default();
    let sub = failing("fifo", &spans, |key, seq, _| {
        (key == "bad" && seq == 1).then(|| HandlerError::permanent("cannot parse"))
    })
    .dead_key_policy(DeadKeyPolicy::MoveOn);
    let handle = start(dispatcher(pool).subscribe(sub)).await;
    publish_keys(pool, &["bad", "good"], 4).await;
    wait_until("both keys to run past the dead letter", SOON, || async {
        seqs_of(&spans, "bad").len() == 3 && seqs_of(&spans, "good").len() == 4
    })
    .await;
    assert_eq!(seqs_of(&spans, "bad"), [0, 2, 3]);
    assert_eq!(
        delivery_count_in(pool, &[DEAD]).await,
        1,
        "the dead letter stays"
    );
    assert!(blocked(&admin).await.is_empty());
    stop(pool, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_keys_refuses_bad_input() {
    let db = db().await;
    let admin = Admin::new(db.pool().clone());
    assert!(matches!(
        admin.blocked_keys("nobody", None, 10).await,
        Err(pgbus::Error::UnknownSubscription(_))
    ));
    assert!(matches!(
        admin.blocked_keys("bad name", None, 10).await,
        Err(pgbus::Error::InvalidSubscriptionName { .. })
    ));
    assert!(matches!(
        admin.blocked_keys("nobody", None, 0).await,
        Err(pgbus::Error::OutOfRange { .. })
    ));
}
