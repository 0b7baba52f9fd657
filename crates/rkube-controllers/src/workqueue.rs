//! Informers and a work queue: the machinery shared by the endpoint, node, volume and
//! policy controllers. An informer is a watch feeding a reflector cache; each change it sees is
//! mapped to the keys of the objects that must be reconciled again, which go into a
//! de-duplicating [`WorkQueue`]. A controller's loop takes one key at a time and reconciles it
//! from the caches, as upstream's shared informers and rate-limited queues do.

use std::collections::HashSet;
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

/// How long a key waits after a failed reconcile before it is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// A watch of `api` kept in a cache: the cache and the stream of changes, which must be
/// polled (usually by [`feed`]) for the cache to fill. The cache already holds each change
/// when the stream yields it.
pub fn informer<K>(
    api: Api<K>,
    config: watcher::Config,
) -> (
    Store<K>,
    impl Stream<Item = watcher::Event<K>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff()).filter_map(
        |event| async move {
            match event {
                Ok(event) => Some(event),
                Err(err) => {
                    tracing::debug!(error = %err, "watch failed; retrying");
                    None
                }
            }
        },
    );
    (reader, stream)
}

/// A change an informer saw, as the key mappers get it.
pub enum Change<'a, K> {
    /// Added or modified (including objects listed when a watch starts).
    Applied(&'a K),
    /// Deleted.
    Deleted(&'a K),
}

impl<K> Change<'_, K> {
    /// The object that changed.
    pub fn object(&self) -> &K {
        match self {
            Change::Applied(obj) | Change::Deleted(obj) => obj,
        }
    }
}

/// Drives an informer's stream, queueing the keys `map` names for each change. When a watch
/// (re)starts, `resync` is also queued, so that a controller can catch up with deletions it
/// missed while disconnected.
pub async fn feed<K, T, S, F>(queue: WorkQueue<T>, stream: S, mut map: F)
where
    S: Stream<Item = watcher::Event<K>>,
    F: FnMut(Change<'_, K>) -> Vec<T>,
    T: Clone + Eq + Hash + Send + 'static,
{
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let keys = match &event {
            watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => {
                map(Change::Applied(obj))
            }
            watcher::Event::Delete(obj) => map(Change::Deleted(obj)),
            watcher::Event::Init | watcher::Event::InitDone => Vec::new(),
        };
        for key in keys {
            queue.add(key);
        }
    }
}

/// What a reconcile asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing until something it depends on changes.
    Wait,
    /// Look again after this long (a deadline is coming).
    After(Duration),
}

/// Keys waiting to be reconciled. A key already waiting is not queued twice; a key being
/// reconciled may be queued again, so a change during a reconcile is never lost.
pub struct WorkQueue<T> {
    tx: mpsc::UnboundedSender<T>,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<T>>>,
    waiting: Arc<Mutex<HashSet<T>>>,
}

impl<T> Clone for WorkQueue<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            rx: self.rx.clone(),
            waiting: self.waiting.clone(),
        }
    }
}

impl<T: Clone + Eq + Hash + Send + 'static> Default for WorkQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone + Eq + Hash + Send + 'static> WorkQueue<T> {
    /// An empty queue.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: Arc::new(tokio::sync::Mutex::new(rx)),
            waiting: Arc::default(),
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashSet<T>> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `key` unless it is already waiting.
    pub fn add(&self, key: T) {
        if self.waiting().insert(key.clone()) {
            let _ = self.tx.send(key);
        }
    }

    /// Queues `key` after `delay`.
    pub fn add_after(&self, key: T, delay: Duration) {
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(key);
        });
    }

    /// The next key; waits while there is none.
    pub async fn next(&self) -> Option<T> {
        let key = self.rx.lock().await.recv().await?;
        self.waiting().remove(&key);
        Some(key)
    }

    /// Reconciles keys one at a time, for ever: a failure is logged and the key retried after
    /// a second; [`Next::After`] queues the key again after that delay.
    pub async fn run<F, Fut, E>(self, name: &'static str, mut reconcile: F)
    where
        F: FnMut(T) -> Fut,
        Fut: Future<Output = Result<Next, E>>,
        E: std::fmt::Display,
    {
        while let Some(key) = self.next().await {
            match reconcile(key.clone()).await {
                Ok(Next::Wait) => {}
                Ok(Next::After(delay)) => self.add_after(key, delay),
                Err(err) => {
                    tracing::debug!(controller = name, error = %err, "reconcile failed; retrying");
                    self.add_after(key, RETRY);
                }
            }
        }
    }
}

/// Aborts a helper task (an informer's feeder) when the controller that spawned it stops.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `namespace/name` of an object, the key most controllers queue.
pub fn key_of<K: Resource>(obj: &K) -> (String, String) {
    (
        obj.meta().namespace.clone().unwrap_or_default(),
        obj.meta().name.clone().unwrap_or_default(),
    )
}

/// Whether a kube error is the API's 404.
pub fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 404)
}

/// Whether a kube error is the API's 409.
pub fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 409)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiting_key_is_queued_once() {
        let queue = WorkQueue::new();
        queue.add("a");
        queue.add("a");
        queue.add("b");
        assert_eq!(queue.next().await, Some("a"));
        queue.add("a");
        assert_eq!(queue.next().await, Some("b"));
        assert_eq!(queue.next().await, Some("a"));
    }
}
