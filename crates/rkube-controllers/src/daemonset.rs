//! The DaemonSet controller: one pod on every eligible node, pinned there with required node
//! affinity on the node's name (the scheduler binds it), replaced on template changes within
//! maxUnavailable / maxSurge (RollingUpdate) or when deleted (OnDelete).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::stream;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{
    Action, Config, applier, trigger_owners, trigger_self, trigger_with,
};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;

use crate::daemon_nodes::{
    DaemonPod, DaemonStep, NodeDaemons, Rollout, add_default_tolerations, daemon_steps,
    eligibility, scaled,
};
use crate::events::{EventType, Recorder};
use crate::informer::{OwnerIndex, SharedInformers};
use crate::revisions;
use crate::workload_pods::{
    Error, Expectations, Result, controller_reference, drain, is_available, is_running_and_ready,
    is_terminating, owned_pods, phase, pod_from_template,
};

/// The label with the hash of the template a daemon pod was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// The label with the DaemonSet generation a pod was made at (kept for older clients).
pub const GENERATION_LABEL: &str = "pod-template-generation";

/// Runs the DaemonSet controller.
#[derive(Clone)]
pub struct DaemonSetController {
    client: kube::Client,
    informers: SharedInformers,
    recorder: Recorder,
    expectations: Expectations,
    failed_backoff: FailedBackoff,
}

/// The first and the longest delay before a failed daemon pod is replaced on its node.
const FAILED_BACKOFF_FIRST: Duration = Duration::from_secs(1);
const FAILED_BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);

/// Per DaemonSet and node: when a failed pod may next be replaced, and the delay after that.
#[derive(Clone, Default)]
struct FailedBackoff {
    inner: Arc<std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Duration)>>>,
}

impl FailedBackoff {
    /// `None` when a replacement may go ahead now (and the next one will wait longer), or
    /// how long to wait.
    fn wait(&self, key: &str) -> Option<Duration> {
        let mut map = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = std::time::Instant::now();
        match map.get(key).copied() {
            Some((next, _)) if next > now => Some(next - now),
            Some((_, delay)) => {
                let delay = (delay * 2).min(FAILED_BACKOFF_MAX);
                map.insert(key.to_owned(), (now + delay, delay));
                None
            }
            None => {
                map.insert(
                    key.to_owned(),
                    (now + FAILED_BACKOFF_FIRST, FAILED_BACKOFF_FIRST),
                );
                None
            }
        }
    }
}

struct Shared {
    controller: DaemonSetController,
    pods: Store<Pod>,
    pod_index: OwnerIndex<Pod>,
    nodes: Store<Node>,
}

/// The node a daemon pod is for: its `nodeName`, or before binding the node its required
/// affinity names.
fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(name) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(name.clone());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().find_map(|term| {
        term.match_fields.iter().flatten().find_map(|r| {
            let values = r.values.as_deref().unwrap_or_default();
            match values {
                [only] if r.key == "metadata.name" && r.operator == "In" => Some(only.clone()),
                _ => None,
            }
        })
    })
}

/// Pins a pod to `node` as upstream does: the required node affinity becomes a single term
/// matching the node's name; preferences stay.
fn pin_to_node(affinity: Option<Affinity>, node: &str) -> Affinity {
    let mut affinity = affinity.unwrap_or_default();
    let mut node_affinity = affinity.node_affinity.take().unwrap_or_default();
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".to_owned(),
                operator: "In".to_owned(),
                values: Some(vec![node.to_owned()]),
            }]),
        }],
    });
    affinity.node_affinity = Some(node_affinity);
    affinity
}

impl DaemonSetController {
    /// A controller acting through `client`.
    pub fn new(client: impl Into<SharedInformers>) -> Self {
        let informers: SharedInformers = client.into();
        Self {
            recorder: Recorder::new(informers.client().clone(), "daemonset-controller"),
            client: informers.client().clone(),
            informers,
            expectations: Expectations::default(),
            failed_backoff: FailedBackoff::default(),
        }
    }

    /// Watches DaemonSets, their pods and the nodes until dropped.
    pub async fn run(self) {
        let (sets, set_events) = self.informers.touched::<DaemonSet>().await;
        let (pods, pod_events) = self.informers.touched::<Pod>().await;
        let (nodes, node_events) = self.informers.touched::<Node>().await;
        // Any node change may change where daemons belong: every DaemonSet looks again.
        let all_sets = sets.clone();
        let node_queue = trigger_with(node_events, move |_node: Node| {
            all_sets
                .state()
                .iter()
                .map(|ds| ObjectRef::from_obj(ds.as_ref()))
                .collect::<Vec<_>>()
        });
        let queue = stream::select(
            stream::select(
                trigger_self(set_events, ()),
                trigger_owners(pod_events, (), ()),
            ),
            node_queue,
        );
        let shared = Arc::new(Shared {
            pod_index: self.informers.owner_index::<Pod>().await,
            controller: self,
            pods,
            nodes,
        });
        let results = applier(
            |ds: Arc<DaemonSet>, shared: Arc<Shared>| {
                Box::pin(async move {
                    shared
                        .controller
                        .reconcile(&ds, &shared.pods, &shared.pod_index, &shared.nodes)
                        .await
                })
            },
            |_, _, _| Action::requeue(Duration::from_secs(1)),
            shared,
            sets,
            queue,
            Config::default(),
        );
        drain("daemonset", results).await;
    }

    async fn reconcile(
        &self,
        ds: &DaemonSet,
        pod_cache: &Store<Pod>,
        pod_index: &OwnerIndex<Pod>,
        node_cache: &Store<Node>,
    ) -> Result<Action> {
        pod_cache
            .wait_until_ready()
            .await
            .map_err(|_| Error::CacheGone)?;
        node_cache
            .wait_until_ready()
            .await
            .map_err(|_| Error::CacheGone)?;
        if ds.metadata.deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        let Some(spec) = ds.spec.clone() else {
            return Ok(Action::await_change());
        };
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let pods = owned_pods(pod_index, ds);
        if !self.expectations.satisfied(&uid, &pods) {
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
        let in_use: HashSet<String> = pods
            .iter()
            .filter_map(|p| p.labels().get(REVISION_LABEL).cloned())
            .collect();
        let status = ds.status.clone().unwrap_or_default();
        let history = revisions::sync(
            &self.client,
            ds,
            &spec.template,
            status.collision_count.unwrap_or(0),
            None,
            spec.revision_history_limit.unwrap_or(10),
            &in_use,
        )
        .await?;
        let update_name = history.update.name_any();
        let hash = update_name
            .strip_prefix(&format!("{}-", ds.name_any()))
            .unwrap_or(&update_name)
            .to_owned();
        let mut template_spec = spec.template.spec.clone().unwrap_or_default();
        add_default_tolerations(&mut template_spec);
        let now = Timestamp::now();
        let min_ready = spec.min_ready_seconds.unwrap_or(0);

        let mut by_node: BTreeMap<String, Vec<Arc<Pod>>> = BTreeMap::new();
        for pod in pods.iter().filter(|p| !is_terminating(p)) {
            if let Some(node) = target_node(pod) {
                by_node.entry(node).or_default().push(pod.clone());
            }
        }
        let mut nodes: BTreeMap<String, NodeDaemons> = BTreeMap::new();
        for node in node_cache.state() {
            let name = node.name_any();
            let mut on_node = by_node.remove(&name).unwrap_or_default();
            on_node.sort_by_key(|p| {
                (
                    p.metadata.creation_timestamp.clone().map(|t| t.0),
                    p.name_any(),
                )
            });
            nodes.insert(
                name,
                NodeDaemons {
                    eligibility: eligibility(&template_spec, &node),
                    pods: on_node
                        .iter()
                        .map(|p| DaemonPod {
                            name: p.name_any(),
                            updated: p.labels().get(REVISION_LABEL) == Some(&hash),
                            available: is_running_and_ready(p) && is_available(p, min_ready, now),
                            failed: phase(p) == "Failed",
                        })
                        .collect(),
                },
            );
        }
        // Pods for nodes that no longer exist go.
        let mut steps: Vec<DaemonStep> = by_node
            .values()
            .flatten()
            .map(|p| DaemonStep::Delete(p.name_any()))
            .collect();
        let desired = i32::try_from(nodes.values().filter(|n| n.eligibility.should_run).count())
            .unwrap_or(i32::MAX);
        let strategy = spec.update_strategy.clone().unwrap_or_default();
        let rollout = match strategy.type_.as_deref() {
            Some("OnDelete") => Rollout::OnDelete,
            _ => {
                let rolling = strategy.rolling_update.unwrap_or_default();
                let max_surge = scaled(rolling.max_surge.as_ref(), desired, 0);
                let max_unavailable = scaled(rolling.max_unavailable.as_ref(), desired, 1);
                Rollout::RollingUpdate {
                    max_unavailable: if max_surge == 0 {
                        max_unavailable.max(1)
                    } else {
                        max_unavailable
                    },
                    max_surge,
                }
            }
        };
        steps.extend(daemon_steps(&nodes, rollout));
        // A pod that keeps failing on a node is replaced after a growing delay, as
        // upstream's failed-pods backoff does: while it runs, that node is left alone.
        let mut retry_in: Option<Duration> = None;
        let mut held: HashSet<String> = HashSet::new();
        for pod in pods
            .iter()
            .filter(|p| phase(p) == "Failed" && !is_terminating(p))
        {
            let node = target_node(pod).unwrap_or_default();
            if held.contains(&node) {
                continue;
            }
            if let Some(wait) = self.failed_backoff.wait(&format!("{uid}/{node}")) {
                retry_in = Some(retry_in.map_or(wait, |r| r.min(wait)));
                held.insert(node);
            }
        }
        for step in steps {
            match step {
                DaemonStep::Create(node) => {
                    if !held.contains(&node) {
                        self.create_pod(ds, &node, &hash, &template_spec).await?;
                    }
                }
                DaemonStep::Delete(name) => {
                    let Some(pod) = pods.iter().find(|p| p.name_any() == name) else {
                        continue;
                    };
                    let node = target_node(pod).unwrap_or_default();
                    if phase(pod) == "Failed" {
                        if held.contains(&node) {
                            continue;
                        }
                        self.recorder
                            .publish(
                                ds,
                                EventType::Warning,
                                "FailedDaemonPod",
                                &format!(
                                    "Found failed daemon pod {}/{name} on node {node}, will try to kill it",
                                    ds.namespace().unwrap_or_default(),
                                ),
                            )
                            .await;
                    }
                    self.delete_pod(ds, pod).await?;
                }
            }
        }
        let action = self.write_status(ds, &nodes, desired, &pods, now).await?;
        Ok(match retry_in {
            Some(wait) => Action::requeue(wait),
            None => action,
        })
    }

    async fn create_pod(
        &self,
        ds: &DaemonSet,
        node: &str,
        hash: &str,
        template_spec: &k8s_openapi::api::core::v1::PodSpec,
    ) -> Result<()> {
        let spec = ds.spec.clone().unwrap_or_default();
        let namespace = ds.namespace().unwrap_or_default();
        let mut pod = pod_from_template(&spec.template, &namespace, controller_reference(ds));
        pod.metadata.generate_name = Some(format!("{}-", ds.name_any()));
        let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
        labels.insert(REVISION_LABEL.to_owned(), hash.to_owned());
        labels.insert(
            GENERATION_LABEL.to_owned(),
            ds.metadata.generation.unwrap_or(1).to_string(),
        );
        let mut pod_spec = template_spec.clone();
        pod_spec.affinity = Some(pin_to_node(pod_spec.affinity.take(), node));
        pod.spec = Some(pod_spec);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        match api.create(&PostParams::default(), &pod).await {
            Ok(created) => {
                self.expectations.created(&uid, &created.name_any());
                self.recorder
                    .publish(
                        ds,
                        EventType::Normal,
                        "SuccessfulCreate",
                        &format!("Created pod: {}", created.name_any()),
                    )
                    .await;
                Ok(())
            }
            Err(err) => {
                self.recorder
                    .publish(
                        ds,
                        EventType::Warning,
                        "FailedCreate",
                        &format!("Error creating: {err}"),
                    )
                    .await;
                Err(err.into())
            }
        }
    }

    async fn delete_pod(&self, ds: &DaemonSet, pod: &Pod) -> Result<()> {
        if crate::workload_pods::delete_exact(&self.client, pod).await? {
            let uid = ds.metadata.uid.clone().unwrap_or_default();
            self.expectations.deleted(&uid, &pod.name_any());
            self.recorder
                .publish(
                    ds,
                    EventType::Normal,
                    "SuccessfulDelete",
                    &format!("Deleted pod: {}", pod.name_any()),
                )
                .await;
        }
        Ok(())
    }

    async fn write_status(
        &self,
        ds: &DaemonSet,
        nodes: &BTreeMap<String, NodeDaemons>,
        desired: i32,
        pods: &[Arc<Pod>],
        now: Timestamp,
    ) -> Result<Action> {
        let min_ready = ds
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        let pod_named = |name: &str| pods.iter().find(|p| p.name_any() == name);
        let (mut scheduled, mut misscheduled, mut ready, mut available, mut updated) =
            (0, 0, 0, 0, 0);
        let mut waiting_for_available = false;
        for state in nodes.values() {
            let Some(first) = state.pods.first() else {
                continue;
            };
            if !state.eligibility.should_run {
                misscheduled += 1;
                continue;
            }
            scheduled += 1;
            if state.pods.iter().any(|p| p.updated) {
                updated += 1;
            }
            if let Some(pod) = pod_named(&first.name)
                && is_running_and_ready(pod)
            {
                ready += 1;
                if is_available(pod, min_ready, now) {
                    available += 1;
                } else {
                    waiting_for_available = true;
                }
            }
        }
        let old = ds.status.clone().unwrap_or_default();
        let status = DaemonSetStatus {
            collision_count: old.collision_count,
            conditions: old.conditions.clone(),
            current_number_scheduled: scheduled,
            desired_number_scheduled: desired,
            number_available: Some(available),
            number_misscheduled: misscheduled,
            number_ready: ready,
            number_unavailable: Some((desired - available).max(0)),
            observed_generation: ds.metadata.generation,
            updated_number_scheduled: Some(updated),
        };
        if status != old {
            let api: Api<DaemonSet> =
                Api::namespaced(self.client.clone(), &ds.namespace().unwrap_or_default());
            api.patch_status(
                &ds.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await?;
        }
        if waiting_for_available {
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
        Ok(Action::await_change())
    }
}
