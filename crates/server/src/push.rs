//! Push: wakes the connections that wait for news — an app waiting for approval requests,
//! a browser waiting for the app's answer — on this node and, on PostgreSQL, on every node.
//!
//! A wake-up carries no data, only a key (`app:{app_id}` or `flow:{flow_id}`); the woken
//! connection reads what is new from the database. So a lost or doubled wake-up costs at
//! most one read, nothing that matters can travel only in memory, and the app's polling
//! fallback sees exactly what a push would have shown.
//!
//! Across nodes: [`Hub::publish`] wakes local subscribers at once and sends
//! `NOTIFY segl_push, '{node} {key}'`; every node's listener wakes its own subscribers for
//! keys from other nodes. PostgreSQL delivers a notification only after the sender's
//! commit, and the publisher publishes only after its transaction committed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use segl_store::Store;
use tokio::sync::{mpsc, watch};

/// The PostgreSQL channel of the fan-out.
pub const CHANNEL: &str = "segl_push";

/// The key an app's connection waits on.
pub fn app_key(app_id: &str) -> String {
    format!("app:{app_id}")
}

/// The key a browser waiting on a flow listens to.
pub fn flow_key(flow_id: &str) -> String {
    format!("flow:{flow_id}")
}

type Subscribers = HashMap<String, Vec<(u64, mpsc::Sender<()>)>>;

/// Who waits for what on this node. Cheap to clone.
#[derive(Clone)]
pub struct Hub(Arc<Inner>);

struct Inner {
    /// Random per process: a node ignores its own notifications (it woke its own
    /// subscribers already).
    node: String,
    subs: Mutex<Subscribers>,
    next: AtomicU64,
    store: Store,
    /// Flips to true at shutdown, so open streams end and the server can stop.
    closing: watch::Sender<bool>,
}

/// A subscription: [`Subscription::wait`] returns when the key was published (or at
/// shutdown). Dropping it unsubscribes.
pub struct Subscription {
    hub: Hub,
    key: String,
    id: u64,
    rx: mpsc::Receiver<()>,
    closing: watch::Receiver<bool>,
}

impl Subscription {
    /// Waits for the next wake-up; false when the server is shutting down.
    pub async fn wait(&mut self) -> bool {
        if *self.closing.borrow() {
            return false;
        }
        tokio::select! {
            r = self.rx.recv() => r.is_some(),
            _ = self.closing.changed() => false,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut subs = self.hub.0.subs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = subs.get_mut(&self.key) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                subs.remove(&self.key);
            }
        }
    }
}

impl Hub {
    /// A hub publishing through `store` (NOTIFY on PostgreSQL).
    pub fn new(store: Store) -> Hub {
        Hub(Arc::new(Inner {
            node: segl_crypto::random::random_token(12),
            subs: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            store,
            closing: watch::channel(false).0,
        }))
    }

    /// Starts waiting on `key`.
    pub fn subscribe(&self, key: String) -> Subscription {
        // One slot is enough: a wake-up already queued says all a second one would.
        let (tx, rx) = mpsc::channel(1);
        let id = self.0.next.fetch_add(1, Ordering::Relaxed);
        self.0
            .subs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .push((id, tx));
        Subscription {
            hub: self.clone(),
            key,
            id,
            rx,
            closing: self.0.closing.subscribe(),
        }
    }

    /// Open subscriptions on this node (a gauge for `/metrics`).
    pub fn subscriptions(&self) -> usize {
        let subs = self.0.subs.lock().unwrap_or_else(|e| e.into_inner());
        subs.values().map(Vec::len).sum()
    }

    fn wake_local(&self, key: &str) {
        let subs = self.0.subs.lock().unwrap_or_else(|e| e.into_inner());
        for (_, tx) in subs.get(key).into_iter().flatten() {
            let _ = tx.try_send(());
        }
    }

    /// Wakes whoever waits on `key`, here and on the other nodes. Call it after the
    /// transaction that made the news has committed. A failed NOTIFY is logged, not
    /// returned: the other node's subscriber still finds the news when it polls.
    pub async fn publish(&self, key: &str) {
        self.wake_local(key);
        let payload = format!("{} {key}", self.0.node);
        if let Err(e) = self.0.store.notify(CHANNEL, &payload).await {
            tracing::warn!(error = %e, "push: NOTIFY failed; other nodes will see it when they poll");
        }
    }

    /// Ends every open stream (graceful shutdown).
    pub fn close(&self) {
        let _ = self.0.closing.send(true);
    }

    /// Returns once [`Hub::close`] was called.
    pub async fn closed(&self) {
        let mut closing = self.0.closing.subscribe();
        let _ = closing.wait_for(|c| *c).await;
    }

    /// On PostgreSQL, listens for the other nodes' notifications until shutdown,
    /// reconnecting after a lost connection. Nothing to do on SQLite.
    pub fn start_listener(&self) {
        let hub = self.clone();
        tokio::spawn(async move {
            let mut closing = hub.0.closing.subscribe();
            let mut backoff = Duration::from_millis(100);
            loop {
                let mut listener = match hub.0.store.listen(CHANNEL).await {
                    Ok(Some(l)) => l,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "push: cannot LISTEN; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = closing.changed() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                };
                backoff = Duration::from_millis(100);
                loop {
                    let n = tokio::select! {
                        n = listener.try_recv() => n,
                        _ = closing.changed() => return,
                    };
                    match n {
                        Ok(Some(n)) => {
                            if let Some((node, key)) = n.payload().split_once(' ')
                                && node != hub.0.node
                            {
                                hub.wake_local(key);
                            }
                        }
                        // The connection dropped: notifications may be lost meanwhile, so
                        // everyone looks once.
                        Ok(None) => hub.wake_all(),
                        Err(e) => {
                            tracing::warn!(error = %e, "push: LISTEN connection failed; reconnecting");
                            hub.wake_all();
                            break;
                        }
                    }
                }
            }
        });
    }

    fn wake_all(&self) {
        let subs = self.0.subs.lock().unwrap_or_else(|e| e.into_inner());
        for (_, tx) in subs.values().flatten() {
            let _ = tx.try_send(());
        }
    }
}
