//! The ConfigMaps and Secrets the node's pods refer to, each served from a watch of its own, as
//! upstream's kubelet does with its default `configMapAndSecretChangeDetectionStrategy: Watch`
//! (`pkg/kubelet/util/manager/watch_based_manager.go`).
//!
//! A pod is registered when the kubelet learns of it or of a change to it, and unregistered
//! when its worker is done. Each (namespace, name) that a registered pod refers to has one watch
//! (`fieldSelector=metadata.name=<name>` in its namespace), started with the first pod that
//! names it and stopped when the last one goes; reads are answered from that watch's latest
//! copy, so a pod's start and the periodic volume refresh cost the API server nothing, and a
//! change reaches the pods at their next refresh. An object marked `immutable` cannot change
//! any more, so its watch stops once the object was seen. The registry is keyed by pod uid,
//! which lets every hollow node of a simulation share one (one watch per object per process).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::services::ServiceCache;

/// How long a read waits for an object's watch to deliver its first list; upstream's
/// kubelet waits one second too before failing the read.
pub const SYNC_WAIT: Duration = Duration::from_secs(1);

/// Why an object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No registered pod refers to the object, so nothing watches it.
    #[error("object {namespace:?}/{name:?} not registered")]
    NotRegistered {
        /// The object's namespace.
        namespace: String,
        /// The object's name.
        name: String,
    },
    /// The object's watch has not listed it yet.
    #[error("failed to sync {kind} cache: timed out waiting for the condition")]
    NotSynced {
        /// `configmap` or `secret`.
        kind: &'static str,
    },
}

/// A namespaced kind the manager can watch.
pub trait Source:
    kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The resource, lower case, as upstream's errors name it.
    const KIND: &'static str;
    /// The object is marked `immutable: true`.
    fn immutable(&self) -> bool;
}

impl Source for ConfigMap {
    const KIND: &'static str = "configmap";
    fn immutable(&self) -> bool {
        self.immutable == Some(true)
    }
}

impl Source for Secret {
    const KIND: &'static str = "secret";
    fn immutable(&self) -> bool {
        self.immutable == Some(true)
    }
}

/// What a watch has seen: `None` until its first list, then the object or its absence.
type Latest<K> = Option<Option<K>>;

/// One watched object.
struct Watched<K> {
    /// Registered pods that refer to it.
    refs: usize,
    /// The watch's latest copy.
    latest: watch::Receiver<Latest<K>>,
    /// The watch; aborted when the object is no longer referenced.
    task: JoinHandle<()>,
}

type Key = (String, String);

struct State<K> {
    objects: HashMap<Key, Watched<K>>,
    /// The objects each registered pod refers to, by pod uid.
    pods: HashMap<String, Vec<Key>>,
}

/// Objects of one kind that registered pods refer to, each watched while referenced.
pub struct WatchManager<K: Source> {
    client: kube::Client,
    state: Mutex<State<K>>,
}

impl<K: Source> WatchManager<K> {
    /// A manager reading through `client`.
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            state: Mutex::new(State {
                objects: HashMap::new(),
                pods: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that pod `uid` refers to `names` in `namespace` (replacing what it referred to
    /// before): watches start for objects new to the manager and stop for those no pod refers
    /// to any more.
    pub fn register(&self, uid: &str, namespace: &str, names: &[String]) {
        let keys: Vec<Key> = names
            .iter()
            .map(|name| (namespace.to_owned(), name.clone()))
            .collect();
        let mut state = self.lock();
        // References are added before the old ones go, so an object the pod keeps naming
        // keeps its watch.
        for key in &keys {
            match state.objects.get_mut(key) {
                Some(watched) => watched.refs += 1,
                None => {
                    let watched = self.start(key);
                    state.objects.insert(key.clone(), watched);
                }
            }
        }
        let old = state.pods.insert(uid.to_owned(), keys).unwrap_or_default();
        release(&mut state, &old);
    }

    /// Forgets pod `uid`'s references.
    pub fn unregister(&self, uid: &str) {
        let mut state = self.lock();
        if let Some(old) = state.pods.remove(uid) {
            release(&mut state, &old);
        }
    }

    /// How many objects are watched or kept (for tests and metrics).
    pub fn watched(&self) -> usize {
        self.lock().objects.len()
    }

    /// `namespace/name` as its watch last saw it (`None`: the API has no such object), waiting
    /// up to [`SYNC_WAIT`] for the watch's first list.
    pub async fn get(&self, namespace: &str, name: &str) -> Result<Option<K>, Error> {
        let latest = self
            .lock()
            .objects
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|w| w.latest.clone());
        let Some(mut latest) = latest else {
            return Err(Error::NotRegistered {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            });
        };
        match tokio::time::timeout(SYNC_WAIT, latest.wait_for(Option::is_some)).await {
            Ok(Ok(seen)) => Ok(seen.clone().flatten()),
            // The watch ended before it listed (it is only stopped after a list) or is slow.
            _ => Err(Error::NotSynced { kind: K::KIND }),
        }
    }

    fn start(&self, key: &Key) -> Watched<K> {
        let (tx, latest) = watch::channel(None);
        let task = tokio::spawn(watch_object::<K>(
            self.client.clone(),
            key.0.clone(),
            key.1.clone(),
            tx,
        ));
        Watched {
            refs: 1,
            latest,
            task,
        }
    }
}

impl<K: Source> Drop for WatchManager<K> {
    fn drop(&mut self) {
        for watched in self.lock().objects.values() {
            watched.task.abort();
        }
    }
}

fn release<K>(state: &mut State<K>, keys: &[Key]) {
    for key in keys {
        if let Some(watched) = state.objects.get_mut(key) {
            watched.refs -= 1;
            if watched.refs == 0 {
                watched.task.abort();
                state.objects.remove(key);
            }
        }
    }
}

/// Watches one object, publishing each state it is seen in; ends once the object is
/// immutable.
async fn watch_object<K: Source>(
    client: kube::Client,
    namespace: String,
    name: String,
    tx: watch::Sender<Latest<K>>,
) {
    let api: Api<K> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher(api, config).default_backoff().boxed();
    let mut listed: Option<K> = None;
    while let Some(event) = events.next().await {
        let seen = match event {
            Ok(watcher::Event::Init) => {
                listed = None;
                continue;
            }
            Ok(watcher::Event::InitApply(object)) => {
                listed = Some(object);
                continue;
            }
            Ok(watcher::Event::InitDone) => listed.take(),
            Ok(watcher::Event::Apply(object)) => Some(object),
            Ok(watcher::Event::Delete(_)) => None,
            Err(e) => {
                tracing::debug!(kind = K::KIND, %namespace, %name, error = %e, "watch");
                continue;
            }
        };
        let done = seen.as_ref().is_some_and(K::immutable);
        tx.send_replace(Some(seen));
        if done {
            return;
        }
    }
}

/// What the pods of one node, or of every hollow node of a simulation, are made from besides
/// their spec: the ConfigMaps and Secrets they refer to and the Services of their environment.
pub struct PodSources {
    /// ConfigMaps by namespace and name.
    pub config_maps: WatchManager<ConfigMap>,
    /// Secrets by namespace and name.
    pub secrets: WatchManager<Secret>,
    /// Every Service (kept by `services::watch_services`).
    pub services: Arc<ServiceCache>,
}

impl PodSources {
    /// Managers reading through `client`.
    pub fn new(client: kube::Client) -> Self {
        Self {
            config_maps: WatchManager::new(client.clone()),
            secrets: WatchManager::new(client),
            services: Arc::new(ServiceCache::default()),
        }
    }

    /// Registers what `pod` (as now seen) refers to: its environment's, volumes' and image
    /// pulls' ConfigMaps and Secrets. A pod that has finished (Succeeded or Failed) starts no
    /// container and refreshes no volume any more, so its references go, as upstream's
    /// kubelet unregisters terminated pods.
    pub fn register_pod(&self, pod: &Pod) {
        let (Some(uid), Some(namespace)) = (
            pod.metadata.uid.as_deref(),
            pod.metadata.namespace.as_deref(),
        ) else {
            return;
        };
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            self.unregister_pod(uid);
            return;
        }
        let (config_maps, secrets) = crate::env::referenced(pod);
        self.config_maps.register(uid, namespace, &config_maps);
        self.secrets.register(uid, namespace, &secrets);
    }

    /// Forgets pod `uid`'s references.
    pub fn unregister_pod(&self, uid: &str) {
        self.config_maps.unregister(uid);
        self.secrets.unregister(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client whose requests never get an answer: watches start and never list.
    fn silent_client() -> kube::Client {
        let service = tower::service_fn(|_request: http::Request<kube::client::Body>| {
            futures::future::pending::<
                Result<http::Response<kube::client::Body>, std::convert::Infallible>,
            >()
        });
        kube::Client::new(service, "default")
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    #[tokio::test]
    async fn an_object_is_watched_while_a_pod_refers_to_it() {
        let manager: WatchManager<ConfigMap> = WatchManager::new(silent_client());
        manager.register("pod-1", "team", &names(&["a", "b"]));
        manager.register("pod-2", "team", &names(&["a"]));
        manager.register("pod-3", "other", &names(&["a"]));
        assert_eq!(manager.watched(), 3);
        // pod-1 no longer names `a`; pod-2 still does.
        manager.register("pod-1", "team", &names(&["b"]));
        assert_eq!(manager.watched(), 3);
        manager.unregister("pod-2");
        assert_eq!(manager.watched(), 2);
        manager.unregister("pod-1");
        manager.unregister("pod-3");
        assert_eq!(manager.watched(), 0);
        // Forgetting a pod twice changes nothing.
        manager.unregister("pod-1");
        assert_eq!(manager.watched(), 0);
    }

    #[tokio::test]
    async fn reads_of_unregistered_or_unlisted_objects_fail() {
        let manager: WatchManager<Secret> = WatchManager::new(silent_client());
        assert!(matches!(
            manager.get("team", "token").await,
            Err(Error::NotRegistered { .. })
        ));
        manager.register("pod-1", "team", &names(&["token"]));
        let started = std::time::Instant::now();
        let read = manager.get("team", "token").await;
        assert!(
            matches!(read, Err(Error::NotSynced { kind: "secret" })),
            "{read:?}"
        );
        assert!(started.elapsed() >= SYNC_WAIT);
    }

    #[tokio::test]
    async fn a_finished_pod_refers_to_nothing_any_more() {
        let sources = PodSources::new(silent_client());
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "team", "name": "job-1", "uid": "u1"},
            "spec": {
                "containers": [{"name": "c", "image": "busybox"}],
                "volumes": [
                    {"name": "ca", "configMap": {"name": "kube-root-ca.crt"}},
                    {"name": "creds", "secret": {"secretName": "creds"}},
                ],
            },
        }))
        .unwrap_or_default();
        sources.register_pod(&pod);
        assert_eq!(
            (sources.config_maps.watched(), sources.secrets.watched()),
            (1, 1)
        );
        pod.status = serde_json::from_value(serde_json::json!({"phase": "Succeeded"})).ok();
        sources.register_pod(&pod);
        assert_eq!(
            (sources.config_maps.watched(), sources.secrets.watched()),
            (0, 0)
        );
    }
}
