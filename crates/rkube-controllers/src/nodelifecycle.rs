//! Node lifecycle: a node whose kubelet stops renewing its Lease (in `kube-node-lease`) and
//! posting status for the grace period is marked Ready=Unknown, its pods not ready, and it is
//! tainted so that nothing new lands there and pods that do not tolerate it are evicted
//! ([`crate::tainteviction`]). When the kubelet comes back, the taints go.
//!
//! Liveness is judged by local observation, as upstream does: the controller remembers when
//! it last saw the lease's renewTime or the Ready condition's heartbeat change, so clocks of
//! other machines never matter.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::time::Instant;

use crate::endpoints::is_pod_ready;
use crate::informer::{KeyIndex, SharedInformers};

/// The manager of the nodes' cluster DNS endpoint slices (the agents).
const DNS_MANAGER: &str = "rkube-agent";
use crate::events::{EventType, Recorder};
use crate::informer::{AbortOnDrop, Change, Next, WorkQueue, feed, is_not_found};

/// The namespace of node heartbeats.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// Taint of a node whose Ready condition is False.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Taint of a node whose Ready condition is Unknown.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Taint of a node marked unschedulable.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// Taint of a node short of memory.
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
/// Taint of a node short of disk.
pub const TAINT_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
/// Taint of a node short of process ids.
pub const TAINT_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
/// Taint of a node whose network is not configured.
pub const TAINT_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

/// The taints this controller owns: any other taint is left as it is.
const MANAGED: &[&str] = &[
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    TAINT_UNSCHEDULABLE,
    TAINT_MEMORY_PRESSURE,
    TAINT_DISK_PRESSURE,
    TAINT_PID_PRESSURE,
    TAINT_NETWORK_UNAVAILABLE,
];

/// The conditions a kubelet posts, which all become Unknown when it goes silent.
const KUBELET_CONDITIONS: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// The status of the node's condition `type_`, if it has one.
pub fn condition_status<'a>(node: &'a Node, type_: &str) -> Option<&'a str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// The node's conditions after its kubelet went silent: each kubelet condition Unknown with
/// upstream's reason and message (or, for a node that never posted one, "never updated").
/// `None` if they already are.
pub fn conditions_unknown(node: &Node, now: Timestamp) -> Option<Vec<NodeCondition>> {
    let mut conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for type_ in KUBELET_CONDITIONS {
        match conditions.iter_mut().find(|c| c.type_ == *type_) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(Time(now));
                changed = true;
            }
            None => {
                conditions.push(NodeCondition {
                    type_: (*type_).into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: Some(Time(now)),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
        }
    }
    changed.then_some(conditions)
}

fn taint(key: &str, effect: &str, time_added: Option<Time>) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        time_added,
        value: None,
    }
}

/// The node's taints as its conditions call for: NoExecute and NoSchedule `not-ready` when
/// Ready is False, `unreachable` when it is Unknown, NoSchedule taints for pressure
/// conditions, unavailable network and `spec.unschedulable`. Taints this controller does not
/// own are kept, and a taint already present keeps its `timeAdded`.
pub fn desired_taints(node: &Node, now: Timestamp) -> Vec<Taint> {
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let mut wanted: Vec<(&str, &str)> = Vec::new();
    match condition_status(node, "Ready") {
        Some("False") => {
            wanted.push((TAINT_NOT_READY, "NoExecute"));
            wanted.push((TAINT_NOT_READY, "NoSchedule"));
        }
        Some("Unknown") => {
            wanted.push((TAINT_UNREACHABLE, "NoExecute"));
            wanted.push((TAINT_UNREACHABLE, "NoSchedule"));
        }
        // A node that has not posted Ready yet is judged once its grace period is over.
        _ => {}
    }
    for (condition, key) in [
        ("MemoryPressure", TAINT_MEMORY_PRESSURE),
        ("DiskPressure", TAINT_DISK_PRESSURE),
        ("PIDPressure", TAINT_PID_PRESSURE),
        ("NetworkUnavailable", TAINT_NETWORK_UNAVAILABLE),
    ] {
        if condition_status(node, condition) == Some("True") {
            wanted.push((key, "NoSchedule"));
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        wanted.push((TAINT_UNSCHEDULABLE, "NoSchedule"));
    }
    let mut taints: Vec<Taint> = current
        .iter()
        .filter(|t| {
            !MANAGED.contains(&t.key.as_str())
                || wanted.contains(&(t.key.as_str(), t.effect.as_str()))
        })
        .cloned()
        .collect();
    for (key, effect) in wanted {
        if !taints.iter().any(|t| t.key == key && t.effect == effect) {
            // NoExecute taints carry the time they were added: evictions count from it.
            let added = (effect == "NoExecute").then_some(Time(now));
            taints.push(taint(key, effect, added));
        }
    }
    taints
}

/// What the controller last saw of a node's heartbeats, and when it saw them change.
struct Health {
    probe: Instant,
    heartbeat: Option<Time>,
    lease_renew: Option<Timestamp>,
    ready: Option<String>,
}

/// Watches node heartbeats; marks silent nodes Unknown and keeps node taints true.
pub struct NodeLifecycleController {
    client: kube::Client,
    informers: SharedInformers,
    grace_period: Duration,
    monitor_period: Duration,
    health: Mutex<HashMap<String, Health>>,
    recorder: Recorder,
}

/// The caches node lifecycle reads.
pub struct NodeCaches {
    /// Every node.
    pub nodes: Store<Node>,
    /// Leases in kube-node-lease.
    pub leases: Store<Lease>,
    /// Every bound pod, by node.
    pub pods: KeyIndex<Pod>,
}

impl NodeLifecycleController {
    /// A controller with the settings' grace and monitor periods.
    pub fn new(client: impl Into<SharedInformers>, settings: &crate::Settings) -> Self {
        let informers: SharedInformers = client.into();
        Self {
            recorder: Recorder::new(informers.client().clone(), "node-controller"),
            client: informers.client().clone(),
            informers,
            grace_period: settings.node_monitor_grace_period,
            monitor_period: settings.node_monitor_period,
            health: Mutex::default(),
        }
    }

    fn health(&self) -> std::sync::MutexGuard<'_, HashMap<String, Health>> {
        self.health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        let queue = WorkQueue::new();
        let (nodes, node_events) = self.informers.informer::<Node>().await;
        let (leases, lease_events) = self.informers.informer::<Lease>().await;
        let pods = crate::podutil::pods_by_node(&self.informers).await;
        let name_of =
            |change: &Change<Node>| vec![change.object().metadata.name.clone().unwrap_or_default()];
        let _guards = [
            AbortOnDrop(tokio::spawn(feed(queue.clone(), node_events, name_of))),
            // Renewals are read by each node's periodic pass (as upstream's monitor reads the
            // lease lister every node monitor period): one pass per renewal would double the
            // work of an idle cluster for nothing a pass a few seconds later does not see.
            AbortOnDrop(tokio::spawn(feed(
                queue.clone(),
                lease_events,
                |_: &Change<Lease>| Vec::new(),
            ))),
        ];
        for store in [
            nodes.wait_until_ready().await,
            leases.wait_until_ready().await,
        ] {
            if store.is_err() {
                return;
            }
        }
        let caches = NodeCaches {
            nodes,
            leases,
            pods,
        };
        let this = &self;
        let caches = &caches;
        queue
            .run("node-lifecycle", |name| async move {
                this.reconcile(caches, &name).await
            })
            .await;
    }

    /// Judges one node's health and brings its conditions, taints and pods in line; asks to
    /// be called again after the monitor period.
    pub async fn reconcile(&self, caches: &NodeCaches, name: &str) -> Result<Next, kube::Error> {
        let Some(node) = caches.nodes.get(&ObjectRef::new(name)) else {
            self.health().remove(name);
            return Ok(Next::Wait);
        };
        // The cached Node is shared, not copied: most passes only read it, and a pass runs
        // for every node each monitor period.
        let mut node = node;
        let lease_renew = caches
            .leases
            .get(&ObjectRef::new(name).within(NODE_LEASE_NAMESPACE))
            .and_then(|l| l.spec.as_ref()?.renew_time.clone())
            .map(|t| t.0);
        let heartbeat = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .and_then(|c| c.last_heartbeat_time.clone());
        let now = Instant::now();
        let (silent_for, previous_ready) = {
            let mut health = self.health();
            let entry = health.entry(name.to_owned()).or_insert_with(|| Health {
                probe: now,
                heartbeat: heartbeat.clone(),
                lease_renew,
                ready: None,
            });
            if entry.heartbeat != heartbeat || entry.lease_renew != lease_renew {
                entry.probe = now;
                entry.heartbeat = heartbeat;
                entry.lease_renew = lease_renew;
            }
            (now.duration_since(entry.probe), entry.ready.clone())
        };
        let api: Api<Node> = Api::all(self.client.clone());
        let mut marked_unknown = false;
        if silent_for > self.grace_period
            && let Some(conditions) = conditions_unknown(&node, Timestamp::now())
        {
            tracing::info!(
                node = name,
                "node stopped posting status; marking it Unknown"
            );
            let mut unknown = (*node).clone();
            unknown
                .status
                .get_or_insert_with(Default::default)
                .conditions = Some(conditions);
            node = std::sync::Arc::new(
                api.replace_status(name, &PostParams::default(), &unknown)
                    .await?,
            );
            marked_unknown = true;
        }
        let ready = condition_status(&node, "Ready")
            .unwrap_or("Unknown")
            .to_owned();
        if previous_ready.as_deref() != Some(ready.as_str()) {
            self.dns_endpoint_follows(name, ready == "True").await?;
        }
        if ready != "True" {
            // One event per change away from Ready, as upstream records it.
            if previous_ready.as_deref() == Some("True") || marked_unknown {
                self.recorder
                    .publish(
                        node.as_ref(),
                        EventType::Normal,
                        "NodeNotReady",
                        &format!("Node {name} status is now: NodeNotReady"),
                    )
                    .await;
            }
            self.mark_pods_not_ready(caches, name).await?;
        }
        let taints = desired_taints(&node, Timestamp::now());
        let current = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        if taints != current {
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": node.metadata.resource_version},
                "spec": {"taints": taints},
            });
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        if let Some(entry) = self.health().get_mut(name) {
            entry.ready = Some(ready);
        }
        Ok(Next::After(self.monitor_period))
    }

    /// The node's own cluster DNS endpoint (the `kube-dns-<node>` EndpointSlice its agent
    /// publishes) is ready only while the node is, so that queries go to live nodes' servers
    /// (as upstream's DNS pods on a lost node become not ready with the node's other pods).
    async fn dns_endpoint_follows(&self, node: &str, ready: bool) -> Result<(), kube::Error> {
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), "kube-system");
        let Some(mut slice) = api.get_opt(&format!("kube-dns-{node}")).await? else {
            return Ok(());
        };
        let labels = slice.metadata.labels.clone().unwrap_or_default();
        if labels
            .get(crate::endpointslice::MANAGED_BY_LABEL)
            .map(String::as_str)
            != Some(DNS_MANAGER)
        {
            return Ok(());
        }
        let mut changed = false;
        for endpoint in &mut slice.endpoints {
            let conditions = endpoint.conditions.get_or_insert_with(Default::default);
            if conditions.ready != Some(ready) || conditions.serving != Some(ready) {
                conditions.ready = Some(ready);
                conditions.serving = Some(ready);
                changed = true;
            }
        }
        if !changed {
            return Ok(());
        }
        match api
            .replace(
                slice.metadata.name.as_deref().unwrap_or_default(),
                &PostParams::default(),
                &slice,
            )
            .await
        {
            Err(err) if is_not_found(&err) => Ok(()),
            other => other.map(drop),
        }
    }

    /// Sets Ready=False on the pods bound to `node` that still claim to be ready.
    async fn mark_pods_not_ready(
        &self,
        caches: &NodeCaches,
        node: &str,
    ) -> Result<(), kube::Error> {
        let pods = caches.pods.get(node);
        for pod in pods.into_iter().filter(|pod| is_pod_ready(pod)) {
            let (ns, pod_name) = crate::informer::key_of(pod.as_ref());
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
            let patch = serde_json::json!({"status": {"conditions": [
                {"type": "Ready", "status": "False", "lastTransitionTime": Time(Timestamp::now())}
            ]}});
            match api
                .patch_status(
                    &pod_name,
                    &PatchParams::default(),
                    &Patch::Strategic(&patch),
                )
                .await
            {
                Ok(_) => {
                    self.recorder
                        .publish(
                            pod.as_ref(),
                            EventType::Warning,
                            "NodeNotReady",
                            "Node is not ready",
                        )
                        .await;
                }
                Err(err) if is_not_found(&err) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(conditions: serde_json::Value, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n1"},
            "spec": {"taints": taints},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    fn keys(taints: &[Taint]) -> Vec<(String, String)> {
        taints
            .iter()
            .map(|t| (t.key.clone(), t.effect.clone()))
            .collect()
    }

    fn now() -> Timestamp {
        "2026-11-22T08:00:00Z".parse().unwrap()
    }

    #[test]
    fn an_unknown_node_is_tainted_unreachable() {
        let n = node(json!([{"type": "Ready", "status": "Unknown"}]), json!(null));
        let taints = desired_taints(&n, now());
        assert_eq!(
            keys(&taints),
            [
                (TAINT_UNREACHABLE.to_owned(), "NoExecute".to_owned()),
                (TAINT_UNREACHABLE.to_owned(), "NoSchedule".to_owned())
            ]
        );
        assert_eq!(taints[0].time_added, Some(Time(now())));
        assert_eq!(taints[1].time_added, None);
    }

    #[test]
    fn a_not_ready_node_swaps_unreachable_for_not_ready_and_keeps_other_taints() {
        let n = node(
            json!([{"type": "Ready", "status": "False"}, {"type": "DiskPressure", "status": "True"}]),
            json!([
                {"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": "2026-11-22T07:00:00Z"},
                {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
            ]),
        );
        let taints = desired_taints(&n, now());
        assert_eq!(
            keys(&taints),
            [
                ("dedicated".to_owned(), "NoSchedule".to_owned()),
                (TAINT_NOT_READY.to_owned(), "NoExecute".to_owned()),
                (TAINT_NOT_READY.to_owned(), "NoSchedule".to_owned()),
                (TAINT_DISK_PRESSURE.to_owned(), "NoSchedule".to_owned()),
            ]
        );
    }

    #[test]
    fn a_ready_node_loses_the_lifecycle_taints_but_an_existing_one_keeps_its_time() {
        let n = node(
            json!([{"type": "Ready", "status": "True"}]),
            json!([{"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": "2026-11-22T07:00:00Z"}]),
        );
        assert!(desired_taints(&n, now()).is_empty());
        let still = node(
            json!([{"type": "Ready", "status": "Unknown"}]),
            json!([{"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": "2026-11-22T07:00:00Z"}]),
        );
        let taints = desired_taints(&still, now());
        assert_eq!(
            taints[0].time_added.as_ref().unwrap().0.to_string(),
            "2026-11-22T07:00:00Z"
        );
    }

    #[test]
    fn a_node_that_never_posted_status_is_not_tainted_yet() {
        let n = node(json!(null), json!(null));
        assert!(desired_taints(&n, now()).is_empty());
    }

    #[test]
    fn an_unschedulable_node_gets_the_unschedulable_taint() {
        let mut n = node(json!([{"type": "Ready", "status": "True"}]), json!(null));
        n.spec.as_mut().unwrap().unschedulable = Some(true);
        assert_eq!(
            keys(&desired_taints(&n, now())),
            [(TAINT_UNSCHEDULABLE.to_owned(), "NoSchedule".to_owned())]
        );
    }

    #[test]
    fn silent_nodes_get_every_kubelet_condition_unknown_once() {
        let n = node(
            json!([
                {"type": "Ready", "status": "True", "reason": "KubeletReady"},
                {"type": "MemoryPressure", "status": "False"},
            ]),
            json!(null),
        );
        let conditions = conditions_unknown(&n, now()).unwrap();
        assert_eq!(conditions.len(), 4);
        let ready = &conditions[0];
        assert_eq!(
            (
                ready.status.as_str(),
                ready.reason.as_deref(),
                ready.message.as_deref()
            ),
            (
                "Unknown",
                Some("NodeStatusUnknown"),
                Some("Kubelet stopped posting node status.")
            )
        );
        assert_eq!(
            conditions[2].reason.as_deref(),
            Some("NodeStatusNeverUpdated")
        );
        let mut again = n.clone();
        again.status.as_mut().unwrap().conditions = Some(conditions);
        assert!(conditions_unknown(&again, now()).is_none());
    }
}
