//! Informers and a keyed work queue for the ReplicaSet and Deployment controllers:
//! an [`Informer`] keeps a local cache of one kind from a watch and reports each change to a
//! handler; a [`WorkQueue`] holds the keys of objects to reconcile, each at most once, and never
//! hands one key to two workers at the same time.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

/// The key of a namespaced object: namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl Key {
    /// The key of `obj`.
    pub fn of<K: Resource>(obj: &K) -> Self {
        Self {
            namespace: obj.meta().namespace.clone().unwrap_or_default(),
            name: obj.meta().name.clone().unwrap_or_default(),
        }
    }

    /// The reflector reference for this key.
    pub fn object_ref<K: Resource<DynamicType = ()>>(&self) -> ObjectRef<K> {
        ObjectRef::new(&self.name).within(&self.namespace)
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One change seen by an informer.
pub enum Change<K> {
    /// An object appeared (or was first listed).
    Added(Arc<K>),
    /// An object changed; the cached version before and the new one.
    Updated {
        /// The version the cache held.
        old: Arc<K>,
        /// The version now cached.
        new: Arc<K>,
    },
    /// An object was deleted (or is missing from a relist); its last known version.
    Deleted(Arc<K>),
}

/// A watch-fed cache of one kind. The handler sees each change after the cache has it.
pub struct Informer<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    writer: reflector::store::Writer<K>,
    api: Api<K>,
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// An informer over every object `api` can list.
    pub fn new(api: Api<K>) -> Self {
        let (store, writer) = reflector::store();
        Self { store, writer, api }
    }

    /// The cache this informer fills (ready once the first list is in).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Keeps the cache current and calls `handler` for every change, until dropped.
    pub async fn run(self, mut handler: impl FnMut(Change<K>) + Send) {
        let Self {
            store, mut writer, ..
        } = self;
        let stream = watcher(self.api, watcher::Config::default()).default_backoff();
        let mut stream = std::pin::pin!(stream);
        let mut relisted: Option<Vec<Arc<K>>> = None;
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(event) => event,
                Err(err) => {
                    tracing::debug!(error = %err, kind = %K::kind(&()), "watch failed; retrying");
                    continue;
                }
            };
            match &event {
                watcher::Event::Init => {
                    relisted = Some(store.state());
                    writer.apply_watcher_event(&event);
                }
                watcher::Event::InitApply(obj) => {
                    let old = store.get(&ObjectRef::from_obj(obj));
                    writer.apply_watcher_event(&event);
                    if let Some(new) = store_get(&store, obj) {
                        handler(match old {
                            Some(old) => Change::Updated { old, new },
                            None => Change::Added(new),
                        });
                    }
                }
                watcher::Event::InitDone => {
                    writer.apply_watcher_event(&event);
                    // Objects missing from the relist were deleted while the watch was down.
                    for old in relisted.take().unwrap_or_default() {
                        if store.get(&ObjectRef::from_obj(old.as_ref())).is_none() {
                            handler(Change::Deleted(old));
                        }
                    }
                }
                watcher::Event::Apply(obj) => {
                    let old = store.get(&ObjectRef::from_obj(obj));
                    writer.apply_watcher_event(&event);
                    if let Some(new) = store_get(&store, obj) {
                        handler(match old {
                            Some(old) => Change::Updated { old, new },
                            None => Change::Added(new),
                        });
                    }
                }
                watcher::Event::Delete(obj) => {
                    let old = store.get(&ObjectRef::from_obj(obj));
                    writer.apply_watcher_event(&event);
                    handler(Change::Deleted(
                        old.unwrap_or_else(|| Arc::new(obj.clone())),
                    ));
                }
            }
        }
    }
}

fn store_get<K>(store: &Store<K>, obj: &K) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.get(&ObjectRef::from_obj(obj))
}

/// The objects of `store` in `namespace`.
pub fn in_namespace<K>(store: &Store<K>, namespace: &str) -> Vec<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.state_filter(|obj| obj.namespace().as_deref() == Some(namespace))
}

#[derive(Default)]
struct QueueState {
    queue: VecDeque<Key>,
    queued: HashSet<Key>,
    active: HashSet<Key>,
    /// Keys added while being processed: queued again when done.
    dirty: HashSet<Key>,
    shut_down: bool,
}

/// Keys waiting to be reconciled. Adding a key already waiting does nothing; a key added while
/// a worker has it is handed out again once that worker is done.
#[derive(Clone, Default)]
pub struct WorkQueue {
    state: Arc<Mutex<QueueState>>,
    ready: Arc<Notify>,
    delayed: Arc<Mutex<HashMap<Key, tokio::time::Instant>>>,
}

impl WorkQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `key`.
    pub fn add(&self, key: Key) {
        let mut state = self.lock();
        if state.shut_down || state.queued.contains(&key) {
            return;
        }
        if state.active.contains(&key) {
            state.dirty.insert(key);
            return;
        }
        state.queued.insert(key.clone());
        state.queue.push_back(key);
        drop(state);
        self.ready.notify_one();
    }

    /// Queues `key` after `delay` (an earlier pending delay for the same key wins).
    pub fn add_after(&self, key: Key, delay: Duration) {
        let at = tokio::time::Instant::now() + delay;
        {
            let mut delayed = self
                .delayed
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match delayed.get(&key) {
                Some(existing) if *existing <= at => return,
                _ => {
                    delayed.insert(key.clone(), at);
                }
            }
        }
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            let due = {
                let mut delayed = queue
                    .delayed
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if delayed.get(&key) == Some(&at) {
                    delayed.remove(&key);
                    true
                } else {
                    false
                }
            };
            if due {
                queue.add(key);
            }
        });
    }

    /// The next key to work on; call [`WorkQueue::done`] with it afterwards.
    pub async fn next(&self) -> Key {
        loop {
            let notified = self.ready.notified();
            {
                let mut state = self.lock();
                if let Some(key) = state.queue.pop_front() {
                    state.queued.remove(&key);
                    state.active.insert(key.clone());
                    if !state.queue.is_empty() {
                        self.ready.notify_one();
                    }
                    return key;
                }
            }
            notified.await;
        }
    }

    /// Marks `key` finished; if it was added meanwhile it is queued again.
    pub fn done(&self, key: &Key) {
        let mut state = self.lock();
        state.active.remove(key);
        if state.dirty.remove(key) {
            state.queued.insert(key.clone());
            state.queue.push_back(key.clone());
            drop(state);
            self.ready.notify_one();
        }
    }

    /// How many keys wait.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether no key waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Runs `workers` tasks that take keys from `queue` and reconcile them, until dropped. A
/// reconcile returns the delay after which its key should be looked at again, if any; a
/// failed reconcile is retried with a growing delay (5 ms doubling to 1000 s, as upstream's
/// default rate limiter).
pub async fn run_workers<F, Fut, E>(queue: WorkQueue, workers: usize, reconcile: F)
where
    F: Fn(Key) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Option<Duration>, E>> + Send,
    E: std::fmt::Display,
{
    let failures: Arc<Mutex<HashMap<Key, u32>>> = Arc::default();
    let tasks: Vec<_> = (0..workers.max(1))
        .map(|_| {
            let (queue, reconcile, failures) = (queue.clone(), reconcile.clone(), failures.clone());
            tokio::spawn(async move {
                loop {
                    let key = queue.next().await;
                    let outcome = reconcile(key.clone()).await;
                    let retry = {
                        let mut failures = failures
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner());
                        match &outcome {
                            Ok(_) => {
                                failures.remove(&key);
                                None
                            }
                            Err(err) => {
                                let n = failures.entry(key.clone()).or_insert(0);
                                *n = n.saturating_add(1);
                                tracing::debug!(key = %key, error = %err, "reconcile failed");
                                let exp = (*n).saturating_sub(1).min(20);
                                Some(
                                    Duration::from_millis(5u64 << exp)
                                        .min(Duration::from_secs(1000)),
                                )
                            }
                        }
                    };
                    queue.done(&key);
                    match (outcome, retry) {
                        (_, Some(delay)) => queue.add_after(key, delay),
                        (Ok(Some(delay)), None) => queue.add_after(key, delay),
                        _ => {}
                    }
                }
            })
        })
        .collect();
    let _abort = crate::AbortOnDrop(tasks);
    std::future::pending::<()>().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        Key {
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    #[tokio::test]
    async fn a_key_is_queued_once_and_requeued_when_added_while_active() {
        let queue = WorkQueue::default();
        queue.add(key("a"));
        queue.add(key("a"));
        queue.add(key("b"));
        assert_eq!(queue.len(), 2);
        let first = queue.next().await;
        assert_eq!(first, key("a"));
        queue.add(key("a"));
        assert_eq!(queue.len(), 1, "an active key is not handed out twice");
        assert_eq!(queue.next().await, key("b"));
        queue.done(&first);
        assert_eq!(queue.next().await, key("a"));
    }
}
