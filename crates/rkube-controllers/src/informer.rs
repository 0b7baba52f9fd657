//! Informers and work queues: the one layer every controller is built on, as upstream's
//! shared informers and rate-limited work queues are.
//!
//! An [`informer`] is a watch feeding a reflector cache; it reports each change (added,
//! updated with the version it replaces, deleted — including objects missing from a relist)
//! after the cache has it. A controller maps changes to the keys of the objects to reconcile
//! ([`feed`]), which wait in a de-duplicating [`WorkQueue`]; workers take one key at a time,
//! never the same key in two workers, and reconcile it from the caches ([`WorkQueue::run`],
//! [`run_workers`]). Nothing here lists periodically: after the first list, work follows
//! changes.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
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
#[derive(Debug)]
pub enum Change<K> {
    /// An object appeared (or was first listed).
    Added(Arc<K>),
    /// An object changed (or was listed again); the cached version before and the new one.
    Updated {
        /// The version the cache held.
        old: Arc<K>,
        /// The version now cached.
        new: Arc<K>,
    },
    /// An object was deleted (or is missing from a relist); its last known version.
    Deleted(Arc<K>),
}

impl<K> Change<K> {
    /// The object as it is now, or as it was last seen if deleted.
    pub fn object(&self) -> &K {
        match self {
            Change::Added(obj) | Change::Updated { new: obj, .. } | Change::Deleted(obj) => obj,
        }
    }

    /// Whether the object is gone.
    pub fn is_deleted(&self) -> bool {
        matches!(self, Change::Deleted(_))
    }
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        match self {
            Change::Added(obj) => Change::Added(obj.clone()),
            Change::Updated { old, new } => Change::Updated {
                old: old.clone(),
                new: new.clone(),
            },
            Change::Deleted(obj) => Change::Deleted(obj.clone()),
        }
    }
}

/// The objects of one shared informer by their controller (the owner reference with
/// `controller: true`), and those without a controller by namespace, as upstream's pod
/// indexer by controller uid with its orphan key: a workload finds its own pods and the ones
/// it may adopt without looking at every pod in the cluster. Kept up to date with the cache,
/// under the lock the informer applies changes with.
pub struct OwnerIndex<K> {
    state: Arc<Mutex<OwnerIndexState<K>>>,
}

impl<K> Clone for OwnerIndex<K> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
        }
    }
}

impl<K> Default for OwnerIndex<K> {
    fn default() -> Self {
        Self {
            state: Arc::new(Mutex::new(OwnerIndexState {
                controlled: HashMap::new(),
                orphans: HashMap::new(),
            })),
        }
    }
}

struct OwnerIndexState<K> {
    /// By the controller's uid, then the object's namespace and name.
    controlled: HashMap<String, HashMap<Key, Arc<K>>>,
    /// Objects without a controller, by namespace, then name.
    orphans: HashMap<String, HashMap<String, Arc<K>>>,
}

impl<K: Resource> OwnerIndex<K> {
    /// The objects whose controller has `uid`.
    pub fn controlled_by(&self, uid: &str) -> Vec<Arc<K>> {
        lock(&self.state)
            .controlled
            .get(uid)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The objects in `namespace` that have no controller.
    pub fn orphans(&self, namespace: &str) -> Vec<Arc<K>> {
        lock(&self.state)
            .orphans
            .get(namespace)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// What a controller with `uid` in `namespace` may own: its objects and the orphans it
    /// could adopt.
    pub fn claimable(&self, namespace: &str, uid: &str) -> Vec<Arc<K>> {
        let mut objects = self.controlled_by(uid);
        objects.extend(self.orphans(namespace));
        objects
    }

    fn apply(&self, change: &Change<K>) {
        let mut state = lock(&self.state);
        match change {
            Change::Added(new) => state.insert(new),
            Change::Updated { old, new } => {
                state.remove(old);
                state.insert(new);
            }
            Change::Deleted(old) => state.remove(old),
        }
    }
}

/// The objects of one shared informer grouped by one string of each (a pod's node, an
/// object's namespace), as upstream's informer indexers: "the pods on node N" is a lookup, not
/// a pass over every pod. Objects the key function names nothing for are left out. Kept up to
/// date with the cache, under the lock the informer applies changes with.
pub struct KeyIndex<K> {
    key: fn(&K) -> Option<&str>,
    state: Arc<Mutex<Groups<K>>>,
}

/// Objects by key value, then by namespace and name.
type Groups<K> = HashMap<String, HashMap<Key, Arc<K>>>;

impl<K> Clone for KeyIndex<K> {
    fn clone(&self) -> Self {
        Self {
            key: self.key,
            state: self.state.clone(),
        }
    }
}

impl<K: Resource> KeyIndex<K> {
    /// An empty index by `key`.
    pub fn new(key: fn(&K) -> Option<&str>) -> Self {
        Self {
            key,
            state: Arc::default(),
        }
    }

    /// The objects whose key is `value`.
    pub fn get(&self, value: &str) -> Vec<Arc<K>> {
        lock(&self.state)
            .get(value)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    fn insert(&self, obj: &Arc<K>) {
        if let Some(value) = (self.key)(obj) {
            lock(&self.state)
                .entry(value.to_owned())
                .or_default()
                .insert(Key::of(obj.as_ref()), obj.clone());
        }
    }

    fn remove(&self, obj: &Arc<K>) {
        let Some(value) = (self.key)(obj) else { return };
        let mut state = lock(&self.state);
        if let Some(m) = state.get_mut(value) {
            m.remove(&Key::of(obj.as_ref()));
            if m.is_empty() {
                state.remove(value);
            }
        }
    }

    fn apply(&self, change: &Change<K>) {
        match change {
            Change::Added(new) => self.insert(new),
            Change::Updated { old, new } => {
                self.remove(old);
                self.insert(new);
            }
            Change::Deleted(old) => self.remove(old),
        }
    }
}

fn controller_uid(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<&str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

impl<K: Resource> OwnerIndexState<K> {
    fn insert(&mut self, obj: &Arc<K>) {
        let meta = obj.meta();
        let key = Key::of(obj.as_ref());
        match controller_uid(meta) {
            Some(uid) => {
                self.controlled
                    .entry(uid.to_owned())
                    .or_default()
                    .insert(key, obj.clone());
            }
            None => {
                self.orphans
                    .entry(key.namespace)
                    .or_default()
                    .insert(key.name, obj.clone());
            }
        }
    }

    fn remove(&mut self, obj: &Arc<K>) {
        let meta = obj.meta();
        let key = Key::of(obj.as_ref());
        match controller_uid(meta) {
            Some(uid) => {
                if let Some(m) = self.controlled.get_mut(uid) {
                    m.remove(&key);
                    if m.is_empty() {
                        self.controlled.remove(uid);
                    }
                }
            }
            None => {
                if let Some(m) = self.orphans.get_mut(&key.namespace) {
                    m.remove(&key.name);
                    if m.is_empty() {
                        self.orphans.remove(&key.namespace);
                    }
                }
            }
        }
    }
}

/// A (re)list in progress: what the cache held before it, and the objects listed so far.
type Relist<K> = (Vec<Arc<K>>, Vec<ObjectRef<K>>);

/// Turns watcher events into [`Change`]s, keeping the cache the events fill.
struct Tracker<K: Resource<DynamicType = ()> + Clone + 'static> {
    writer: reflector::store::Writer<K>,
    store: Store<K>,
    relist: Option<Relist<K>>,
}

impl<K> Tracker<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    fn apply(&mut self, event: watcher::Event<K>) -> Vec<Change<K>> {
        let store = &self.store;
        match &event {
            watcher::Event::Init => {
                self.relist = Some((store.state(), Vec::new()));
                self.writer.apply_watcher_event(&event);
                Vec::new()
            }
            watcher::Event::InitApply(obj) => {
                // The reflector keeps listed objects aside until the list is complete; the
                // changes are reported then, against a complete cache.
                if let Some((_, listed)) = &mut self.relist {
                    listed.push(ObjectRef::from_obj(obj));
                }
                self.writer.apply_watcher_event(&event);
                Vec::new()
            }
            watcher::Event::InitDone => {
                self.writer.apply_watcher_event(&event);
                let (before, listed) = self.relist.take().unwrap_or_default();
                let mut before: HashMap<ObjectRef<K>, Arc<K>> = before
                    .into_iter()
                    .map(|obj| (ObjectRef::from_obj(obj.as_ref()), obj))
                    .collect();
                let mut changes = Vec::with_capacity(listed.len());
                for key in listed {
                    let Some(new) = store.get(&key) else { continue };
                    changes.push(match before.remove(&key) {
                        Some(old) => Change::Updated { old, new },
                        None => Change::Added(new),
                    });
                }
                // What the relist no longer shows was deleted while the watch was down.
                changes.extend(before.into_values().map(Change::Deleted));
                changes
            }
            watcher::Event::Apply(obj) => {
                let key = ObjectRef::from_obj(obj);
                let old = store.get(&key);
                self.writer.apply_watcher_event(&event);
                let Some(new) = store.get(&key) else {
                    return Vec::new();
                };
                vec![match old {
                    Some(old) => Change::Updated { old, new },
                    None => Change::Added(new),
                }]
            }
            watcher::Event::Delete(obj) => {
                let old = store.get(&ObjectRef::from_obj(obj));
                self.writer.apply_watcher_event(&event);
                vec![Change::Deleted(
                    old.unwrap_or_else(|| Arc::new(obj.clone())),
                )]
            }
        }
    }
}

/// A watch of `api` kept in a cache: the cache and the stream of changes, which must be
/// polled (usually by [`feed`]) for the cache to fill. The cache already holds each change
/// when the stream yields it; a failed watch is retried with backoff (listing again only when
/// the server can no longer resume it).
pub fn informer<K>(
    api: Api<K>,
    config: watcher::Config,
) -> (Store<K>, impl Stream<Item = Change<K>> + Send + 'static)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let mut tracker = Tracker {
        writer,
        store: store.clone(),
        relist: None,
    };
    let changes = watch_events(watcher(api, config))
        .map(move |event| futures::stream::iter(tracker.apply(event)))
        .flatten();
    (store, changes)
}

/// One informer per resource type for every controller of a process, as upstream's shared
/// informer factory: one watch and one cache of each kind, however many controllers read it.
/// Cheap to clone; the watches stop when the last clone is dropped.
#[derive(Clone)]
pub struct SharedInformers {
    inner: Arc<SharedInner>,
}

struct SharedInner {
    client: kube::Client,
    /// The informer of each resource type (a [`SharedInformer<K>`] keyed by `K`'s type).
    informers: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
}

/// The shared part of one resource type's informer.
struct SharedInformer<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    /// True once the first list is in the cache. (The cache's own readiness wakes only one of
    /// several waiters, so the controllers sharing it wait on this instead.)
    ready: tokio::sync::watch::Receiver<bool>,
    subscribers: Subscribers<K>,
    index: OwnerIndex<K>,
    /// The indexes by key asked for so far, by name.
    keyed: KeyIndexes<K>,
    _watch: Arc<AbortOnDrop>,
}

type KeyIndexes<K> = Arc<Mutex<HashMap<&'static str, KeyIndex<K>>>>;

/// The channels of the controllers following one informer. The lock is held while a change
/// is applied to the cache and sent, so a new subscriber sees each object exactly once as it
/// stands: either in its first snapshot or in a later change.
type Subscribers<K> = Arc<Mutex<Vec<mpsc::UnboundedSender<Change<K>>>>>;

impl<K: Resource<DynamicType = ()> + 'static> Clone for SharedInformer<K> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            ready: self.ready.clone(),
            subscribers: self.subscribers.clone(),
            index: self.index.clone(),
            keyed: self.keyed.clone(),
            _watch: self._watch.clone(),
        }
    }
}

impl From<kube::Client> for SharedInformers {
    fn from(client: kube::Client) -> Self {
        Self::new(client)
    }
}

impl SharedInformers {
    /// Informers over `client`; none watches until a controller asks for it.
    pub fn new(client: kube::Client) -> Self {
        Self {
            inner: Arc::new(SharedInner {
                client,
                informers: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The client the informers watch with, for the controllers' own requests.
    pub fn client(&self) -> &kube::Client {
        &self.inner.client
    }

    /// The cache of every `K` and a stream of its changes for one controller, once the cache
    /// holds the first list: what it holds then comes first as additions, then every change
    /// as it happens. The first call starts the watch.
    pub async fn informer<K>(&self) -> (Store<K>, impl Stream<Item = Change<K>> + Send + 'static)
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let shared = self.shared::<K>();
        let mut ready = shared.ready.clone();
        // Only an aborted watch closes the channel; the cache is then as ready as it gets.
        let _ = ready.wait_for(|listed| *listed).await;
        let (tx, rx) = mpsc::unbounded();
        {
            let mut subscribers = lock(&shared.subscribers);
            for obj in shared.store.state() {
                // An unbounded channel whose receiver is still here cannot refuse.
                let _ = tx.unbounded_send(Change::Added(obj));
            }
            subscribers.push(tx);
        }
        // The stream keeps the watch alive as long as the controller follows it.
        let keep = shared._watch;
        (
            shared.store,
            rx.map(move |change| {
                let _ = &keep;
                change
            }),
        )
    }

    /// The cache of every `K` by controller ([`OwnerIndex`]), once it holds the first list;
    /// the first call for `K` starts its watch. It follows the watch as long as an informer
    /// of `K` is followed.
    pub async fn owner_index<K>(&self) -> OwnerIndex<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let shared = self.shared::<K>();
        let mut ready = shared.ready.clone();
        let _ = ready.wait_for(|listed| *listed).await;
        shared.index
    }

    /// The cache of every `K` grouped by `key` ([`KeyIndex`]), once it holds the first list;
    /// `name` names the index, so that every controller asking for it shares one. The first
    /// call for `K` starts its watch.
    pub async fn key_index<K>(&self, name: &'static str, key: fn(&K) -> Option<&str>) -> KeyIndex<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let shared = self.shared::<K>();
        let mut ready = shared.ready.clone();
        let _ = ready.wait_for(|listed| *listed).await;
        // Changes are applied under the subscribers' lock: holding it, the cache is still
        // while the new index is filled from it.
        let _still = lock(&shared.subscribers);
        let mut keyed = lock(&shared.keyed);
        keyed
            .entry(name)
            .or_insert_with(|| {
                let index = KeyIndex::new(key);
                for obj in shared.store.state() {
                    index.insert(&obj);
                }
                index
            })
            .clone()
    }

    fn shared<K>(&self) -> SharedInformer<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let mut informers = lock(&self.inner.informers);
        let entry = informers
            .entry(TypeId::of::<K>())
            .or_insert_with(|| Box::new(start_shared::<K>(self.inner.client.clone())));
        entry
            .downcast_ref::<SharedInformer<K>>()
            .expect("informers are keyed by their type")
            .clone()
    }

    /// [`Self::informer`] as the stream of touched objects that kube's `applier` triggers on.
    pub async fn touched<K>(&self) -> (Store<K>, BoxStream<'static, Result<K, watcher::Error>>)
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let (store, changes) = self.informer::<K>().await;
        (store, changes.map(|c| Ok(c.object().clone())).boxed())
    }
}

/// What the shared caches leave out of each object, as upstream's controller manager
/// transforms its informers' objects: what no controller reads, which would otherwise be a
/// good part of every cached object. No controller writes a cached object back whole (they
/// patch), so nothing left out is lost.
/// - managedFields, of every object;
/// - of a pod, the volumes whose contents only its node provides (configMap, secret,
///   projected, downwardAPI, emptyDir) and their mounts: every pod has a projected token
///   volume, and the typed form of one volume alone is over 3 KB. Volumes naming claims or
///   other storage stay;
///
/// and a pod's lists are cut to their length (decoding leaves room for four or eight items: a
/// spare typed container status alone is 750 bytes).
fn trim<K: Resource + 'static>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
    if let Some(pod) = (obj as &mut dyn Any).downcast_mut::<Pod>() {
        compact_pod(pod);
    }
}

/// The pod part of [`trim`].
fn compact_pod(pod: &mut Pod) {
    fn fit<T>(list: &mut Option<Vec<T>>) {
        if let Some(list) = list {
            list.shrink_to_fit();
        }
    }
    let meta = &mut pod.metadata;
    fit(&mut meta.owner_references);
    fit(&mut meta.finalizers);
    if let Some(spec) = pod.spec.as_mut() {
        if let Some(volumes) = spec.volumes.as_mut() {
            volumes.retain(|v| {
                v.config_map.is_none()
                    && v.secret.is_none()
                    && v.projected.is_none()
                    && v.downward_api.is_none()
                    && v.empty_dir.is_none()
            });
            volumes.shrink_to_fit();
        }
        let kept: Vec<String> = spec
            .volumes
            .iter()
            .flatten()
            .map(|v| v.name.clone())
            .collect();
        spec.containers.shrink_to_fit();
        fit(&mut spec.init_containers);
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            if let Some(mounts) = c.volume_mounts.as_mut() {
                mounts.retain(|m| kept.contains(&m.name));
            }
            if c.volume_mounts.as_ref().is_some_and(Vec::is_empty) {
                c.volume_mounts = None;
            }
            fit(&mut c.volume_mounts);
            fit(&mut c.ports);
            fit(&mut c.env);
        }
        fit(&mut spec.tolerations);
    }
    if let Some(status) = pod.status.as_mut() {
        fit(&mut status.conditions);
        fit(&mut status.container_statuses);
        fit(&mut status.init_container_statuses);
        fit(&mut status.ephemeral_container_statuses);
        fit(&mut status.host_ips);
        fit(&mut status.pod_ips);
    }
}

/// Starts the one watch of `K` that every subscriber shares.
fn start_shared<K>(client: kube::Client) -> SharedInformer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let mut tracker = Tracker {
        writer,
        store: store.clone(),
        relist: None,
    };
    let subscribers: Subscribers<K> = Arc::default();
    let fanout = subscribers.clone();
    let index = OwnerIndex::default();
    let indexed = index.clone();
    let keyed: KeyIndexes<K> = Arc::default();
    let keyed_by = keyed.clone();
    let (listed, ready) = tokio::sync::watch::channel(false);
    let events = watch_events(watcher(Api::<K>::all(client), watcher::Config::default()))
        .map(|event| event.modify(trim));
    let task = tokio::spawn(async move {
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            let init_done = matches!(event, watcher::Event::InitDone);
            let mut subscribers = lock(&fanout);
            let changes = tracker.apply(event);
            for change in changes {
                indexed.apply(&change);
                for by in lock(&keyed_by).values() {
                    by.apply(&change);
                }
                subscribers.retain(|tx| tx.unbounded_send(change.clone()).is_ok());
            }
            if init_done {
                listed.send_replace(true);
            }
        }
    });
    SharedInformer {
        store,
        ready,
        subscribers,
        index,
        keyed,
        _watch: Arc::new(AbortOnDrop(task)),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A watcher's events with failures logged and retried with upstream's backoff (0.8 s
/// doubling to 30 s): the raw form, for a cache other than a reflector's (the garbage
/// collector's dependency graph).
pub fn watch_events<K>(
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
) -> impl Stream<Item = watcher::Event<K>> + Send + 'static
where
    K: Send + 'static,
{
    events.default_backoff().filter_map(|event| async move {
        match event {
            Ok(event) => Some(event),
            Err(err) => {
                tracing::debug!(error = %err, "watch failed; retrying");
                None
            }
        }
    })
}

/// Drives an informer's changes, queueing the keys `map` names for each.
pub async fn feed<K, T, S, F>(queue: WorkQueue<T>, changes: S, mut map: F)
where
    S: Stream<Item = Change<K>>,
    F: FnMut(&Change<K>) -> Vec<T>,
    T: Clone + Eq + Hash + Send + 'static,
{
    futures::pin_mut!(changes);
    while let Some(change) = changes.next().await {
        for key in map(&change) {
            queue.add(key);
        }
    }
}

/// The objects of `store` in `namespace`.
pub fn in_namespace<K>(store: &Store<K>, namespace: &str) -> Vec<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.state_filter(|obj| obj.namespace().as_deref() == Some(namespace))
}

/// What a reconcile asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing until something it depends on changes.
    Wait,
    /// Look again after this long (a deadline is coming).
    After(Duration),
}

struct QueueState<T> {
    queue: VecDeque<T>,
    queued: HashSet<T>,
    active: HashSet<T>,
    /// Keys added while being processed: queued again when done.
    dirty: HashSet<T>,
    /// Keys waiting for a delayed add, with when they are due.
    delayed: HashMap<T, tokio::time::Instant>,
}

impl<T> Default for QueueState<T> {
    fn default() -> Self {
        Self {
            queue: VecDeque::new(),
            queued: HashSet::new(),
            active: HashSet::new(),
            dirty: HashSet::new(),
            delayed: HashMap::new(),
        }
    }
}

/// Keys waiting to be reconciled. Adding a key already waiting does nothing; a key added while
/// a worker has it is handed out again once that worker is done, so a change during a
/// reconcile is never lost and one key is never reconciled twice at once.
pub struct WorkQueue<T> {
    state: Arc<Mutex<QueueState<T>>>,
    ready: Arc<Notify>,
}

impl<T> Clone for WorkQueue<T> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            ready: self.ready.clone(),
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
        Self {
            state: Arc::default(),
            ready: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState<T>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `key`.
    pub fn add(&self, key: T) {
        let mut state = self.lock();
        if state.queued.contains(&key) {
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
    pub fn add_after(&self, key: T, delay: Duration) {
        let at = tokio::time::Instant::now() + delay;
        {
            let mut state = self.lock();
            match state.delayed.get(&key) {
                Some(existing) if *existing <= at => return,
                _ => {
                    state.delayed.insert(key.clone(), at);
                }
            }
        }
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            let due = {
                let mut state = queue.lock();
                if state.delayed.get(&key) == Some(&at) {
                    state.delayed.remove(&key);
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
    pub async fn next(&self) -> T {
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
    pub fn done(&self, key: &T) {
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

    /// Reconciles keys one at a time in this task, for ever (see [`run_workers`] for the
    /// retry and requeue rules); `reconcile` may borrow from the caller.
    pub async fn run<F, Fut, E>(self, name: &'static str, mut reconcile: F)
    where
        F: FnMut(T) -> Fut,
        Fut: Future<Output = Result<Next, E>>,
        E: std::fmt::Display,
    {
        let failures = Failures::default();
        loop {
            let key = self.next().await;
            let outcome = reconcile(key.clone()).await;
            self.finish(name, &failures, key, outcome);
        }
    }

    /// Ends one reconcile of `key`: marks it done, then queues it again after a failure
    /// (with the key's growing backoff) or when the reconcile asked to look again later.
    fn finish<E: std::fmt::Display>(
        &self,
        name: &'static str,
        failures: &Failures<T>,
        key: T,
        outcome: Result<Next, E>,
    ) {
        self.done(&key);
        match outcome {
            Ok(next) => {
                failures.forget(&key);
                if let Next::After(delay) = next {
                    self.add_after(key, delay);
                }
            }
            Err(err) => {
                tracing::debug!(controller = name, error = %err, "reconcile failed; retrying");
                let delay = failures.backoff(&key);
                self.add_after(key, delay);
            }
        }
    }
}

/// Failed reconciles per key, for upstream's default per-item backoff: 5 ms doubling to
/// 1000 s.
struct Failures<T>(Arc<Mutex<HashMap<T, u32>>>);

impl<T> Default for Failures<T> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<T> Clone for Failures<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: Eq + Hash + Clone> Failures<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<T, u32>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn forget(&self, key: &T) {
        self.lock().remove(key);
    }

    fn backoff(&self, key: &T) -> Duration {
        let mut failures = self.lock();
        let n = failures.entry(key.clone()).or_insert(0);
        *n = n.saturating_add(1);
        let exp = (*n).saturating_sub(1).min(20);
        Duration::from_millis(5u64 << exp).min(Duration::from_secs(1000))
    }
}

/// Runs `workers` tasks that take keys from `queue` and reconcile them, until dropped. A
/// reconcile says when its key should be looked at again, if ever; a failed reconcile is
/// retried with a growing delay (5 ms doubling to 1000 s, as upstream's default rate limiter).
pub async fn run_workers<T, F, Fut, E>(
    queue: WorkQueue<T>,
    name: &'static str,
    workers: usize,
    reconcile: F,
) where
    T: Clone + Eq + Hash + Send + 'static,
    F: Fn(T) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Next, E>> + Send,
    E: std::fmt::Display,
{
    let failures = Failures::default();
    let tasks: Vec<_> = (0..workers.max(1))
        .map(|_| {
            let (queue, reconcile, failures) = (queue.clone(), reconcile.clone(), failures.clone());
            tokio::spawn(async move {
                loop {
                    let key = queue.next().await;
                    let outcome = reconcile(key.clone()).await;
                    queue.finish(name, &failures, key, outcome);
                }
            })
        })
        .collect();
    let _abort = crate::AbortOnDrop(tasks);
    std::future::pending::<()>().await;
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

    use k8s_openapi::api::core::v1::ConfigMap;

    #[test]
    fn shared_caches_leave_out_managed_fields_and_node_local_pod_volumes() {
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "managedFields": [{"manager": "m", "operation": "Update"}]},
            "spec": {"containers": [{"name": "c", "volumeMounts": [
                {"name": "token", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
                {"name": "data", "mountPath": "/data"}
            ]}], "volumes": [
                {"name": "token", "projected": {"sources": []}},
                {"name": "config", "configMap": {"name": "c"}},
                {"name": "secret", "secret": {"secretName": "s"}},
                {"name": "scratch", "emptyDir": {}},
                {"name": "info", "downwardAPI": {}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "c"}},
                {"name": "host", "hostPath": {"path": "/srv"}}
            ]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": true,
                    "restartCount": 0}]}
        }))
        .unwrap();
        trim(&mut pod);
        assert!(pod.metadata.managed_fields.is_none());
        let status = pod.status.unwrap();
        let statuses = status.container_statuses.unwrap();
        assert_eq!((statuses.len(), statuses.capacity()), (1, 1));
        assert_eq!(status.conditions.unwrap().capacity(), 1);
        let spec = pod.spec.unwrap();
        let mounts: Vec<_> = spec.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(mounts, ["data"], "mounts of left-out volumes go with them");
        let names: Vec<_> = spec
            .volumes
            .iter()
            .flatten()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(names, ["data", "host"]);
        assert_eq!(spec.containers.len(), 1);
        let mut map: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "c", "managedFields": [{"manager": "m"}]},
            "data": {"k": "v"}
        }))
        .unwrap();
        trim(&mut map);
        assert!(map.metadata.managed_fields.is_none());
        assert_eq!(map.data.unwrap()["k"], "v");
    }

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

    #[tokio::test(start_paused = true)]
    async fn a_delayed_key_arrives_once_at_the_earliest_delay() {
        let queue = WorkQueue::new();
        queue.add_after("a", Duration::from_secs(10));
        queue.add_after("a", Duration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(queue.len(), 1);
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(queue.len(), 1, "the later delay was superseded");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_key_backs_off_and_a_success_resets_it() {
        let queue: WorkQueue<&str> = WorkQueue::new();
        let failures = Failures::default();
        let delays: Vec<_> = (0..4).map(|_| failures.backoff(&"a")).collect();
        assert_eq!(
            delays,
            [5, 10, 20, 40].map(Duration::from_millis).to_vec(),
            "5 ms doubling"
        );
        queue.add("a");
        let key = queue.next().await;
        queue.finish("test", &failures, key, Ok::<_, String>(Next::Wait));
        assert_eq!(failures.backoff(&"a"), Duration::from_millis(5));
    }

    fn map(name: &str, rv: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(name.into());
        cm.metadata.namespace = Some("ns".into());
        cm.metadata.resource_version = Some(rv.into());
        cm
    }

    fn names(changes: &[Change<ConfigMap>]) -> Vec<String> {
        changes
            .iter()
            .map(|c| {
                let what = match c {
                    Change::Added(_) => "added",
                    Change::Updated { .. } => "updated",
                    Change::Deleted(_) => "deleted",
                };
                format!(
                    "{what} {}",
                    c.object().metadata.name.as_deref().unwrap_or("")
                )
            })
            .collect()
    }

    #[test]
    fn a_relist_reports_what_was_added_changed_and_deleted_meanwhile() {
        let (store, writer) = reflector::store();
        let mut tracker = Tracker {
            writer,
            store: store.clone(),
            relist: None,
        };
        let mut changes = Vec::new();
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(map("a", "1")),
            watcher::Event::InitApply(map("b", "1")),
        ] {
            changes.extend(tracker.apply(event));
        }
        assert!(
            changes.is_empty(),
            "nothing is reported before the list is complete"
        );
        changes.extend(tracker.apply(watcher::Event::InitDone));
        assert_eq!(names(&changes), ["added a", "added b"]);
        assert_eq!(store.state().len(), 2);

        let updated = tracker.apply(watcher::Event::Apply(map("a", "2")));
        assert!(matches!(&updated[..], [Change::Updated { old, new }]
            if old.metadata.resource_version.as_deref() == Some("1")
            && new.metadata.resource_version.as_deref() == Some("2")));

        let mut changes = Vec::new();
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(map("a", "3")),
            watcher::Event::InitApply(map("c", "3")),
            watcher::Event::InitDone,
        ] {
            changes.extend(tracker.apply(event));
        }
        assert_eq!(names(&changes), ["updated a", "added c", "deleted b"]);
        assert_eq!(store.state().len(), 2);
    }

    #[test]
    fn the_owner_index_follows_adoption_release_and_deletion() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
        let object = |name: &str, ns: &str, controller: Option<&str>| {
            let mut cm = ConfigMap::default();
            cm.metadata.name = Some(name.into());
            cm.metadata.namespace = Some(ns.into());
            cm.metadata.owner_references = controller.map(|uid| {
                vec![OwnerReference {
                    uid: uid.into(),
                    controller: Some(true),
                    ..Default::default()
                }]
            });
            Arc::new(cm)
        };
        let names = |objects: Vec<Arc<ConfigMap>>| {
            let mut names: Vec<String> = objects.iter().map(|o| o.name_any()).collect();
            names.sort();
            names
        };
        let index = OwnerIndex::default();
        index.apply(&Change::Added(object("a", "ns", Some("rs-1"))));
        index.apply(&Change::Added(object("b", "ns", None)));
        index.apply(&Change::Added(object("c", "other", None)));
        index.apply(&Change::Added(object("d", "ns", Some("rs-2"))));
        assert_eq!(names(index.claimable("ns", "rs-1")), ["a", "b"]);
        assert_eq!(names(index.orphans("other")), ["c"]);
        // Adopted, then the first one released.
        index.apply(&Change::Updated {
            old: object("b", "ns", None),
            new: object("b", "ns", Some("rs-1")),
        });
        index.apply(&Change::Updated {
            old: object("a", "ns", Some("rs-1")),
            new: object("a", "ns", None),
        });
        assert_eq!(names(index.controlled_by("rs-1")), ["b"]);
        assert_eq!(names(index.orphans("ns")), ["a"]);
        index.apply(&Change::Deleted(object("b", "ns", Some("rs-1"))));
        index.apply(&Change::Deleted(object("d", "ns", Some("rs-2"))));
        assert!(index.controlled_by("rs-1").is_empty());
        assert_eq!(names(index.claimable("ns", "rs-2")), ["a"]);
        assert!(lock(&index.state).controlled.is_empty());
    }

    #[test]
    fn a_key_index_follows_binding_moves_and_deletion() {
        use k8s_openapi::api::core::v1::PodSpec;
        let pod = |name: &str, node: Option<&str>| {
            Arc::new(Pod {
                metadata: kube::api::ObjectMeta {
                    name: Some(name.into()),
                    namespace: Some("ns".into()),
                    ..Default::default()
                },
                spec: Some(PodSpec {
                    node_name: node.map(Into::into),
                    ..Default::default()
                }),
                ..Default::default()
            })
        };
        let names = |objects: Vec<Arc<Pod>>| {
            let mut names: Vec<String> = objects.iter().map(|o| o.name_any()).collect();
            names.sort();
            names
        };
        let index = KeyIndex::new(|pod: &Pod| pod.spec.as_ref()?.node_name.as_deref());
        index.apply(&Change::Added(pod("a", None)));
        index.apply(&Change::Added(pod("b", Some("n1"))));
        assert_eq!(names(index.get("n1")), ["b"]);
        // Bound: an unbound pod is in no group until then.
        index.apply(&Change::Updated {
            old: pod("a", None),
            new: pod("a", Some("n1")),
        });
        assert_eq!(names(index.get("n1")), ["a", "b"]);
        index.apply(&Change::Updated {
            old: pod("b", Some("n1")),
            new: pod("b", Some("n2")),
        });
        assert_eq!(names(index.get("n1")), ["a"]);
        assert_eq!(names(index.get("n2")), ["b"]);
        index.apply(&Change::Deleted(pod("a", Some("n1"))));
        index.apply(&Change::Deleted(pod("b", Some("n2"))));
        assert!(index.get("n1").is_empty());
        assert!(lock(&index.state).is_empty(), "empty groups are dropped");
    }
}
