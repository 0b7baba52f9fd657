//! The StatefulSet controller: pods with stable names (`<set>-<ordinal>`) and stable claims
//! (`<template>-<set>-<ordinal>`), created in order (OrderedReady) or all at once (Parallel),
//! removed highest ordinal first, and updated highest ordinal first down to the partition
//! (RollingUpdate) or when the user deletes them (OnDelete).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::stream;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config, applier, trigger_owners, trigger_self};
use kube::runtime::reflector::Store;
use serde_json::json;

use crate::events::{EventType, Recorder};
use crate::informer::{OwnerIndex, SharedInformers};
use crate::revisions;
use crate::workload_pods::{
    Error, Result, controller_reference, drain, is_available, is_conflict, is_not_found,
    is_running_and_ready, is_terminal, is_terminating, owned_pods,
};

/// The label naming a StatefulSet pod, which a headless Service can select.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label carrying a StatefulSet pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// The label naming the ControllerRevision a pod was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// How the set's pods are managed (`spec.podManagementPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Management {
    /// One pod at a time, each waiting for the previous to be running and ready.
    OrderedReady,
    /// All at once.
    Parallel,
}

/// What the controller knows of the pod at one ordinal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replica {
    /// The revision label on the pod.
    pub revision: String,
    /// Running with Ready true.
    pub ready: bool,
    /// Succeeded or Failed: to be replaced.
    pub terminal: bool,
    /// Being deleted.
    pub terminating: bool,
}

/// One thing to do to the set's pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Create the pod at this ordinal, from the current revision (`true`) or the update one.
    Create(i32, bool),
    /// Delete the pod at this ordinal.
    Delete(i32),
}

/// What the spec asks for, as `next_steps` needs it.
#[derive(Clone, Debug)]
pub struct Desired {
    /// The first ordinal (`spec.ordinals.start`).
    pub start: i32,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `spec.podManagementPolicy`.
    pub management: Management,
    /// The partition of a RollingUpdate strategy; `None` for OnDelete.
    pub partition: Option<i32>,
    /// The revision pods should reach.
    pub update_revision: String,
}

/// What to do next, as upstream's StatefulSet control decides it: replace terminal pods and
/// create missing ones (in order, each waiting for the one before under OrderedReady), then
/// remove pods beyond the replica count highest first, then, once every pod is running and
/// ready, delete the highest-ordinal pod at or above the partition not at the update revision.
pub fn next_steps(desired: &Desired, pods: &BTreeMap<i32, Replica>) -> Vec<Step> {
    let ordered = desired.management == Management::OrderedReady;
    let end = desired.start.saturating_add(desired.replicas.max(0));
    let mut steps = Vec::new();
    let mut all_ready = true;
    for ordinal in desired.start..end {
        let use_current = desired
            .partition
            .is_some_and(|p| ordinal - desired.start < p);
        match pods.get(&ordinal) {
            None => {
                steps.push(Step::Create(ordinal, use_current));
                all_ready = false;
                if ordered {
                    return steps;
                }
            }
            Some(pod) if pod.terminal && !pod.terminating => {
                steps.push(Step::Delete(ordinal));
                all_ready = false;
                if ordered {
                    return steps;
                }
            }
            Some(pod) if !pod.ready || pod.terminating => {
                all_ready = false;
                if ordered {
                    return steps;
                }
            }
            Some(_) => {}
        }
    }
    let condemned: Vec<(&i32, &Replica)> = pods
        .iter()
        .rev()
        .filter(|(o, _)| **o < desired.start || **o >= end)
        .collect();
    if !condemned.is_empty() {
        if ordered {
            if !all_ready || condemned.iter().any(|(_, p)| p.terminating) {
                return steps;
            }
            steps.push(Step::Delete(*condemned[0].0));
            return steps;
        }
        steps.extend(
            condemned
                .iter()
                .filter(|(_, p)| !p.terminating)
                .map(|(o, _)| Step::Delete(**o)),
        );
        return steps;
    }
    let Some(partition) = desired.partition else {
        return steps;
    };
    if !all_ready || !steps.is_empty() {
        return steps;
    }
    let stale = (desired.start..end)
        .rev()
        .filter(|o| o - desired.start >= partition)
        .find(|o| {
            pods.get(o)
                .is_some_and(|p| p.revision != desired.update_revision)
        });
    if let Some(ordinal) = stale {
        steps.push(Step::Delete(ordinal));
    }
    steps
}

/// The ordinal in a pod name `<set>-<ordinal>`.
fn ordinal_of(set: &str, pod: &str) -> Option<i32> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

/// Runs the StatefulSet controller.
#[derive(Clone)]
pub struct StatefulSetController {
    client: kube::Client,
    informers: SharedInformers,
    recorder: Recorder,
}

struct Shared {
    controller: StatefulSetController,
    pods: Store<Pod>,
    pod_index: OwnerIndex<Pod>,
}

impl StatefulSetController {
    /// A controller acting through `client`.
    pub fn new(client: impl Into<SharedInformers>) -> Self {
        let informers: SharedInformers = client.into();
        Self {
            recorder: Recorder::new(informers.client().clone(), "statefulset-controller"),
            client: informers.client().clone(),
            informers,
        }
    }

    /// Watches StatefulSets and their pods until dropped.
    pub async fn run(self) {
        let (sets, set_events) = self.informers.touched::<StatefulSet>().await;
        let (pods, pod_events) = self.informers.touched::<Pod>().await;
        let queue = stream::select(
            trigger_self(set_events, ()),
            trigger_owners(pod_events, (), ()),
        );
        let shared = Arc::new(Shared {
            pod_index: self.informers.owner_index::<Pod>().await,
            controller: self,
            pods,
        });
        let results = applier(
            |set: Arc<StatefulSet>, shared: Arc<Shared>| {
                Box::pin(async move {
                    shared
                        .controller
                        .reconcile(&set, &shared.pods, &shared.pod_index)
                        .await
                })
            },
            |_, _, _| Action::requeue(Duration::from_secs(1)),
            shared,
            sets,
            queue,
            Config::default(),
        );
        drain("statefulset", results).await;
    }

    /// Brings one set's pods, claims and status a step closer to its spec.
    async fn reconcile(
        &self,
        set: &StatefulSet,
        cache: &Store<Pod>,
        index: &OwnerIndex<Pod>,
    ) -> Result<Action> {
        cache
            .wait_until_ready()
            .await
            .map_err(|_| Error::CacheGone)?;
        if set.metadata.deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        let Some(spec) = set.spec.as_ref() else {
            return Ok(Action::await_change());
        };
        let name = set.name_any();
        let pods = owned_pods(index, set);
        let in_use: HashSet<String> = pods
            .iter()
            .filter_map(|p| p.labels().get(REVISION_LABEL).cloned())
            .collect();
        let status = set.status.clone().unwrap_or_default();
        let history = revisions::sync(
            &self.client,
            set,
            &spec.template,
            status.collision_count.unwrap_or(0),
            status.current_revision.as_deref(),
            spec.revision_history_limit.unwrap_or(10),
            &in_use,
        )
        .await?;
        let update_revision = history.update.name_any();
        let current_revision = history.current.name_any();
        let mut by_ordinal: BTreeMap<i32, Replica> = BTreeMap::new();
        let mut pod_by_ordinal: BTreeMap<i32, Arc<Pod>> = BTreeMap::new();
        for pod in &pods {
            let Some(ordinal) = ordinal_of(&name, &pod.name_any()) else {
                continue;
            };
            by_ordinal.insert(
                ordinal,
                Replica {
                    revision: pod
                        .labels()
                        .get(REVISION_LABEL)
                        .cloned()
                        .unwrap_or_default(),
                    ready: is_running_and_ready(pod),
                    terminal: is_terminal(pod),
                    terminating: is_terminating(pod),
                },
            );
            pod_by_ordinal.insert(ordinal, pod.clone());
        }
        let strategy = spec.update_strategy.clone().unwrap_or_default();
        let partition = match strategy.type_.as_deref() {
            Some("OnDelete") => None,
            _ => Some(
                strategy
                    .rolling_update
                    .and_then(|r| r.partition)
                    .unwrap_or(0),
            ),
        };
        let desired = Desired {
            start: spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0),
            replicas: spec.replicas.unwrap_or(1),
            management: match spec.pod_management_policy.as_deref() {
                Some("Parallel") => Management::Parallel,
                _ => Management::OrderedReady,
            },
            partition,
            update_revision: update_revision.clone(),
        };
        for step in next_steps(&desired, &by_ordinal) {
            match step {
                Step::Create(ordinal, use_current) => {
                    let (revision, template) = if use_current {
                        (&history.current, revision_template(&history.current)?)
                    } else {
                        (&history.update, spec.template.clone())
                    };
                    self.create_pod(set, ordinal, &revision.name_any(), &template)
                        .await?;
                }
                Step::Delete(ordinal) => {
                    if let Some(pod) = pod_by_ordinal.get(&ordinal) {
                        let condemned = ordinal < desired.start
                            || ordinal >= desired.start.saturating_add(desired.replicas);
                        if condemned {
                            self.release_claims_on_scale_down(set, ordinal, pod).await?;
                        }
                        self.delete_pod(set, pod).await?;
                    }
                }
            }
        }
        self.write_status(
            set,
            &pods,
            &desired,
            &current_revision,
            &update_revision,
            partition.is_some(),
        )
        .await
    }

    async fn create_pod(
        &self,
        set: &StatefulSet,
        ordinal: i32,
        revision: &str,
        template: &PodTemplateSpec,
    ) -> Result<()> {
        let name = set.name_any();
        let namespace = set.namespace().unwrap_or_default();
        let spec = set.spec.clone().unwrap_or_default();
        let pod_name = format!("{name}-{ordinal}");
        let mut pod = crate::workload_pods::pod_from_template(
            template,
            &namespace,
            controller_reference(set),
        );
        pod.metadata.name = Some(pod_name.clone());
        let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
        labels.insert(POD_NAME_LABEL.to_owned(), pod_name.clone());
        labels.insert(POD_INDEX_LABEL.to_owned(), ordinal.to_string());
        labels.insert(REVISION_LABEL.to_owned(), revision.to_owned());
        let pod_spec = pod.spec.get_or_insert_with(Default::default);
        pod_spec.hostname = Some(pod_name.clone());
        if !spec.service_name.as_deref().unwrap_or("").is_empty() {
            pod_spec.subdomain = spec.service_name.clone();
        }
        for claim in spec.volume_claim_templates.iter().flatten() {
            let template_name = claim.name_any();
            let claim_name = format!("{template_name}-{name}-{ordinal}");
            self.ensure_claim(set, claim, &claim_name, &pod_name)
                .await?;
            let volumes = pod_spec.volumes.get_or_insert_with(Vec::new);
            volumes.retain(|v| v.name != template_name);
            volumes.push(Volume {
                name: template_name,
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name,
                    read_only: None,
                }),
                ..Volume::default()
            });
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        match api.create(&PostParams::default(), &pod).await {
            Ok(_) => {
                self.recorder
                    .publish(
                        set,
                        EventType::Normal,
                        "SuccessfulCreate",
                        &format!("create Pod {pod_name} in StatefulSet {name} successful"),
                    )
                    .await;
                Ok(())
            }
            Err(err) if is_conflict(&err) => Ok(()),
            Err(err) => {
                self.recorder
                    .publish(
                        set,
                        EventType::Warning,
                        "FailedCreate",
                        &format!("create Pod {pod_name} in StatefulSet {name} failed error: {err}"),
                    )
                    .await;
                Err(err.into())
            }
        }
    }

    /// Creates a pod's claim from its template if it is missing, owned as the retention
    /// policy says: by the set when claims go with it (`whenDeleted: Delete`).
    async fn ensure_claim(
        &self,
        set: &StatefulSet,
        template: &PersistentVolumeClaim,
        claim_name: &str,
        pod_name: &str,
    ) -> Result<()> {
        let namespace = set.namespace().unwrap_or_default();
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &namespace);
        match api.get(claim_name).await {
            Ok(_) => return Ok(()),
            Err(err) if is_not_found(&err) => {}
            Err(err) => return Err(err.into()),
        }
        let spec = set.spec.clone().unwrap_or_default();
        let mut claim = template.clone();
        claim.status = None;
        claim.metadata.name = Some(claim_name.to_owned());
        claim.metadata.namespace = Some(namespace.clone());
        claim.metadata.resource_version = None;
        claim.metadata.uid = None;
        let labels = claim.metadata.labels.get_or_insert_with(BTreeMap::new);
        for (k, v) in spec.selector.match_labels.iter().flatten() {
            labels.insert(k.clone(), v.clone());
        }
        let when_deleted = spec
            .persistent_volume_claim_retention_policy
            .as_ref()
            .and_then(|p| p.when_deleted.as_deref())
            .unwrap_or("Retain");
        if when_deleted == "Delete" {
            let mut owner = controller_reference(set);
            owner.controller = Some(false);
            claim.metadata.owner_references = Some(vec![owner]);
        }
        match api.create(&PostParams::default(), &claim).await {
            Ok(_) => {
                let name = set.name_any();
                self.recorder
                    .publish(
                        set,
                        EventType::Normal,
                        "SuccessfulCreate",
                        &format!(
                            "create Claim {claim_name} Pod {pod_name} in StatefulSet {name} success"
                        ),
                    )
                    .await;
                Ok(())
            }
            Err(err) if is_conflict(&err) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Before a pod is removed by a scale down, its claims get the pod as an owner when the
    /// policy is `whenScaled: Delete`, so that the garbage collector removes them after it.
    async fn release_claims_on_scale_down(
        &self,
        set: &StatefulSet,
        ordinal: i32,
        pod: &Pod,
    ) -> Result<()> {
        let spec = set.spec.clone().unwrap_or_default();
        let when_scaled = spec
            .persistent_volume_claim_retention_policy
            .as_ref()
            .and_then(|p| p.when_scaled.as_deref())
            .unwrap_or("Retain");
        if when_scaled != "Delete" {
            return Ok(());
        }
        let namespace = set.namespace().unwrap_or_default();
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &namespace);
        let name = set.name_any();
        for template in spec.volume_claim_templates.iter().flatten() {
            let claim_name = format!("{}-{name}-{ordinal}", template.name_any());
            let claim = match api.get(&claim_name).await {
                Ok(claim) => claim,
                Err(err) if is_not_found(&err) => continue,
                Err(err) => return Err(err.into()),
            };
            let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
            let mut owners = claim.metadata.owner_references.clone().unwrap_or_default();
            if owners.iter().any(|o| o.uid == pod_uid) {
                continue;
            }
            owners.push(OwnerReference {
                api_version: "v1".to_owned(),
                kind: "Pod".to_owned(),
                name: pod.name_any(),
                uid: pod_uid,
                controller: Some(false),
                block_owner_deletion: Some(true),
            });
            // The set's own reference must go too, or the claim would outlive the pod.
            let set_uid = set.metadata.uid.clone().unwrap_or_default();
            owners.retain(|o| o.uid != set_uid);
            let patch = json!({"metadata": {"ownerReferences": owners}});
            api.patch(&claim_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        Ok(())
    }

    async fn delete_pod(&self, set: &StatefulSet, pod: &Pod) -> Result<()> {
        if crate::workload_pods::delete_exact(&self.client, pod).await? {
            self.recorder
                .publish(
                    set,
                    EventType::Normal,
                    "SuccessfulDelete",
                    &format!(
                        "delete Pod {} in StatefulSet {} successful",
                        pod.name_any(),
                        set.name_any()
                    ),
                )
                .await;
        }
        Ok(())
    }

    async fn write_status(
        &self,
        set: &StatefulSet,
        pods: &[Arc<Pod>],
        desired: &Desired,
        current_revision: &str,
        update_revision: &str,
        rolling: bool,
    ) -> Result<Action> {
        let now = Timestamp::now();
        let min_ready = set
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        let live: Vec<&Arc<Pod>> = pods.iter().filter(|p| !is_terminating(p)).collect();
        let count = |f: &dyn Fn(&Pod) -> bool| {
            i32::try_from(live.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
        };
        let replicas = count(&|_| true);
        let ready = count(&is_running_and_ready);
        let available = count(&|p| is_running_and_ready(p) && is_available(p, min_ready, now));
        let revision_of = |p: &Pod| p.labels().get(REVISION_LABEL).cloned().unwrap_or_default();
        let mut current = current_revision.to_owned();
        let mut current_replicas = count(&|p| revision_of(p) == current);
        let updated = count(&|p| revision_of(p) == update_revision);
        // A finished rolling update makes the update revision the current one.
        if rolling && updated == replicas && ready == replicas && replicas == desired.replicas {
            current = update_revision.to_owned();
            current_replicas = updated;
        }
        let old = set.status.clone().unwrap_or_default();
        let status = StatefulSetStatus {
            observed_generation: set.metadata.generation,
            replicas,
            ready_replicas: Some(ready),
            available_replicas: Some(available),
            current_replicas: Some(current_replicas),
            updated_replicas: Some(updated),
            current_revision: Some(current),
            update_revision: Some(update_revision.to_owned()),
            collision_count: old.collision_count,
            conditions: old.conditions.clone(),
        };
        if status != old {
            let api: Api<StatefulSet> =
                Api::namespaced(self.client.clone(), &set.namespace().unwrap_or_default());
            api.patch_status(
                &set.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await?;
        }
        if min_ready > 0 && available < ready {
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
        Ok(Action::await_change())
    }
}

/// The template a revision restores.
fn revision_template(revision: &ControllerRevision) -> Result<PodTemplateSpec> {
    let mut template = revision
        .data
        .as_ref()
        .map(|d| d.0["spec"]["template"].clone())
        .unwrap_or_default();
    if let Some(map) = template.as_object_mut() {
        map.remove("$patch");
    }
    Ok(serde_json::from_value(template)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(revision: &str) -> Replica {
        Replica {
            revision: revision.to_owned(),
            ready: true,
            ..Replica::default()
        }
    }

    fn desired(replicas: i32, management: Management, partition: Option<i32>) -> Desired {
        Desired {
            start: 0,
            replicas,
            management,
            partition,
            update_revision: "new".to_owned(),
        }
    }

    #[test]
    fn ordered_ready_creates_one_pod_at_a_time_waiting_for_readiness() {
        let d = desired(3, Management::OrderedReady, Some(0));
        let mut pods = BTreeMap::new();
        assert_eq!(next_steps(&d, &pods), vec![Step::Create(0, false)]);
        pods.insert(0, Replica::default());
        assert_eq!(next_steps(&d, &pods), vec![], "web-0 is not ready yet");
        pods.insert(0, ready("new"));
        assert_eq!(next_steps(&d, &pods), vec![Step::Create(1, false)]);
    }

    #[test]
    fn parallel_creates_every_missing_pod_at_once() {
        let d = desired(3, Management::Parallel, Some(0));
        let pods = BTreeMap::from([(1, Replica::default())]);
        assert_eq!(
            next_steps(&d, &pods),
            vec![Step::Create(0, false), Step::Create(2, false)]
        );
    }

    #[test]
    fn scale_down_removes_the_highest_ordinal_first() {
        let d = desired(1, Management::OrderedReady, Some(0));
        let pods = BTreeMap::from([(0, ready("new")), (1, ready("new")), (2, ready("new"))]);
        assert_eq!(next_steps(&d, &pods), vec![Step::Delete(2)]);
        let parallel = desired(1, Management::Parallel, Some(0));
        assert_eq!(
            next_steps(&parallel, &pods),
            vec![Step::Delete(2), Step::Delete(1)]
        );
    }

    #[test]
    fn rolling_update_goes_from_the_highest_ordinal_down_to_the_partition() {
        let d = desired(3, Management::OrderedReady, Some(1));
        let mut pods = BTreeMap::from([(0, ready("old")), (1, ready("old")), (2, ready("old"))]);
        assert_eq!(next_steps(&d, &pods), vec![Step::Delete(2)]);
        pods.insert(2, ready("new"));
        assert_eq!(next_steps(&d, &pods), vec![Step::Delete(1)]);
        pods.insert(1, ready("new"));
        assert_eq!(
            next_steps(&d, &pods),
            vec![],
            "ordinal 0 is below the partition"
        );
        // A pod being replaced holds the update back.
        pods.insert(2, Replica::default());
        pods.insert(1, ready("old"));
        assert_eq!(next_steps(&d, &pods), vec![]);
    }

    #[test]
    fn on_delete_never_deletes_for_an_update_and_recreates_from_the_update_revision() {
        let d = desired(2, Management::OrderedReady, None);
        let pods = BTreeMap::from([(0, ready("old"))]);
        assert_eq!(next_steps(&d, &pods), vec![Step::Create(1, false)]);
        let pods = BTreeMap::from([(0, ready("old")), (1, ready("old"))]);
        assert_eq!(next_steps(&d, &pods), vec![]);
    }

    #[test]
    fn pods_below_the_partition_are_recreated_at_the_current_revision() {
        let d = desired(3, Management::Parallel, Some(2));
        assert_eq!(
            next_steps(&d, &BTreeMap::new()),
            vec![
                Step::Create(0, true),
                Step::Create(1, true),
                Step::Create(2, false)
            ]
        );
    }

    #[test]
    fn a_failed_pod_is_deleted_to_be_recreated() {
        let d = desired(2, Management::OrderedReady, Some(0));
        let failed = Replica {
            terminal: true,
            ..ready("new")
        };
        let pods = BTreeMap::from([(0, failed), (1, ready("new"))]);
        assert_eq!(next_steps(&d, &pods), vec![Step::Delete(0)]);
    }

    #[test]
    fn ordinals_come_from_pod_names() {
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "webx-1"), None);
        assert_eq!(ordinal_of("web", "web-a"), None);
    }
}
