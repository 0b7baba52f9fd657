//! The ReplicaSet and ReplicationController controller (one implementation for both kinds, as
//! upstream's): keeps `spec.replicas` active pods matching the selector, adopting matching
//! orphans and releasing pods that stopped matching; creates in slow-start batches and
//! deletes the least valuable pods first; waits on [`Expectations`] so a lagging cache never
//! causes a second round of creates; and reports status (replicas, fullyLabeledReplicas,
//! readyReplicas, availableReplicas, observedGeneration, the ReplicaFailure condition).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use rkube_api::selector::LabelSelector;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::controller_ref::{self, controlled_by_kind, controller_of};
use crate::events::{EventType, Recorder};
use crate::expectations::Expectations;
use crate::informer::{self, Change, Key, Next, WorkQueue};
use crate::informer::{OwnerIndex, SharedInformers};
use crate::podutil;

/// At most this many pods are created or deleted in one sync (upstream's burstReplicas).
pub const BURST_REPLICAS: usize = 500;

/// Parallel reconciles (upstream's `--concurrent-replicaset-syncs`).
const WORKERS: usize = 5;

/// A kind whose objects keep a number of pod replicas: ReplicaSet or ReplicationController.
pub trait ReplicaOwner:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + Serialize
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The component name on Events.
    const COMPONENT: &'static str;
    /// Desired replicas (`spec.replicas`, default 1).
    fn replicas(&self) -> i32;
    /// `spec.minReadySeconds`.
    fn min_ready_seconds(&self) -> i32;
    /// The pod selector; `None` when it is missing or invalid (such an object is left alone).
    fn selector(&self) -> Option<LabelSelector>;
    /// The pod template.
    fn template(&self) -> Option<&PodTemplateSpec>;
    /// The current status, in the shape both kinds share.
    fn replica_status(&self) -> ReplicaStatus;
}

/// Status of a ReplicaSet or ReplicationController (the JSON shapes are the same).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    /// Active pods claimed.
    pub replicas: i32,
    /// Of them, those whose labels match the template's labels.
    pub fully_labeled_replicas: i32,
    /// Of them, those Ready.
    pub ready_replicas: i32,
    /// Of them, those ready for minReadySeconds.
    pub available_replicas: i32,
    /// The generation this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// ReplicaFailure, when pods could not be created or deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ReplicaCondition>,
}

/// A status condition of a ReplicaSet or ReplicationController.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaCondition {
    /// The condition type, e.g. ReplicaFailure.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// When the status last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<metav1::Time>,
    /// A machine-readable reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A human-readable message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

fn status_of<S: Serialize>(status: Option<&S>) -> ReplicaStatus {
    status
        .and_then(|s| serde_json::to_value(s).ok())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

impl ReplicaOwner for ReplicaSet {
    const COMPONENT: &'static str = "replicaset-controller";
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }
    fn selector(&self) -> Option<LabelSelector> {
        let selector = LabelSelector::from_api(&self.spec.as_ref()?.selector).ok()?;
        // An empty selector would match every pod; upstream treats it as matching nothing.
        (!selector.is_empty()).then_some(selector)
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }
    fn replica_status(&self) -> ReplicaStatus {
        status_of(self.status.as_ref())
    }
}

impl ReplicaOwner for ReplicationController {
    const COMPONENT: &'static str = "replication-controller";
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }
    fn selector(&self) -> Option<LabelSelector> {
        let labels = self
            .spec
            .as_ref()?
            .selector
            .clone()
            .filter(|s| !s.is_empty())?;
        LabelSelector::from_api(&metav1::LabelSelector {
            match_labels: Some(labels),
            match_expressions: None,
        })
        .ok()
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }
    fn replica_status(&self) -> ReplicaStatus {
        status_of(self.status.as_ref())
    }
}

/// The status `owner` should have given the active pods it controls, at `now`.
pub fn compute_status<K: ReplicaOwner>(
    owner: &K,
    pods: &[Arc<Pod>],
    failure: Option<(&str, String)>,
    now: Timestamp,
) -> ReplicaStatus {
    let template_labels = owner
        .template()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = owner.min_ready_seconds();
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(pods.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    let previous = owner.replica_status();
    let mut conditions: Vec<_> = previous
        .conditions
        .iter()
        .filter(|c| c.type_ != "ReplicaFailure")
        .cloned()
        .collect();
    if let Some((reason, message)) = failure {
        let old = previous
            .conditions
            .iter()
            .find(|c| c.type_ == "ReplicaFailure");
        conditions.push(ReplicaCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            last_transition_time: old
                .and_then(|c| c.last_transition_time.clone())
                .or(Some(metav1::Time(now))),
            reason: Some(reason.into()),
            message: Some(message),
        });
    }
    ReplicaStatus {
        replicas: count(&|_| true),
        fully_labeled_replicas: count(&|p| {
            let labels = p.metadata.labels.as_ref();
            template_labels
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        }),
        ready_replicas: count(&podutil::is_ready),
        available_replicas: count(&|p| podutil::is_available(p, min_ready, now)),
        observed_generation: owner.meta().generation,
        conditions,
    }
}

/// Which of `pods` to delete to shed `count`: the least valuable first.
pub fn pods_to_delete(pods: &[Arc<Pod>], count: usize) -> Vec<Arc<Pod>> {
    let mut sorted = pods.to_vec();
    sorted.sort_by(|a, b| podutil::deletion_order(a, b));
    sorted.truncate(count);
    sorted
}

/// Batch sizes for creating `count` pods: 1, 2, 4, … (upstream's slow start), so a template
/// that cannot be created fails once rather than `count` times.
pub fn slow_start_batches(count: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let (mut left, mut size) = (count, 1usize);
    while left > 0 {
        let batch = size.min(left);
        batches.push(batch);
        left -= batch;
        size = size.saturating_mul(2);
    }
    batches
}

/// A pod for `owner` from its template, named `<owner>-<random>` by the server.
pub fn pod_from_template<K: ReplicaOwner>(owner: &K) -> Option<Pod> {
    let template = owner.template()?;
    let meta = template.metadata.clone().unwrap_or_default();
    let mut pod = Pod {
        spec: template.spec.clone(),
        ..Pod::default()
    };
    pod.metadata.generate_name = Some(format!("{}-", owner.name_any()));
    pod.metadata.namespace = owner.namespace();
    pod.metadata.labels = meta.labels;
    pod.metadata.annotations = meta.annotations;
    pod.metadata.finalizers = meta.finalizers;
    pod.metadata.owner_references = Some(vec![controller_ref::controller_reference(owner)]);
    Some(pod)
}

/// What an API error says (the Status message), for events and conditions.
fn api_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Talking to the API failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
    /// Adoption or release failed.
    #[error("{0}")]
    Claim(#[from] controller_ref::Error),
}

/// The controller for kind `K`.
pub struct ReplicaController<K: ReplicaOwner> {
    client: kube::Client,
    owners: Store<K>,
    pods: OwnerIndex<Pod>,
    expectations: Expectations,
    recorder: Recorder,
}

impl<K: ReplicaOwner> Clone for ReplicaController<K> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            owners: self.owners.clone(),
            pods: self.pods.clone(),
            expectations: self.expectations.clone(),
            recorder: self.recorder.clone(),
        }
    }
}

/// The ReplicaSet controller.
pub type ReplicaSetController = ReplicaController<ReplicaSet>;
/// The ReplicationController controller.
pub type ReplicationControllerController = ReplicaController<ReplicationController>;

fn owner_keys_for_pod<K: ReplicaOwner>(owners: &Store<K>, pod: &Pod) -> Vec<Key> {
    let namespace = pod.namespace().unwrap_or_default();
    if let Some(name) = controlled_by_kind::<K>(&pod.metadata) {
        return vec![Key {
            namespace,
            name: name.to_owned(),
        }];
    }
    if controller_of(&pod.metadata).is_some() || pod.metadata.deletion_timestamp.is_some() {
        return Vec::new();
    }
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    informer::in_namespace(owners, &namespace)
        .iter()
        .filter(|o| o.selector().is_some_and(|s| s.matches(&labels)))
        .map(|o| Key::of(o.as_ref()))
        .collect()
}

impl<K: ReplicaOwner> ReplicaController<K> {
    /// Runs the controller through `client` until dropped.
    pub async fn run(client: impl Into<SharedInformers>) {
        let informers: SharedInformers = client.into();
        let client = informers.client().clone();
        let (owners, owner_changes) = informers.informer::<K>().await;
        let (_, pod_changes) = informers.informer::<Pod>().await;
        let controller = Self {
            owners,
            pods: informers.owner_index::<Pod>().await,
            expectations: Expectations::default(),
            recorder: Recorder::new(client.clone(), K::COMPONENT),
            client,
        };
        let queue = WorkQueue::default();
        let owners_task = {
            let (queue, expectations) = (queue.clone(), controller.expectations.clone());
            owner_changes.for_each(move |change| {
                if change.is_deleted() {
                    expectations.forget(&Key::of(change.object()));
                }
                queue.add(Key::of(change.object()));
                std::future::ready(())
            })
        };
        let pods_task = {
            let (queue, expectations, owners) = (
                queue.clone(),
                controller.expectations.clone(),
                controller.owners.clone(),
            );
            pod_changes.for_each(move |change| {
                match change {
                    Change::Added(pod) => {
                        let keys = owner_keys_for_pod(&owners, &pod);
                        if pod.metadata.deletion_timestamp.is_none()
                            && controlled_by_kind::<K>(&pod.metadata).is_some()
                        {
                            for key in &keys {
                                expectations.creation_observed(key);
                            }
                        }
                        keys.into_iter().for_each(|k| queue.add(k));
                    }
                    Change::Updated { old, new } => {
                        let mut keys = owner_keys_for_pod(&owners, &new);
                        if old.metadata.labels != new.metadata.labels
                            || controller_of(&old.metadata) != controller_of(&new.metadata)
                        {
                            keys.extend(owner_keys_for_pod(&owners, &old));
                        }
                        if new.metadata.deletion_timestamp.is_some()
                            && old.metadata.deletion_timestamp.is_none()
                        {
                            // A graceful deletion counts as observed when it starts, as upstream.
                            for key in &keys {
                                expectations.deletion_observed(
                                    key,
                                    new.metadata.uid.as_deref().unwrap_or(""),
                                );
                            }
                        }
                        keys.sort();
                        keys.dedup();
                        keys.into_iter().for_each(|k| queue.add(k));
                    }
                    Change::Deleted(pod) => {
                        for key in owner_keys_for_pod(&owners, &pod) {
                            expectations
                                .deletion_observed(&key, pod.metadata.uid.as_deref().unwrap_or(""));
                            queue.add(key);
                        }
                    }
                }
                std::future::ready(())
            })
        };
        let workers = {
            let controller = controller.clone();
            async move {
                let _ = controller.owners.wait_until_ready().await;
                informer::run_workers(queue, K::COMPONENT, WORKERS, move |key: Key| {
                    let controller = controller.clone();
                    async move {
                        let again = controller.reconcile(&key).await?;
                        Ok::<_, Error>(again.map_or(Next::Wait, Next::After))
                    }
                })
                .await
            }
        };
        tokio::join!(owners_task, pods_task, workers);
    }

    /// Brings the object at `key` one step closer to its declared replicas and writes its
    /// status. Returns when to look again (pods becoming available after minReadySeconds).
    pub async fn reconcile(&self, key: &Key) -> Result<Option<Duration>, Error> {
        let Some(owner) = self.owners.get(&key.object_ref()) else {
            self.expectations.forget(key);
            return Ok(None);
        };
        let Some(selector) = owner.selector() else {
            return Ok(None);
        };
        let satisfied = self.expectations.satisfied(key);
        let pods_api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        let uid = owner.meta().uid.as_deref().unwrap_or_default();
        let candidates: Vec<_> = self
            .pods
            .claimable(&key.namespace, uid)
            .into_iter()
            .filter(|p| podutil::is_active(p))
            .collect();
        let pods = controller_ref::claim(
            &pods_api,
            owner.as_ref(),
            |p: &Pod| selector.matches(p.metadata.labels.as_ref().unwrap_or(&BTreeMap::new())),
            candidates,
        )
        .await?;
        let failure = if satisfied && owner.meta().deletion_timestamp.is_none() {
            self.manage_replicas(key, owner.as_ref(), &pods, &pods_api)
                .await
                .err()
        } else {
            None
        };
        let now = Timestamp::now();
        let failure_condition = failure
            .as_ref()
            .map(|(reason, err)| (*reason, api_message(err)));
        let status = compute_status(owner.as_ref(), &pods, failure_condition, now);
        let previous = owner.replica_status();
        if status != previous {
            let api: Api<K> = Api::namespaced(self.client.clone(), &key.namespace);
            let mut patch = serde_json::json!({ "status": status });
            // An empty list is left out of the status; a merge patch must say the stored
            // conditions (a ReplicaFailure that no longer holds) go.
            if status.conditions.is_empty() && !previous.conditions.is_empty() {
                patch["status"]["conditions"] = serde_json::Value::Null;
            }
            match api
                .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
                Err(err) => return Err(err.into()),
            }
        }
        if let Some((_, err)) = failure {
            return Err(err.into());
        }
        let replicas = owner.replicas();
        if owner.min_ready_seconds() > 0
            && status.ready_replicas == replicas
            && status.available_replicas != replicas
        {
            let wait = pods
                .iter()
                .filter_map(|p| podutil::until_available(p, owner.min_ready_seconds(), now))
                .min()
                .unwrap_or(Duration::from_secs(
                    u64::try_from(owner.min_ready_seconds()).unwrap_or(1),
                ));
            return Ok(Some(wait + Duration::from_millis(100)));
        }
        Ok(None)
    }

    /// Creates or deletes pods so that `pods` reaches the declared count.
    async fn manage_replicas(
        &self,
        key: &Key,
        owner: &K,
        pods: &[Arc<Pod>],
        pods_api: &Api<Pod>,
    ) -> Result<(), (&'static str, kube::Error)> {
        let want = usize::try_from(owner.replicas()).unwrap_or(0);
        if pods.len() < want {
            let count = (want - pods.len()).min(BURST_REPLICAS);
            let Some(pod) = pod_from_template(owner) else {
                return Ok(());
            };
            self.expectations.expect_creations(key, count);
            let mut created = 0;
            let mut error = None;
            for batch in slow_start_batches(count) {
                let results = futures::future::join_all((0..batch).map(|_| {
                    let pod = pod.clone();
                    async move { pods_api.create(&PostParams::default(), &pod).await }
                }))
                .await;
                for result in results {
                    match result {
                        Ok(pod) => {
                            created += 1;
                            self.recorder
                                .publish(
                                    owner,
                                    EventType::Normal,
                                    "SuccessfulCreate",
                                    &format!("Created pod: {}", pod.name_any()),
                                )
                                .await;
                        }
                        Err(err) => {
                            self.expectations.creation_observed(key);
                            if error.is_none() {
                                self.recorder
                                    .publish(
                                        owner,
                                        EventType::Warning,
                                        "FailedCreate",
                                        &format!("Error creating: {}", api_message(&err)),
                                    )
                                    .await;
                                error = Some(err);
                            }
                        }
                    }
                }
                if error.is_some() {
                    break;
                }
            }
            // Creations never attempted will never be observed.
            let attempted = created + usize::from(error.is_some());
            for _ in attempted..count {
                self.expectations.creation_observed(key);
            }
            if let Some(err) = error {
                return Err(("FailedCreate", err));
            }
        } else if pods.len() > want {
            let count = (pods.len() - want).min(BURST_REPLICAS);
            let victims = pods_to_delete(pods, count);
            self.expectations.expect_deletions(
                key,
                victims
                    .iter()
                    .map(|p| p.metadata.uid.clone().unwrap_or_default()),
            );
            let results = futures::future::join_all(victims.iter().map(|p| async move {
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: p.metadata.uid.clone(),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                (p, pods_api.delete(&p.name_any(), &params).await)
            }))
            .await;
            let mut error = None;
            for (pod, result) in results {
                match result {
                    Ok(_) => {
                        self.recorder
                            .publish(
                                owner,
                                EventType::Normal,
                                "SuccessfulDelete",
                                &format!("Deleted pod: {}", pod.name_any()),
                            )
                            .await;
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        self.expectations
                            .deletion_observed(key, pod.metadata.uid.as_deref().unwrap_or(""));
                    }
                    Err(err) => {
                        self.expectations
                            .deletion_observed(key, pod.metadata.uid.as_deref().unwrap_or(""));
                        if error.is_none() {
                            self.recorder
                                .publish(
                                    owner,
                                    EventType::Warning,
                                    "FailedDelete",
                                    &format!("Error deleting: {}", api_message(&err)),
                                )
                                .await;
                            error = Some(err);
                        }
                    }
                }
            }
            if let Some(err) = error {
                return Err(("FailedDelete", err));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_go_in_doubling_batches() {
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), [1]);
        assert_eq!(slow_start_batches(10), [1, 2, 4, 3]);
        assert_eq!(slow_start_batches(500).iter().sum::<usize>(), 500);
        assert_eq!(slow_start_batches(500).len(), 9);
    }
}
