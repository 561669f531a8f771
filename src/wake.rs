//! In-process wake-ups: a publish wakes the dispatchers of its own process at once, without
//! waiting for the database's NOTIFY.

use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

static LOCAL: Mutex<Vec<Weak<Notify>>> = Mutex::new(Vec::new());

/// Registers a dispatcher; the returned `Notify` gets a permit on every local publish.
pub(crate) fn register() -> Arc<Notify> {
    let notify = Arc::new(Notify::new());
    let mut list = LOCAL.lock().unwrap_or_else(|e| e.into_inner());
    list.retain(|w| w.strong_count() > 0);
    list.push(Arc::downgrade(&notify));
    notify
}

/// Wakes every live dispatcher of this process.
pub(crate) fn wake_local() {
    let list = LOCAL.lock().unwrap_or_else(|e| e.into_inner());
    for notify in list.iter().filter_map(Weak::upgrade) {
        notify.notify_one();
    }
}
