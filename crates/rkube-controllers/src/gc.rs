//! The garbage collector: ownerReferences made real.
//!
//! - An owner being deleted with the `orphan` finalizer lets go of its dependents (their
//!   reference to it is removed), then loses the finalizer and goes.
//! - An owner being deleted with the `foregroundDeletion` finalizer has its dependents deleted
//!   first and goes once none is left.
//! - A dependent whose owners are all gone is deleted (background cascading).
//!
//! Each sweep lists the metadata of every stored resource. Before deleting a dependent for a
//! missing owner, the owner is looked up directly, so an owner created after the snapshot is
//! never mistaken for a missing one.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions,
};
use kube::core::GroupVersionKind;
use rkube_api::registry::{self, ResourceType};
use serde_json::json;

/// How often the collector sweeps.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";

/// What one sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Dependents deleted (their owner went, or is being deleted in the foreground).
    pub deleted: usize,
    /// Dependents released by an orphaning owner.
    pub orphaned: usize,
    /// Owners whose deletion finalizer was removed.
    pub finalized: usize,
}

/// One object seen in a sweep.
struct Seen {
    rt: &'static ResourceType,
    meta: ObjectMeta,
}

impl Seen {
    fn name(&self) -> &str {
        self.meta.name.as_deref().unwrap_or("")
    }

    fn api(&self, client: &kube::Client) -> Api<DynamicObject> {
        api_for(client, self.rt, self.meta.namespace.as_deref())
    }
}

fn api_resource(rt: &ResourceType) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(rt.group, rt.version, rt.kind),
        rt.plural,
    )
}

fn api_for(
    client: &kube::Client,
    rt: &ResourceType,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace.filter(|_| rt.namespaced) {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &api_resource(rt)),
        None => Api::all_with(client.clone(), &api_resource(rt)),
    }
}

/// An emptied list is removed, as upstream's objects omit empty lists.
fn none_if_empty(list: serde_json::Value) -> serde_json::Value {
    if list.as_array().is_some_and(Vec::is_empty) {
        serde_json::Value::Null
    } else {
        list
    }
}

fn is_missing(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 404)
}

/// Collects garbage.
#[derive(Clone)]
pub struct GarbageCollector {
    client: kube::Client,
}

impl GarbageCollector {
    /// A collector acting through `client`.
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        loop {
            if let Err(err) = self.sweep().await {
                tracing::warn!(error = %err, "garbage collector");
            }
            tokio::time::sleep(SWEEP_EVERY).await;
        }
    }

    async fn snapshot(&self) -> Result<Vec<Seen>, kube::Error> {
        let mut seen = Vec::new();
        for rt in registry::all()
            .types()
            .iter()
            .filter(|t| t.supports("list"))
        {
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &api_resource(rt));
            for item in api.list_metadata(&ListParams::default()).await?.items {
                seen.push(Seen {
                    rt,
                    meta: item.metadata,
                });
            }
        }
        Ok(seen)
    }

    /// One pass over everything; idempotent, so a failed or repeated pass is harmless.
    pub async fn sweep(&self) -> Result<Sweep, kube::Error> {
        let objects = self.snapshot().await?;
        let present: HashSet<&str> = objects
            .iter()
            .filter_map(|o| o.meta.uid.as_deref())
            .collect();
        let mut dependents: HashMap<&str, Vec<&Seen>> = HashMap::new();
        for object in &objects {
            for owner in object.meta.owner_references.iter().flatten() {
                dependents
                    .entry(owner.uid.as_str())
                    .or_default()
                    .push(object);
            }
        }
        let mut sweep = Sweep::default();
        for object in &objects {
            let finalizers = object.meta.finalizers.clone().unwrap_or_default();
            let Some(uid) = object.meta.uid.as_deref() else {
                continue;
            };
            if object.meta.deletion_timestamp.is_none() {
                continue;
            }
            let mine = dependents.get(uid).cloned().unwrap_or_default();
            if finalizers.iter().any(|f| f == ORPHAN) {
                for dependent in &mine {
                    self.release(dependent, uid).await?;
                    sweep.orphaned += 1;
                }
                self.remove_finalizer(object, ORPHAN).await?;
                sweep.finalized += 1;
            } else if finalizers.iter().any(|f| f == FOREGROUND) {
                if mine.is_empty() {
                    self.remove_finalizer(object, FOREGROUND).await?;
                    sweep.finalized += 1;
                }
                for dependent in mine.iter().filter(|d| d.meta.deletion_timestamp.is_none()) {
                    self.delete(dependent).await?;
                    sweep.deleted += 1;
                }
            }
        }
        for object in &objects {
            let owners = object.meta.owner_references.as_deref().unwrap_or_default();
            if owners.is_empty() || object.meta.deletion_timestamp.is_some() {
                continue;
            }
            if owners.iter().any(|o| present.contains(o.uid.as_str())) {
                continue;
            }
            if self.all_owners_gone(object, owners).await? {
                self.delete(object).await?;
                sweep.deleted += 1;
            }
        }
        Ok(sweep)
    }

    /// Checks each owner directly: gone if not found or replaced by an object of another uid.
    async fn all_owners_gone(
        &self,
        object: &Seen,
        owners: &[OwnerReference],
    ) -> Result<bool, kube::Error> {
        for owner in owners {
            let group = owner.api_version.rsplit_once('/').map_or("", |(g, _)| g);
            // An owner of a kind this server does not know cannot be checked: keep the dependent.
            let Some(rt) = registry::all().by_kind(group, &owner.kind) else {
                return Ok(false);
            };
            match api_for(&self.client, rt, object.meta.namespace.as_deref())
                .get_metadata(&owner.name)
                .await
            {
                Ok(found) if found.metadata.uid.as_deref() == Some(owner.uid.as_str()) => {
                    return Ok(false);
                }
                Ok(_) => {}
                Err(err) if is_missing(&err) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(true)
    }

    /// Deletes a dependent (background), only if it is still the object seen.
    async fn delete(&self, object: &Seen) -> Result<(), kube::Error> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: object.meta.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match object
            .api(&self.client)
            .delete(object.name(), &params)
            .await
        {
            Ok(_) => Ok(()),
            Err(err)
                if is_missing(&err) || matches!(&err, kube::Error::Api(s) if s.code == 409) =>
            {
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// Drops the reference to `owner_uid` from a dependent.
    async fn release(&self, dependent: &Seen, owner_uid: &str) -> Result<(), kube::Error> {
        let remaining: Vec<&OwnerReference> = dependent
            .meta
            .owner_references
            .iter()
            .flatten()
            .filter(|o| o.uid != owner_uid)
            .collect();
        let patch = json!({"metadata": {"ownerReferences": none_if_empty(json!(remaining)), "resourceVersion": dependent.meta.resource_version}});
        self.patch_ignoring_races(dependent, &patch).await
    }

    async fn remove_finalizer(&self, object: &Seen, finalizer: &str) -> Result<(), kube::Error> {
        let remaining: Vec<&String> = object
            .meta
            .finalizers
            .iter()
            .flatten()
            .filter(|f| f.as_str() != finalizer)
            .collect();
        let patch = json!({"metadata": {"finalizers": none_if_empty(json!(remaining)), "resourceVersion": object.meta.resource_version}});
        self.patch_ignoring_races(object, &patch).await
    }

    /// A merge patch pinned to the resource version seen: if the object changed meanwhile, the
    /// next sweep sees the change and decides again.
    async fn patch_ignoring_races(
        &self,
        object: &Seen,
        patch: &serde_json::Value,
    ) -> Result<(), kube::Error> {
        match object
            .api(&self.client)
            .patch(object.name(), &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(err)
                if is_missing(&err) || matches!(&err, kube::Error::Api(s) if s.code == 409) =>
            {
                Ok(())
            }
            Err(err) => Err(err),
        }
    }
}
