//! The namespace controller: a namespace being deleted (phase Terminating, with the
//! `kubernetes` finalizer) is emptied of every namespaced object, then finalized, which lets the
//! API server delete it.
//!
//! Namespaces are followed through an informer: only a namespace whose deletion has begun is
//! reconciled, and only then are its contents listed, so an idle cluster costs nothing however
//! many objects it holds.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::GroupVersionKind;
use kube::runtime::reflector::ObjectRef;
use rkube_api::registry;

use crate::informer::SharedInformers;
use crate::informer::{AbortOnDrop, Change, Next, WorkQueue, feed};

/// The finalizer the API server puts on every namespace.
const FINALIZER: &str = "kubernetes";

/// How soon a terminating namespace is looked at again while it still holds objects (upstream
/// waits half the remaining grace estimate plus one second; without pods that is a second).
const RESYNC: Duration = Duration::from_secs(1);

/// What reconciling one namespace led to.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do: not terminating, or already finalized.
    Idle,
    /// Objects remain (being deleted gracefully, or held by finalizers); look again later.
    Waiting(usize),
    /// Emptied and finalized.
    Finalized,
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
#[error("namespace {namespace}: {source}")]
pub struct Error {
    namespace: String,
    #[source]
    source: kube::Error,
}

/// Empties and finalizes deleted namespaces.
#[derive(Clone)]
pub struct NamespaceController {
    client: kube::Client,
    informers: SharedInformers,
}

fn api_resource(rt: &registry::ResourceType) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(rt.group, rt.version, rt.kind),
        rt.plural,
    )
}

impl NamespaceController {
    /// A controller acting through `client`.
    pub fn new(client: impl Into<SharedInformers>) -> Self {
        let informers: SharedInformers = client.into();
        Self {
            client: informers.client().clone(),
            informers,
        }
    }

    /// Runs until the task is dropped: a namespace is reconciled when it changes while being
    /// deleted, and again every [`RESYNC`] while objects remain in it.
    pub async fn run(self) {
        let queue = WorkQueue::new();
        let (namespaces, changes) = self.informers.informer::<Namespace>().await;
        let _feed = AbortOnDrop(tokio::spawn(feed(
            queue.clone(),
            changes,
            |change: &Change<Namespace>| match change {
                Change::Deleted(_) => Vec::new(),
                Change::Added(ns) | Change::Updated { new: ns, .. } => ns
                    .metadata
                    .deletion_timestamp
                    .as_ref()
                    .and(ns.metadata.name.clone())
                    .into_iter()
                    .collect(),
            },
        )));
        if namespaces.wait_until_ready().await.is_err() {
            return;
        }
        let (this, namespaces) = (&self, &namespaces);
        queue
            .run("namespace", |name: String| async move {
                let Some(ns) = namespaces.get(&ObjectRef::new(&name)) else {
                    return Ok(Next::Wait);
                };
                Ok::<_, Error>(match this.reconcile(&ns).await? {
                    Outcome::Waiting(_) => Next::After(RESYNC),
                    Outcome::Idle | Outcome::Finalized => Next::Wait,
                })
            })
            .await;
    }

    /// Level-based and idempotent: deletes what is left in the namespace, and finalizes it
    /// once nothing is.
    pub async fn reconcile(&self, ns: &Namespace) -> Result<Outcome, Error> {
        let name = ns.metadata.name.clone().unwrap_or_default();
        let fail = |source| Error {
            namespace: name.clone(),
            source,
        };
        let finalizers = ns
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.clone())
            .unwrap_or_default();
        if ns.metadata.deletion_timestamp.is_none() || !finalizers.iter().any(|f| f == FINALIZER) {
            return Ok(Outcome::Idle);
        }
        let mut remaining = 0;
        // Every namespaced resource discovery shows, custom ones included.
        let discovery = kube::discovery::Discovery::new(self.client.clone())
            .run_aggregated()
            .await
            .map_err(fail)?;
        let mut resources: Vec<ApiResource> = Vec::new();
        for group in discovery.groups() {
            for (resource, caps) in group.recommended_resources() {
                if caps.scope == kube::discovery::Scope::Namespaced
                    && caps.supports_operation(kube::discovery::verbs::DELETE_COLLECTION)
                    && caps.supports_operation(kube::discovery::verbs::LIST)
                {
                    resources.push(resource);
                }
            }
        }
        if resources.is_empty() {
            resources = registry::all()
                .types()
                .iter()
                .filter(|t| t.namespaced && t.supports("deletecollection"))
                .map(api_resource)
                .collect();
        }
        for resource in &resources {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), &name, resource);
            let left = api
                .list_metadata(&ListParams::default())
                .await
                .map_err(fail)?;
            if left.items.is_empty() {
                continue;
            }
            remaining += left.items.len();
            api.delete_collection(&DeleteParams::background(), &ListParams::default())
                .await
                .map_err(fail)?;
        }
        if remaining > 0 {
            return Ok(Outcome::Waiting(remaining));
        }
        let mut finalized = ns.clone();
        if let Some(spec) = finalized.spec.as_mut() {
            spec.finalizers = Some(finalizers.into_iter().filter(|f| f != FINALIZER).collect());
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        namespaces
            .replace_subresource("finalize", &name, &PostParams::default(), &finalized)
            .await
            .map_err(fail)?;
        Ok(Outcome::Finalized)
    }
}
