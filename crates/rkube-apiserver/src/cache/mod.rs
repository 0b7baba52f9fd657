//! The watch cache: every stored resource's current objects and a window of its recent
//! events, in memory, fed by one watch over the whole store.
//!
//! One watch over every key (rather than one per resource) means the cache sees every
//! revision the store hands out, so "the cache has caught up with revision R" is one number
//! to wait for — which is how a read without a resourceVersion is served consistently, as
//! upstream's consistent reads from cache do: read the store's current revision, wait until
//! the cache has seen it, answer from the cache.
//!
//! Objects are kept as the stored bytes (see [`object`]); events share those objects.
//! Until the cache has loaded, or while it reloads after losing its watch, reads go to the
//! store as if there were no cache.

mod object;
mod read;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
pub(crate) use object::{BindEdit, CachedObject, bind_stored, raw_member, stamp_version};
pub(crate) use read::{CachedList, CachedPage, list_json};
use rkube_api::ApiError;
use rkube_api::registry::{self, ResourceType};
use rkube_store::{KeyValue, ListOptions, Revision, Store, WatchEvent, WatchOptions};
use tokio::sync::watch;
use tokio::time::Instant;

/// How the watch cache behaves.
#[derive(Clone, Debug)]
pub struct WatchCacheConfig {
    /// Serve reads and watches from the cache (off: every read goes to the store).
    pub enabled: bool,
    /// Every resource keeps at least this many recent events (upstream's lower bound, 100).
    pub min_events: usize,
    /// And at most this many (upstream's upper bound, 100 × 1024).
    pub max_events: usize,
    /// Between the two bounds, events are kept while younger than this (upstream: 75 s).
    pub keep_for: Duration,
}

impl Default for WatchCacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_events: 100,
            max_events: 100 * 1024,
            keep_for: Duration::from_secs(75),
        }
    }
}

/// How long a read waits for the cache to reach the revision it needs (upstream: 3 s).
const FRESHNESS_WAIT: Duration = Duration::from_secs(3);

/// How many keys one page of the initial load reads.
const LOAD_PAGE: usize = 5000;

/// What a change did to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// One change, as the window keeps it.
#[derive(Debug)]
pub(crate) struct CachedEvent {
    /// The revision of the change.
    pub revision: Revision,
    pub kind: EventKind,
    /// The object after the change; for a deletion, the object that was deleted.
    pub object: Arc<CachedObject>,
    /// The object before the change (`None` for a creation).
    pub prev: Option<Arc<CachedObject>>,
    at: Instant,
    /// The plain JSON watch line, encoded once for every unfiltered JSON watcher while the
    /// event is among the newest [`LINES_KEPT`].
    json_line: Mutex<Line>,
}

/// How many of a resource's newest events keep their encoded watch line. Watchers that
/// keep up share it; one further behind encodes the event again. The window holds events
/// for a minute or more, and the lines would double what it holds.
const LINES_KEPT: usize = 1024;

#[derive(Debug)]
enum Line {
    Unset,
    Set(Bytes),
    /// The event is no longer among the newest: its line is not kept.
    Retired,
}

impl CachedEvent {
    /// The plain JSON watch line: the one kept, else `encode`'s (kept unless retired).
    pub fn json_line(&self, encode: impl FnOnce() -> Option<Bytes>) -> Option<Bytes> {
        let mut line = self.json_line.lock().unwrap_or_else(|e| e.into_inner());
        match &*line {
            Line::Set(bytes) => Some(bytes.clone()),
            Line::Unset => {
                let bytes = encode()?;
                *line = Line::Set(bytes.clone());
                Some(bytes)
            }
            Line::Retired => encode(),
        }
    }

    fn retire_line(&self) {
        *self.json_line.lock().unwrap_or_else(|e| e.into_inner()) = Line::Retired;
    }
}

/// What a read needs from the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// Every write acknowledged before the read (no resourceVersion).
    Consistent,
    /// Whatever the cache has (`resourceVersion=0`).
    Any,
    /// At least this revision (`resourceVersion=N`, NotOlderThan).
    NotOlderThan(Revision),
}

/// One resource's part of the cache.
pub(crate) struct ResourceCache {
    /// The resource's API group ("" for the core group) and plural name.
    group: &'static str,
    plural: &'static str,
    /// False for a resource only counted: its reads and watches go to the store.
    cached: bool,
    state: RwLock<ResourceState>,
    /// The revision of the resource's latest event, for its watchers to wait on.
    changed: watch::Sender<Revision>,
}

/// Whether the cache keeps `rt`'s objects. Events are only counted, as upstream's default
/// `--watch-cache-sizes` leaves them out: they are a large share of the objects, written once
/// and seldom read, and nothing in the cluster watches them all.
fn cached(rt: &ResourceType) -> bool {
    !(rt.plural == "events" && (rt.group.is_empty() || rt.group == "events.k8s.io"))
}

/// The objects and window of one resource.
#[derive(Default)]
pub(crate) struct ResourceState {
    /// The objects, by key below the resource's prefix.
    pub objects: BTreeMap<Box<str>, Arc<CachedObject>>,
    /// Recent events, oldest first.
    pub events: VecDeque<Arc<CachedEvent>>,
    /// Every event after this revision is in the window.
    pub floor: Revision,
    /// The revision of the latest event applied (or of the load).
    pub last: Revision,
    /// Which load of the cache this state belongs to.
    pub generation: u64,
    /// How many objects a resource that is only counted has.
    pub counted: usize,
}

impl ResourceState {
    /// The revision this state is exactly the store's state at: every event up to the
    /// cache's revision `seen` has been applied, and so has each of this resource's events.
    pub fn revision(&self, seen: Revision) -> Revision {
        self.last.max(seen)
    }

    /// The events after `revision`, at most `limit`; `None` when some of them have left the
    /// window already.
    pub fn events_after(&self, revision: Revision, limit: usize) -> Option<Vec<Arc<CachedEvent>>> {
        if revision < self.floor {
            return None;
        }
        let first = self.events.partition_point(|e| e.revision <= revision);
        Some(
            self.events
                .iter()
                .skip(first)
                .take(limit)
                .cloned()
                .collect(),
        )
    }
}

impl ResourceCache {
    /// Reads the state.
    pub fn read(&self) -> RwLockReadGuard<'_, ResourceState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver that wakes on this resource's events.
    pub fn subscribe(&self) -> watch::Receiver<Revision> {
        self.changed.subscribe()
    }
}

/// Every resource's cache, and the task that feeds them.
pub(crate) struct WatchCache {
    store: Arc<dyn Store>,
    config: WatchCacheConfig,
    resources: HashMap<String, Arc<ResourceCache>>,
    /// The store revision up to which every event has been applied.
    seen: watch::Sender<Revision>,
    ready: AtomicBool,
    generation: AtomicU64,
}

/// The resource prefix of a store key (`/registry/<group>/<plural>/`) and the rest of it.
fn split_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("/registry/")?;
    let group_end = rest.find('/')?;
    let plural_end = group_end + 1 + rest[group_end + 1..].find('/')?;
    let cut = "/registry/".len() + plural_end + 1;
    Some((&key[..cut], &key[cut..]))
}

impl WatchCache {
    /// A cache over `store` for every stored resource; [`WatchCache::run`] fills it.
    pub fn new(store: Arc<dyn Store>, config: WatchCacheConfig) -> Arc<Self> {
        let mut resources = HashMap::new();
        for rt in registry::all().types().iter().filter(|rt| rt.is_stored()) {
            resources
                .entry(crate::objects::prefix(rt, None))
                .or_insert_with(|| {
                    Arc::new(ResourceCache {
                        group: rt.group,
                        plural: rt.plural,
                        cached: cached(rt),
                        state: RwLock::default(),
                        changed: watch::Sender::new(0),
                    })
                });
        }
        Arc::new(Self {
            store,
            config,
            resources,
            seen: watch::Sender::new(0),
            ready: AtomicBool::new(false),
            generation: AtomicU64::new(0),
        })
    }

    /// The store the cache follows.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Whether the cache has loaded and serves reads.
    pub fn is_ready(&self) -> bool {
        self.config.enabled && self.ready.load(Ordering::Acquire)
    }

    /// How many objects each resource has, as `(group, plural, count)`; `None` while the
    /// cache does not serve reads. One lock and one length per resource, whatever the number
    /// of objects.
    pub fn object_counts(&self) -> Option<Vec<(&'static str, &'static str, usize)>> {
        if !self.is_ready() {
            return None;
        }
        let mut counts: Vec<_> = self
            .resources
            .values()
            .map(|r| {
                let state = r.read();
                let n = if r.cached {
                    state.objects.len()
                } else {
                    state.counted
                };
                (r.group, r.plural, n)
            })
            .collect();
        counts.sort_unstable();
        Some(counts)
    }

    /// The revision up to which the cache has applied every event.
    pub fn seen(&self) -> Revision {
        *self.seen.borrow()
    }

    /// Which load of the cache is current; watchers end when it changes.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The cache of `rt`, once the cache has loaded and has reached what `freshness` asks
    /// for; `None` sends the read to the store. A `NotOlderThan` the cache does not reach in
    /// time is upstream's 504 "Too large resource version".
    pub async fn ready_for(
        &self,
        rt: &ResourceType,
        freshness: Freshness,
    ) -> Result<Option<&Arc<ResourceCache>>, ApiError> {
        if !self.config.enabled || !self.ready.load(Ordering::Acquire) {
            return Ok(None);
        }
        let Some(resource) = self
            .resources
            .get(&crate::objects::prefix(rt, None))
            .filter(|r| r.cached)
        else {
            return Ok(None);
        };
        let target = match freshness {
            Freshness::Any => return Ok(Some(resource)),
            Freshness::NotOlderThan(rv) => rv,
            Freshness::Consistent => match self.store.current_revision().await {
                Ok(rev) => rev,
                Err(_) => return Ok(None),
            },
        };
        let mut seen = self.seen.subscribe();
        let reached = tokio::time::timeout(FRESHNESS_WAIT, seen.wait_for(|r| *r >= target)).await;
        match (reached, freshness) {
            (Ok(Ok(_)), _) => Ok(Some(resource)),
            // A consistent read the cache cannot serve in time goes to the store, as upstream.
            (_, Freshness::Consistent) => Ok(None),
            _ => Err(ApiError::Timeout(format!(
                "Too large resource version: {target}, current: {}",
                self.seen()
            ))),
        }
    }

    /// Loads the cache and keeps it fed until the process ends, loading it again whenever
    /// the store watch fails.
    pub async fn run(self: Arc<Self>) {
        if !self.config.enabled {
            return;
        }
        loop {
            let result = self.load().await;
            let stream = match result {
                Ok(revision) => {
                    let options = WatchOptions {
                        start_revision: revision + 1,
                        progress_notify: Some(Duration::from_secs(1)),
                    };
                    self.store.watch("/", options).await
                }
                Err(err) => Err(err),
            };
            match stream {
                Ok(stream) => {
                    self.ready.store(true, Ordering::Release);
                    let err = self.dispatch(stream).await;
                    tracing::warn!(error = ?err, "watch cache lost its store watch; reloading");
                }
                Err(err) => tracing::warn!(error = %err, "loading the watch cache"),
            }
            self.ready.store(false, Ordering::Release);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Reads every resource at one revision into fresh states; returns the revision.
    async fn load(&self) -> Result<Revision, rkube_store::Error> {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let mut fresh: HashMap<&str, ResourceState> = HashMap::new();
        let mut revision = None;
        let mut start = None;
        loop {
            let page = self
                .store
                .list(
                    "/registry/",
                    ListOptions {
                        revision,
                        limit: Some(LOAD_PAGE),
                        start: start.take(),
                    },
                )
                .await?;
            revision = Some(page.revision);
            for kv in &page.items {
                if let Some((prefix, rest)) = split_key(&kv.key)
                    && let Some((prefix, resource)) = self.resources.get_key_value(prefix)
                {
                    let state = fresh.entry(prefix.as_str()).or_default();
                    if resource.cached {
                        let object = CachedObject::new(rest, kv.value.clone(), kv.mod_revision);
                        state.objects.insert(rest.into(), Arc::new(object));
                    } else {
                        state.counted += 1;
                    }
                }
            }
            match page.items.last() {
                Some(last) if page.more => start = Some(rkube_store::continue_after(&last.key)),
                _ => break,
            }
        }
        let revision = revision.unwrap_or(0);
        for (prefix, resource) in &self.resources {
            let mut state = fresh.remove(prefix.as_str()).unwrap_or_default();
            state.floor = revision;
            state.last = revision;
            state.generation = generation;
            *resource.state.write().unwrap_or_else(|p| p.into_inner()) = state;
            // Wake the watchers of the previous load so they see it has ended.
            resource.changed.send_replace(revision);
        }
        self.seen.send_replace(revision);
        Ok(revision)
    }

    /// Applies store events until the watch fails; returns why it ended.
    async fn dispatch(&self, mut stream: rkube_store::WatchStream) -> Option<rkube_store::Error> {
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(event) => event,
                Err(err) => return Some(err),
            };
            let revision = event.revision();
            match event {
                WatchEvent::Progress { .. } => {}
                WatchEvent::Put { kv, prev } => self.apply(&kv.key, revision, Some(&kv), prev),
                WatchEvent::Delete { key, prev, .. } => self.apply(&key, revision, None, prev),
            }
            self.seen.send_if_modified(|seen| {
                let moved = revision > *seen;
                *seen = (*seen).max(revision);
                moved
            });
        }
        None
    }

    fn apply(&self, key: &str, revision: Revision, kv: Option<&KeyValue>, prev: Option<KeyValue>) {
        let Some((prefix, rest)) = split_key(key) else {
            return;
        };
        let Some(resource) = self.resources.get(prefix) else {
            return;
        };
        if !resource.cached {
            let mut state = resource.state.write().unwrap_or_else(|p| p.into_inner());
            match (kv.is_some(), prev.is_some()) {
                (true, false) => state.counted += 1,
                (false, true) => state.counted = state.counted.saturating_sub(1),
                _ => {}
            }
            state.last = revision;
            return;
        }
        {
            let mut state = resource.state.write().unwrap_or_else(|p| p.into_inner());
            let before = state.objects.get(rest).cloned().or_else(|| {
                prev.map(|p| Arc::new(CachedObject::new(rest, p.value, p.mod_revision)))
            });
            let (kind, object) = match kv {
                Some(kv) => {
                    let object = Arc::new(CachedObject::new(rest, kv.value.clone(), revision));
                    state.objects.insert(rest.into(), object.clone());
                    let kind = if before.is_some() {
                        EventKind::Modified
                    } else {
                        EventKind::Added
                    };
                    (kind, object)
                }
                None => {
                    state.objects.remove(rest);
                    match &before {
                        Some(before) => (EventKind::Deleted, before.clone()),
                        // A deletion of something never seen changes nothing a client saw.
                        None => {
                            state.last = revision;
                            return;
                        }
                    }
                }
            };
            let now = Instant::now();
            state.events.push_back(Arc::new(CachedEvent {
                revision,
                kind,
                object,
                prev: before,
                at: now,
                json_line: Mutex::new(Line::Unset),
            }));
            if let Some(older) = state.events.len().checked_sub(LINES_KEPT + 1) {
                state.events[older].retire_line();
            }
            state.last = revision;
            while let Some(oldest) = state.events.front() {
                let len = state.events.len();
                let stale = now.duration_since(oldest.at) > self.config.keep_for;
                if len > self.config.max_events || (len > self.config.min_events && stale) {
                    state.floor = oldest.revision;
                    state.events.pop_front();
                } else {
                    break;
                }
            }
        }
        resource.changed.send_replace(revision);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_into_the_resource_prefix_and_the_rest() {
        assert_eq!(
            split_key("/registry/core/pods/default/web"),
            Some(("/registry/core/pods/", "default/web"))
        );
        assert_eq!(
            split_key("/registry/apps/deployments/a/b"),
            Some(("/registry/apps/deployments/", "a/b"))
        );
        assert_eq!(split_key("/registry/core"), None);
        assert_eq!(split_key("/rkube/compact_revision"), None);
    }

    #[tokio::test]
    async fn only_the_newest_events_keep_their_watch_line() {
        let cache = WatchCache::new(
            Arc::new(rkube_store::MemoryStore::new()),
            WatchCacheConfig::default(),
        );
        let extra = 3;
        for revision in 1..=(LINES_KEPT + extra) as Revision {
            let key = format!("/registry/core/configmaps/default/c{revision}");
            let kv = KeyValue {
                key: key.clone(),
                value: Bytes::from_static(b"{\"metadata\":{}}"),
                create_revision: revision,
                mod_revision: revision,
                lease: None,
            };
            cache.apply(&key, revision, Some(&kv), None);
        }
        let resource = &cache.resources["/registry/core/configmaps/"];
        let state = resource.state.read().unwrap();
        assert_eq!(state.events.len(), LINES_KEPT + extra);
        let encodes = std::sync::atomic::AtomicUsize::new(0);
        let line = |event: &CachedEvent| {
            event.json_line(|| {
                encodes.fetch_add(1, Ordering::Relaxed);
                Some(Bytes::from(event.revision.to_string()))
            })
        };
        // A kept line is encoded once and then shared.
        let newest = state.events.back().unwrap();
        assert_eq!(line(newest).unwrap(), newest.revision.to_string());
        assert_eq!(line(newest).unwrap(), newest.revision.to_string());
        assert_eq!(encodes.load(Ordering::Relaxed), 1);
        // Events older than the newest LINES_KEPT encode theirs each time, and keep none.
        let oldest = &state.events[extra - 1];
        for _ in 0..2 {
            assert_eq!(line(oldest).unwrap(), oldest.revision.to_string());
        }
        assert_eq!(encodes.load(Ordering::Relaxed), 3);
        assert!(matches!(*oldest.json_line.lock().unwrap(), Line::Retired));
        assert!(matches!(
            *state.events[extra].json_line.lock().unwrap(),
            Line::Unset
        ));
    }
}
