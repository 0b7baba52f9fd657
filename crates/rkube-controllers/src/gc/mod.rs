//! The garbage collector: ownerReferences made real, as upstream's
//! (`pkg/controller/garbagecollector`).
//!
//! Monitors watch the metadata (`PartialObjectMetadata`) of every resource discovery shows
//! with the delete, list and watch verbs, Events aside; discovery is read again every
//! [`DISCOVERY_EVERY`], so new resources get monitors. Their events build the dependency
//! [`graph`], which names the objects to look at:
//!
//! - a dependent whose owners are all gone is deleted — with the propagation its own
//!   finalizers ask for — after a live GET of each owner confirms it is absent (not found, or
//!   another uid), so an owner newer than the graph is never taken for missing; references to
//!   absent owners are dropped from a dependent that keeps a live owner;
//! - an owner being deleted with the `orphan` finalizer releases its dependents (their
//!   reference to it is removed), then loses the finalizer;
//! - an owner being deleted with the `foregroundDeletion` finalizer has its dependents deleted
//!   (in the foreground themselves if they have dependents), and loses the finalizer once no
//!   dependent blocks it (`blockOwnerDeletion`);
//! - an owner known only from references is looked up; if absent, its dependents are looked
//!   at.
//!
//! Only change costs anything: once the monitors have listed, an idle cluster sends no
//! requests but a discovery read now and then.

pub mod graph;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions,
    PropagationPolicy,
};
use kube::core::PartialObjectMeta;
use kube::discovery::{Discovery, Scope};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::{Notify, mpsc};

use self::graph::{Event, Graph, Identity, Observed, Work};
use crate::informer::{AbortOnDrop, Next, WorkQueue, is_conflict, is_not_found, watch_events};

/// How often discovery is read again for new resources (upstream's controller manager
/// re-syncs the collector's monitors every 30 s).
pub const DISCOVERY_EVERY: Duration = Duration::from_secs(30);

/// How long the workers wait for the first lists before starting anyway (a GET confirms
/// every deletion, so starting early is safe, only slower).
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// Workers on the delete queue (upstream's `--concurrent-gc-syncs` is 20; these mostly wait
/// for the in-process server).
const DELETE_WORKERS: usize = 8;
const ORPHAN_WORKERS: usize = 2;

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";

/// Why looking at an object failed; the object is looked at again after a backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the API server failed.
    #[error("{identity}: {source}")]
    Api {
        /// The object the request was about.
        identity: String,
        /// What the server or client said.
        #[source]
        source: kube::Error,
    },
    /// An owner known only from references exists but no monitor has shown it yet: it is
    /// looked at again until one does or it goes.
    #[error("{0} exists but has not been observed yet")]
    NotObserved(String),
}

type Result<T, E = Error> = std::result::Result<T, E>;

fn describe(identity: &Identity) -> String {
    match &identity.namespace {
        Some(ns) => format!(
            "{} {ns}/{} ({})",
            identity.kind, identity.name, identity.uid
        ),
        None => format!("{} {} ({})", identity.kind, identity.name, identity.uid),
    }
}

/// A resource the API serves, as discovery describes it.
#[derive(Clone, Debug)]
struct Served {
    resource: ApiResource,
    namespaced: bool,
}

/// What the monitors, the graph builder and the workers share.
struct Shared {
    client: kube::Client,
    graph: Mutex<Graph>,
    /// Served resources by (group, kind), from the last discovery read.
    served: RwLock<HashMap<(String, String), Served>>,
    events: mpsc::UnboundedSender<Event>,
    deletes: WorkQueue<String>,
    orphans: WorkQueue<String>,
}

/// What an ownerReference turned out to point at.
enum OwnerState {
    /// The owner exists and is not waiting for its dependents.
    Solid,
    /// Nothing with that uid is there.
    Dangling,
    /// The owner is being deleted in the foreground.
    WaitingForDependents,
}

fn has_finalizer(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.finalizers.iter().flatten().any(|f| f == finalizer)
}

/// An emptied list is removed, as upstream's objects omit empty lists.
fn none_if_empty(list: serde_json::Value) -> serde_json::Value {
    if list.as_array().is_some_and(Vec::is_empty) {
        serde_json::Value::Null
    } else {
        list
    }
}

impl Shared {
    fn graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn served(&self, api_version: &str, kind: &str) -> Option<Served> {
        let group = graph::group_of(api_version).to_owned();
        self.served
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&(group, kind.to_owned()))
            .cloned()
    }

    /// The API of `identity`'s resource in its namespace, if the server serves its kind.
    fn api(&self, identity: &Identity) -> Option<(Api<DynamicObject>, bool)> {
        let served = self.served(&identity.api_version, &identity.kind)?;
        let api = match identity.namespace.as_deref().filter(|_| served.namespaced) {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &served.resource),
            None => Api::all_with(self.client.clone(), &served.resource),
        };
        Some((api, served.namespaced))
    }

    /// The live metadata of `identity`, `None` if nothing with its uid is there.
    async fn get_live(
        &self,
        api: &Api<DynamicObject>,
        identity: &Identity,
    ) -> Result<Option<PartialObjectMeta<DynamicObject>>> {
        match api.get_metadata(&identity.name).await {
            Ok(found) if found.metadata.uid.as_deref() == Some(identity.uid.as_str()) => {
                Ok(Some(found))
            }
            Ok(_) => Ok(None),
            Err(err) if is_not_found(&err) => Ok(None),
            Err(source) => Err(Error::Api {
                identity: describe(identity),
                source,
            }),
        }
    }

    fn fail(identity: &Identity) -> impl FnOnce(kube::Error) -> Error + '_ {
        move |source| Error::Api {
            identity: describe(identity),
            source,
        }
    }

    /// Whether the graph shows every owner of `node` alive and not deleting its dependents
    /// first: then nothing is to be done and no request is needed.
    fn owners_solid_in_graph(&self, node: &graph::Node) -> bool {
        let graph = self.graph();
        node.owners.iter().all(|reference| {
            graph.node(&reference.uid).is_some_and(|owner| {
                owner.observed
                    && !owner.deleting_dependents
                    && owner.identity.is_named_by(reference)
                    && (owner.identity.namespace.is_none()
                        || owner.identity.namespace == node.identity.namespace)
            })
        })
    }

    /// Upstream's attemptToDeleteItem.
    async fn attempt_to_delete(&self, uid: String) -> Result<Next> {
        let Some(node) = self.graph().node(&uid).cloned() else {
            return Ok(Next::Wait);
        };
        // Deletion is a one-way trip: its dependents are looked at once it is gone.
        if node.being_deleted && !node.deleting_dependents {
            return Ok(Next::Wait);
        }
        if node.observed && !node.deleting_dependents && self.owners_solid_in_graph(&node) {
            return Ok(Next::Wait);
        }
        let identity = &node.identity;
        let Some((api, _)) = self.api(identity) else {
            // A kind the server does not serve cannot be looked up; its dependents keep it.
            tracing::debug!(object = %describe(identity), "owner of an unserved kind");
            return Ok(Next::Wait);
        };
        let Some(latest) = self.get_live(&api, identity).await? else {
            let _ = self.events.send(Event::VerifiedAbsent(identity.clone()));
            return Ok(Next::Wait);
        };
        if node.deleting_dependents {
            return self.process_deleting_dependents(&node).await;
        }
        let owners = latest.metadata.owner_references.clone().unwrap_or_default();
        if !owners.is_empty() {
            let mut solid = Vec::new();
            let mut gone = Vec::new();
            let mut waiting = Vec::new();
            for reference in &owners {
                match self.owner_state(reference, identity).await? {
                    OwnerState::Solid => solid.push(reference),
                    OwnerState::Dangling => gone.push(reference),
                    OwnerState::WaitingForDependents => waiting.push(reference),
                }
            }
            if !solid.is_empty() {
                if !gone.is_empty() || !waiting.is_empty() {
                    let drop: HashSet<&str> = gone
                        .iter()
                        .chain(&waiting)
                        .map(|r| r.uid.as_str())
                        .collect();
                    let kept: Vec<&OwnerReference> = owners
                        .iter()
                        .filter(|r| !drop.contains(r.uid.as_str()))
                        .collect();
                    self.patch_owners(&api, identity, &latest.metadata, json!(kept))
                        .await?;
                }
            } else if !waiting.is_empty() && !node.dependents.is_empty() {
                // An owner waits for this object, which has dependents of its own: it goes in
                // the foreground too. A dependent already deleting its own dependents may be
                // waiting for this object (a cycle): this object stops blocking its owners.
                let cycle = {
                    let graph = self.graph();
                    node.dependents
                        .iter()
                        .any(|d| graph.node(d).is_some_and(|d| d.deleting_dependents))
                };
                if cycle {
                    let unblocked: Vec<OwnerReference> = owners
                        .iter()
                        .cloned()
                        .map(|mut r| {
                            if r.block_owner_deletion == Some(true) {
                                r.block_owner_deletion = Some(false);
                            }
                            r
                        })
                        .collect();
                    self.patch_owners(&api, identity, &latest.metadata, json!(unblocked))
                        .await?;
                }
                self.delete(&api, identity, PropagationPolicy::Foreground)
                    .await?;
            } else {
                let meta = &latest.metadata;
                let policy = if has_finalizer(meta, ORPHAN) {
                    PropagationPolicy::Orphan
                } else if has_finalizer(meta, FOREGROUND) {
                    PropagationPolicy::Foreground
                } else {
                    PropagationPolicy::Background
                };
                self.delete(&api, identity, policy).await?;
            }
        }
        if node.observed {
            Ok(Next::Wait)
        } else {
            Err(Error::NotObserved(describe(identity)))
        }
    }

    /// Whether `reference`, made by `dependent`, points at a live owner.
    async fn owner_state(
        &self,
        reference: &OwnerReference,
        dependent: &Identity,
    ) -> Result<OwnerState> {
        let owner = Identity::of_owner(reference, dependent.namespace.as_deref());
        let Some((api, namespaced)) = self.api(&owner) else {
            // An owner of a kind the server does not serve cannot be checked: the dependent
            // keeps it.
            return Ok(OwnerState::Solid);
        };
        // A cluster-scoped object cannot be owned by a namespaced one.
        if namespaced && dependent.namespace.is_none() {
            return Ok(OwnerState::Dangling);
        }
        Ok(match self.get_live(&api, &owner).await? {
            None => OwnerState::Dangling,
            Some(found)
                if found.metadata.deletion_timestamp.is_some()
                    && has_finalizer(&found.metadata, FOREGROUND) =>
            {
                OwnerState::WaitingForDependents
            }
            Some(_) => OwnerState::Solid,
        })
    }

    /// An owner deleted in the foreground: done once no dependent blocks it; otherwise its
    /// blocking dependents are looked at.
    async fn process_deleting_dependents(&self, node: &graph::Node) -> Result<Next> {
        let blocking: Vec<String> = {
            let graph = self.graph();
            node.dependents
                .iter()
                .filter(|d| {
                    graph.node(d).is_some_and(|d| {
                        d.owner_reference(&node.identity.uid)
                            .is_some_and(|r| r.block_owner_deletion == Some(true))
                    })
                })
                .cloned()
                .collect()
        };
        if blocking.is_empty() {
            self.remove_finalizer(&node.identity, FOREGROUND).await?;
            return Ok(Next::Wait);
        }
        let graph = self.graph();
        for dependent in blocking {
            if !graph
                .node(&dependent)
                .is_some_and(|d| d.deleting_dependents)
            {
                self.deletes.add(dependent);
            }
        }
        Ok(Next::Wait)
    }

    /// Upstream's attemptToOrphan: every dependent lets go of the owner, then the owner loses
    /// the `orphan` finalizer.
    async fn attempt_to_orphan(&self, uid: String) -> Result<Next> {
        let Some((owner, dependents)) = ({
            let graph = self.graph();
            graph.node(&uid).map(|node| {
                let dependents: Vec<Identity> = node
                    .dependents
                    .iter()
                    .filter_map(|d| graph.node(d))
                    .map(|d| d.identity.clone())
                    .collect();
                (node.identity.clone(), dependents)
            })
        }) else {
            return Ok(Next::Wait);
        };
        for dependent in &dependents {
            let Some((api, _)) = self.api(dependent) else {
                continue;
            };
            let Some(latest) = self.get_live(&api, dependent).await? else {
                continue;
            };
            let owners = latest
                .metadata
                .owner_references
                .as_deref()
                .unwrap_or_default();
            if !owners.iter().any(|r| r.uid == owner.uid) {
                continue;
            }
            let kept: Vec<&OwnerReference> = owners.iter().filter(|r| r.uid != owner.uid).collect();
            self.patch_owners(&api, dependent, &latest.metadata, json!(kept))
                .await?;
        }
        self.remove_finalizer(&owner, ORPHAN).await?;
        Ok(Next::Wait)
    }

    /// Sets a dependent's ownerReferences, pinned to the version read: if it changed
    /// meanwhile the patch fails and the object is looked at again.
    async fn patch_owners(
        &self,
        api: &Api<DynamicObject>,
        identity: &Identity,
        seen: &ObjectMeta,
        owners: serde_json::Value,
    ) -> Result<()> {
        let patch = json!({"metadata": {
            "ownerReferences": none_if_empty(owners),
            "resourceVersion": seen.resource_version,
        }});
        self.patch(api, identity, &patch).await
    }

    async fn patch(
        &self,
        api: &Api<DynamicObject>,
        identity: &Identity,
        patch: &serde_json::Value,
    ) -> Result<()> {
        match api
            .patch(
                &identity.name,
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if is_not_found(&err) => Ok(()),
            Err(err) => Err(Self::fail(identity)(err)),
        }
    }

    /// Removes `finalizer` from the object, pinned to the version read.
    async fn remove_finalizer(&self, identity: &Identity, finalizer: &str) -> Result<()> {
        let Some((api, _)) = self.api(identity) else {
            return Ok(());
        };
        let Some(latest) = self.get_live(&api, identity).await? else {
            return Ok(());
        };
        if !has_finalizer(&latest.metadata, finalizer) {
            return Ok(());
        }
        let kept: Vec<&String> = latest
            .metadata
            .finalizers
            .iter()
            .flatten()
            .filter(|f| f.as_str() != finalizer)
            .collect();
        let patch = json!({"metadata": {
            "finalizers": none_if_empty(json!(kept)),
            "resourceVersion": latest.metadata.resource_version,
        }});
        self.patch(&api, identity, &patch).await
    }

    /// Deletes the object if it is still the one with `identity`'s uid.
    async fn delete(
        &self,
        api: &Api<DynamicObject>,
        identity: &Identity,
        policy: PropagationPolicy,
    ) -> Result<()> {
        let params = DeleteParams {
            propagation_policy: Some(policy.clone()),
            preconditions: Some(Preconditions {
                uid: Some(identity.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        tracing::debug!(object = %describe(identity), ?policy, "collecting");
        match api.delete(&identity.name, &params).await {
            Ok(_) => Ok(()),
            // Gone already, or replaced by an object of another uid.
            Err(err) if is_not_found(&err) || is_conflict(&err) => Ok(()),
            Err(err) => Err(Self::fail(identity)(err)),
        }
    }
}

/// The metadata of one object as the graph takes it; `None` without a uid.
fn observed(resource: &ApiResource, meta: ObjectMeta) -> Option<Observed> {
    let uid = meta.uid?;
    Some(Observed {
        being_deleted: meta.deletion_timestamp.is_some(),
        orphan_finalizer: meta.finalizers.iter().flatten().any(|f| f == ORPHAN),
        foreground_finalizer: meta.finalizers.iter().flatten().any(|f| f == FOREGROUND),
        identity: Identity {
            api_version: resource.api_version.clone(),
            kind: resource.kind.clone(),
            namespace: meta.namespace,
            name: meta.name.unwrap_or_default(),
            uid,
        },
        owners: meta.owner_references.unwrap_or_default(),
    })
}

/// Watches the metadata of one resource into the graph, for ever. `listed` is notified the
/// first time the resource has been listed.
async fn monitor(shared: Arc<Shared>, resource: ApiResource, listed: Arc<Listed>) {
    let api: Api<PartialObjectMeta<DynamicObject>> =
        Api::all_with(shared.client.clone(), &resource);
    let events = watch_events(watcher(api, watcher::Config::default()));
    futures::pin_mut!(events);
    let mut listing: Option<HashSet<String>> = None;
    let mut first = true;
    while let Some(event) = events.next().await {
        let event = match event {
            watcher::Event::Init => {
                listing = Some(HashSet::new());
                continue;
            }
            watcher::Event::InitApply(obj) => {
                let Some(observed) = observed(&resource, obj.metadata) else {
                    continue;
                };
                if let Some(uids) = &mut listing {
                    uids.insert(observed.identity.uid.clone());
                }
                Event::Observed(observed)
            }
            watcher::Event::InitDone => {
                if first {
                    first = false;
                    listed.done();
                }
                Event::Listed {
                    group: resource.group.clone(),
                    kind: resource.kind.clone(),
                    uids: listing.take().unwrap_or_default(),
                }
            }
            watcher::Event::Apply(obj) => match observed(&resource, obj.metadata) {
                Some(observed) => Event::Observed(observed),
                None => continue,
            },
            watcher::Event::Delete(obj) => match observed(&resource, obj.metadata) {
                Some(observed) => Event::Deleted(observed.identity),
                None => continue,
            },
        };
        if shared.events.send(event).is_err() {
            return;
        }
    }
}

/// Counts the monitors that have not listed yet.
#[derive(Default)]
struct Listed {
    pending: AtomicUsize,
    notify: Notify,
}

impl Listed {
    fn done(&self) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
        self.notify.notify_waiters();
    }

    async fn all(&self) {
        loop {
            let notified = self.notify.notified();
            if self.pending.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Collects garbage.
#[derive(Clone)]
pub struct GarbageCollector {
    client: kube::Client,
}

/// The resources the collector monitors: those it can delete, list and watch, except
/// Events, as upstream's `DefaultIgnoredResources`.
fn monitored(resource: &ApiResource, operations: &[String]) -> bool {
    let can = |verb: &str| operations.iter().any(|o| o == verb);
    can("delete")
        && can("list")
        && can("watch")
        && !(resource.plural == "events" && matches!(resource.group.as_str(), "" | "events.k8s.io"))
}

impl GarbageCollector {
    /// A collector acting through `client`.
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        let (events, mut incoming) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            client: self.client.clone(),
            graph: Mutex::default(),
            served: RwLock::default(),
            events,
            deletes: WorkQueue::new(),
            orphans: WorkQueue::new(),
        });
        let _builder = {
            let shared = shared.clone();
            AbortOnDrop(tokio::spawn(async move {
                while let Some(event) = incoming.recv().await {
                    let work = shared.graph().apply(event);
                    for item in work {
                        match item {
                            Work::AttemptToDelete(uid) => shared.deletes.add(uid),
                            Work::AttemptToOrphan(uid) => shared.orphans.add(uid),
                        }
                    }
                }
            }))
        };
        let mut monitors: HashMap<(String, String), AbortOnDrop> = HashMap::new();
        let listed = Arc::new(Listed::default());
        let mut workers: Option<AbortOnDrop> = None;
        loop {
            match self.discover().await {
                Ok(found) => {
                    let mut served = HashMap::new();
                    for (resource, namespaced, operations) in found {
                        let key = (resource.group.clone(), resource.kind.clone());
                        if monitored(&resource, &operations) && !monitors.contains_key(&key) {
                            if workers.is_none() {
                                listed.pending.fetch_add(1, Ordering::AcqRel);
                            }
                            let task = monitor(shared.clone(), resource.clone(), listed.clone());
                            monitors.insert(key.clone(), AbortOnDrop(tokio::spawn(task)));
                        }
                        served.insert(
                            key,
                            Served {
                                resource,
                                namespaced,
                            },
                        );
                    }
                    // Resources no longer served lose their monitors.
                    monitors.retain(|key, _| served.contains_key(key));
                    *shared
                        .served
                        .write()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()) = served;
                }
                Err(err) => tracing::warn!(error = %err, "garbage collector: discovery"),
            }
            if workers.is_none() && !monitors.is_empty() {
                if tokio::time::timeout(SYNC_TIMEOUT, listed.all())
                    .await
                    .is_err()
                {
                    tracing::warn!("garbage collector: starting before every resource was listed");
                }
                workers = Some(start_workers(shared.clone()));
            }
            tokio::time::sleep(DISCOVERY_EVERY).await;
        }
    }

    /// Every served resource (preferred versions): its API, whether it is namespaced, and
    /// its verbs.
    async fn discover(&self) -> Result<Vec<(ApiResource, bool, Vec<String>)>, kube::Error> {
        let discovery = match Discovery::new(self.client.clone()).run_aggregated().await {
            Ok(discovery) => discovery,
            Err(_) => Discovery::new(self.client.clone()).run().await?,
        };
        Ok(discovery
            .groups()
            .flat_map(|group| group.recommended_resources())
            .map(|(resource, caps)| {
                let namespaced = caps.scope == Scope::Namespaced;
                (resource, namespaced, caps.operations.clone())
            })
            .collect())
    }
}

fn start_workers(shared: Arc<Shared>) -> AbortOnDrop {
    let deletes = {
        let shared = shared.clone();
        crate::informer::run_workers(
            shared.deletes.clone(),
            "garbage-collector",
            DELETE_WORKERS,
            move |uid: String| {
                let shared = shared.clone();
                async move { shared.attempt_to_delete(uid).await }
            },
        )
    };
    let orphans = {
        let shared = shared.clone();
        crate::informer::run_workers(
            shared.orphans.clone(),
            "garbage-collector",
            ORPHAN_WORKERS,
            move |uid: String| {
                let shared = shared.clone();
                async move { shared.attempt_to_orphan(uid).await }
            },
        )
    };
    AbortOnDrop(tokio::spawn(async move {
        futures::join!(deletes, orphans);
    }))
}
