//! The scheduler's view of pods and nodes: what the plugins need, computed once when an
//! object arrives from the API server rather than in every scheduling cycle.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodAffinityTerm, Taint, Toleration,
};
use rkube_api::selector::LabelSelector;

use crate::resource::{Resources, pod_requests};

/// `namespace/name`, how the scheduler names a pod.
pub type PodKey = String;

/// The key of a pod.
pub fn pod_key(pod: &Pod) -> PodKey {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// A host port a container claims: (host IP, protocol, port).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// The host IP; `0.0.0.0` when unset (every address).
    pub ip: String,
    /// TCP, UDP or SCTP.
    pub protocol: String,
    /// The port number.
    pub port: i32,
}

impl HostPort {
    /// Whether two claims collide: same protocol and port, and the same address or one of
    /// them on every address (upstream's `HostPortInfo` check).
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// One pod (anti-)affinity term, compiled.
#[derive(Clone, Debug)]
pub struct AffinityTerm {
    /// Which pods the term is about.
    pub selector: LabelSelector,
    /// The namespaces named (the pod's own when neither these nor a selector is given).
    pub namespaces: HashSet<String>,
    /// A selector over namespace labels; `None` when absent.
    pub namespace_selector: Option<LabelSelector>,
    /// The node label that defines a topology domain.
    pub topology_key: String,
    /// The weight, for preferred terms.
    pub weight: i64,
}

impl AffinityTerm {
    fn compile(term: &PodAffinityTerm, own_namespace: &str, weight: i64) -> Self {
        let selector = match &term.label_selector {
            Some(s) => LabelSelector::from_api(s).unwrap_or_else(|_| LabelSelector::nothing()),
            None => LabelSelector::nothing(),
        };
        let mut namespaces: HashSet<String> = term.namespaces.iter().flatten().cloned().collect();
        let namespace_selector = term
            .namespace_selector
            .as_ref()
            .map(|s| LabelSelector::from_api(s).unwrap_or_else(|_| LabelSelector::nothing()));
        if namespaces.is_empty() && namespace_selector.is_none() {
            namespaces.insert(own_namespace.to_owned());
        }
        AffinityTerm {
            selector,
            namespaces,
            namespace_selector,
            topology_key: term.topology_key.clone(),
            weight,
        }
    }

    /// Whether `pod` is one of the pods this term is about. `namespace_labels` gives the
    /// labels of a namespace, for terms with a namespace selector.
    pub fn matches(
        &self,
        pod: &PodInfo,
        namespace_labels: &dyn Fn(&str) -> Option<BTreeMap<String, String>>,
    ) -> bool {
        let in_namespace = self.namespaces.contains(&pod.namespace)
            || self.namespace_selector.as_ref().is_some_and(|s| {
                s.is_empty()
                    || namespace_labels(&pod.namespace).is_some_and(|labels| s.matches(&labels))
            });
        in_namespace && self.selector.matches(&pod.labels)
    }
}

/// One topology spread constraint, compiled.
#[derive(Clone, Debug)]
pub struct SpreadConstraint {
    /// The largest allowed difference between domains.
    pub max_skew: i32,
    /// The node label that defines a domain.
    pub topology_key: String,
    /// Whether violating it filters the node out (`DoNotSchedule`) or only scores it.
    pub hard: bool,
    /// Which pods are counted.
    pub selector: LabelSelector,
    /// The fewest domains that count as existing (hard constraints only).
    pub min_domains: i32,
    /// Whether nodes not matching the pod's node affinity are left out of the count.
    pub honor_node_affinity: bool,
    /// Whether tainted nodes the pod does not tolerate are left out of the count.
    pub honor_taints: bool,
}

/// A claim one of a pod's volumes uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeClaim {
    /// The claim's name, in the pod's namespace.
    pub name: String,
    /// Whether it belongs to a generic ephemeral volume (and so must be the pod's own).
    pub ephemeral: bool,
}

/// A pod as the scheduler sees it.
#[derive(Debug)]
pub struct PodInfo {
    /// `namespace/name`.
    pub key: PodKey,
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The uid.
    pub uid: String,
    /// The pod itself.
    pub pod: Pod,
    /// `spec.priority` (0 when unset).
    pub priority: i32,
    /// Requests for fit checks.
    pub requests: Resources,
    /// CPU (millicores) and memory requested, with missing requests as the defaults, for
    /// scoring.
    pub non_zero: (i64, i64),
    /// Host ports claimed.
    pub host_ports: Vec<HostPort>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Tolerations.
    pub tolerations: Vec<Toleration>,
    /// `spec.nodeSelector` and required node affinity.
    pub node_selector: Option<NodeMatcher>,
    /// Preferred node affinity terms with their weights.
    pub preferred_node_terms: Vec<(i64, NodeSelectorTermMatcher)>,
    /// Container images, normalized (`name:latest` when untagged).
    pub images: Vec<String>,
    /// Required pod affinity terms.
    pub required_affinity: Vec<AffinityTerm>,
    /// Required pod anti-affinity terms.
    pub required_anti_affinity: Vec<AffinityTerm>,
    /// Preferred pod affinity terms.
    pub preferred_affinity: Vec<AffinityTerm>,
    /// Preferred pod anti-affinity terms.
    pub preferred_anti_affinity: Vec<AffinityTerm>,
    /// Topology spread constraints.
    pub spread: Vec<SpreadConstraint>,
    /// `spec.schedulerName` (`default-scheduler` when unset).
    pub scheduler_name: String,
    /// `spec.nodeName`, when assigned.
    pub node_name: Option<String>,
    /// Whether `preemptionPolicy: Never`.
    pub never_preempt: bool,
    /// Every claim the pod's volumes use, in volume order: those named by a
    /// `persistentVolumeClaim` volume and those of generic ephemeral volumes
    /// (`<pod>-<volume>`, made by the ephemeral volume controller), which are marked.
    pub volume_claims: Vec<VolumeClaim>,
    /// `status.nominatedNodeName`.
    pub nominated_node: Option<String>,
    /// The start time or creation time (oldest first when choosing victims).
    pub start_time: Option<k8s_openapi::jiff::Timestamp>,
    /// Whether the pod is being deleted.
    pub terminating: bool,
}

impl PodInfo {
    /// The claims named by the pod's `persistentVolumeClaim` volumes (not its ephemeral ones).
    pub fn pvc_claims(&self) -> impl Iterator<Item = &str> {
        self.volume_claims
            .iter()
            .filter(|c| !c.ephemeral)
            .map(|c| c.name.as_str())
    }

    /// Compiles a pod.
    pub fn new(pod: Pod) -> Self {
        let no_spec;
        let spec = match &pod.spec {
            Some(spec) => spec,
            None => {
                no_spec = k8s_openapi::api::core::v1::PodSpec::default();
                &no_spec
            }
        };
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let non_zero = pod_requests(spec, true);
        let mut host_ports = Vec::new();
        for c in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
        {
            for p in c.ports.iter().flatten() {
                if let Some(port) = p.host_port.filter(|p| *p > 0) {
                    host_ports.push(HostPort {
                        ip: p
                            .host_ip
                            .clone()
                            .filter(|ip| !ip.is_empty())
                            .unwrap_or_else(|| "0.0.0.0".into()),
                        protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        port,
                    });
                }
            }
        }
        let affinity = spec.affinity.clone().unwrap_or_default();
        let node_affinity = affinity.node_affinity.unwrap_or_default();
        let required_terms = node_affinity
            .required_during_scheduling_ignored_during_execution
            .map(|s| s.node_selector_terms);
        let node_selector = NodeMatcher::new(spec.node_selector.clone(), required_terms);
        let preferred_node_terms = node_affinity
            .preferred_during_scheduling_ignored_during_execution
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.weight != 0)
            .map(|t| {
                (
                    i64::from(t.weight),
                    NodeSelectorTermMatcher::new(&t.preference),
                )
            })
            .collect();
        let pod_affinity = affinity.pod_affinity.unwrap_or_default();
        let pod_anti = affinity.pod_anti_affinity.unwrap_or_default();
        let compile_required = |terms: Option<Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            terms
                .unwrap_or_default()
                .iter()
                .map(|t| AffinityTerm::compile(t, &namespace, 1))
                .collect()
        };
        let compile_preferred =
            |terms: Option<Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>| {
                terms
                    .unwrap_or_default()
                    .iter()
                    .map(|t| {
                        AffinityTerm::compile(&t.pod_affinity_term, &namespace, i64::from(t.weight))
                    })
                    .collect::<Vec<_>>()
            };
        let spread = spec
            .topology_spread_constraints
            .iter()
            .flatten()
            .map(|c| {
                let mut selector = c
                    .label_selector
                    .as_ref()
                    .and_then(|s| LabelSelector::from_api(s).ok())
                    .unwrap_or_else(LabelSelector::nothing);
                // matchLabelKeys: the pod's own values for these keys join the selector.
                if let Some(keys) = &c.match_label_keys {
                    let labels = pod.metadata.labels.clone().unwrap_or_default();
                    let extra: Vec<String> = keys
                        .iter()
                        .filter_map(|k| labels.get(k).map(|v| format!("{k}={v}")))
                        .collect();
                    if !extra.is_empty() && !selector.matches_nothing() {
                        let mut text = selector_text(&selector);
                        for e in extra {
                            if !text.is_empty() {
                                text.push(',');
                            }
                            text.push_str(&e);
                        }
                        if let Ok(s) = LabelSelector::parse(&text) {
                            selector = s;
                        }
                    }
                }
                SpreadConstraint {
                    max_skew: c.max_skew,
                    topology_key: c.topology_key.clone(),
                    hard: c.when_unsatisfiable != "ScheduleAnyway",
                    selector,
                    min_domains: c.min_domains.unwrap_or(1).max(1),
                    honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
                    honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
                }
            })
            .collect();
        let images = spec
            .containers
            .iter()
            .filter_map(|c| c.image.as_deref())
            .map(normalize_image)
            .collect();
        let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
        let volume_claims = spec
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| match (&v.persistent_volume_claim, &v.ephemeral) {
                (Some(c), _) => Some(VolumeClaim {
                    name: c.claim_name.clone(),
                    ephemeral: false,
                }),
                (None, Some(_)) => Some(VolumeClaim {
                    name: format!("{pod_name}-{}", v.name),
                    ephemeral: true,
                }),
                (None, None) => None,
            })
            .collect();
        PodInfo {
            key: pod_key(&pod),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            priority: spec.priority.unwrap_or(0),
            requests: pod_requests(spec, false),
            non_zero: (non_zero.milli_cpu, non_zero.memory),
            host_ports,
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            tolerations: spec.tolerations.clone().unwrap_or_default(),
            node_selector,
            preferred_node_terms,
            images,
            required_affinity: compile_required(
                pod_affinity.required_during_scheduling_ignored_during_execution,
            ),
            required_anti_affinity: compile_required(
                pod_anti.required_during_scheduling_ignored_during_execution,
            ),
            preferred_affinity: compile_preferred(
                pod_affinity.preferred_during_scheduling_ignored_during_execution,
            ),
            preferred_anti_affinity: compile_preferred(
                pod_anti.preferred_during_scheduling_ignored_during_execution,
            ),
            spread,
            scheduler_name: spec
                .scheduler_name
                .clone()
                .unwrap_or_else(|| "default-scheduler".into()),
            node_name: spec.node_name.clone().filter(|n| !n.is_empty()),
            never_preempt: spec.preemption_policy.as_deref() == Some("Never"),
            volume_claims,
            nominated_node: pod
                .status
                .as_ref()
                .and_then(|s| s.nominated_node_name.clone())
                .filter(|n| !n.is_empty()),
            start_time: pod
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .or(pod.metadata.creation_timestamp.as_ref())
                .map(|t| t.0),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            namespace,
            pod: kept(pod),
        }
    }

    /// Whether the pod has any pod affinity or anti-affinity term.
    pub fn has_affinity(&self) -> bool {
        !(self.required_affinity.is_empty()
            && self.required_anti_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty())
    }

    /// Whether the pod has succeeded or failed.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
    }
}

/// The pod as the scheduler keeps it once compiled. Of the status only the phase
/// ([`PodInfo::is_terminal`]). A pod bound to a node also keeps of its spec only what is read
/// of pods already placed: the volumes that can conflict with another pod's on the same node
/// (VolumeRestrictions). A pod waiting to be scheduled keeps its whole spec, which the queue
/// compares on updates. The cache holds every pod in the cluster, and the typed form of a
/// running pod's containers, volumes and status is most of what it would hold.
fn kept(mut pod: Pod) -> Pod {
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    pod.status = pod.status.map(|s| PodStatus {
        phase: s.phase,
        ..Default::default()
    });
    pod.spec = pod.spec.map(|spec| {
        if spec.node_name.as_deref().is_none_or(str::is_empty) {
            return spec;
        }
        let volumes: Vec<_> = spec
            .volumes
            .into_iter()
            .flatten()
            .filter(crate::plugins::volumerestrictions::needs_check)
            .collect();
        PodSpec {
            node_name: spec.node_name,
            priority: spec.priority,
            scheduler_name: spec.scheduler_name,
            volumes: (!volumes.is_empty()).then_some(volumes),
            ..Default::default()
        }
    });
    pod
}

fn selector_text(selector: &LabelSelector) -> String {
    use rkube_api::selector::LabelOperator;
    selector
        .requirements()
        .iter()
        .map(|r| {
            let values = r.values().join(",");
            match r.operator() {
                LabelOperator::Exists => r.key().to_owned(),
                LabelOperator::DoesNotExist => format!("!{}", r.key()),
                LabelOperator::In => format!("{} in ({values})", r.key()),
                LabelOperator::NotIn => format!("{} notin ({values})", r.key()),
                LabelOperator::Equals | LabelOperator::DoubleEquals => {
                    format!("{}={values}", r.key())
                }
                LabelOperator::NotEquals => format!("{}!={values}", r.key()),
                LabelOperator::GreaterThan => format!("{}>{values}", r.key()),
                LabelOperator::LessThan => format!("{}<{values}", r.key()),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// An image name as node status reports it: untagged names get `:latest`.
pub fn normalize_image(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

/// One node selector requirement, compiled.
#[derive(Clone, Debug)]
struct Requirement {
    key: String,
    operator: String,
    values: Vec<String>,
}

impl Requirement {
    fn new(r: &NodeSelectorRequirement) -> Self {
        Requirement {
            key: r.key.clone(),
            operator: r.operator.clone(),
            values: r.values.clone().unwrap_or_default(),
        }
    }

    fn matches(&self, value: Option<&str>) -> bool {
        match self.operator.as_str() {
            "In" => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            "NotIn" => !value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            "Gt" | "Lt" => {
                let (Some(v), Some(bound)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|b| b.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.operator == "Gt" {
                    v > bound
                } else {
                    v < bound
                }
            }
            _ => false,
        }
    }
}

/// A node selector term: every expression over labels and every field (only
/// `metadata.name`) must match; a term with neither matches nothing.
#[derive(Clone, Debug)]
pub struct NodeSelectorTermMatcher {
    expressions: Vec<Requirement>,
    fields: Vec<Requirement>,
}

impl NodeSelectorTermMatcher {
    /// Compiles a term.
    pub fn new(term: &NodeSelectorTerm) -> Self {
        NodeSelectorTermMatcher {
            expressions: term
                .match_expressions
                .iter()
                .flatten()
                .map(Requirement::new)
                .collect(),
            fields: term
                .match_fields
                .iter()
                .flatten()
                .map(Requirement::new)
                .collect(),
        }
    }

    /// Whether a node with these labels and name matches.
    pub fn matches(&self, labels: &BTreeMap<String, String>, name: &str) -> bool {
        if self.expressions.is_empty() && self.fields.is_empty() {
            return false;
        }
        self.expressions
            .iter()
            .all(|r| r.matches(labels.get(&r.key).map(String::as_str)))
            && self.fields.iter().all(|r| {
                let value = (r.key == "metadata.name").then_some(name);
                r.matches(value)
            })
    }
}

/// `spec.nodeSelector` and the required node affinity: both must hold; any one of the
/// required terms is enough.
#[derive(Clone, Debug)]
pub struct NodeMatcher {
    selector: BTreeMap<String, String>,
    terms: Option<Vec<NodeSelectorTermMatcher>>,
}

impl NodeMatcher {
    /// Compiles; `None` when the pod constrains nothing.
    pub fn new(
        selector: Option<BTreeMap<String, String>>,
        terms: Option<Vec<NodeSelectorTerm>>,
    ) -> Option<Self> {
        let selector = selector.unwrap_or_default();
        if selector.is_empty() && terms.is_none() {
            return None;
        }
        Some(NodeMatcher {
            selector,
            terms: terms.map(|t| t.iter().map(NodeSelectorTermMatcher::new).collect()),
        })
    }

    /// Whether a node matches.
    pub fn matches(&self, labels: &BTreeMap<String, String>, name: &str) -> bool {
        self.selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self
                .terms
                .as_ref()
                .is_none_or(|terms| terms.iter().any(|t| t.matches(labels, name)))
    }
}

/// Whether a toleration tolerates a taint (upstream's `Toleration.ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

/// Whether any of the tolerations tolerates the taint.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// A node as the scheduler sees it, with the pods on it (bound or assumed).
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The node's name.
    pub name: String,
    /// The node itself.
    pub node: Arc<Node>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Taints.
    pub taints: Vec<Taint>,
    /// `spec.unschedulable`.
    pub unschedulable: bool,
    /// What the node offers to pods.
    pub allocatable: Resources,
    /// What its pods request.
    pub requested: Resources,
    /// CPU and memory its pods request, missing requests counted as defaults.
    pub non_zero_requested: (i64, i64),
    /// The pods on the node.
    pub pods: Vec<Arc<PodInfo>>,
    /// Host ports in use.
    pub used_ports: Vec<HostPort>,
    /// Images present, by every name, with their sizes.
    pub images: HashMap<String, i64>,
    /// How many of its pods have pod affinity or anti-affinity terms.
    pub pods_with_affinity: usize,
    /// How many of its pods have required anti-affinity terms.
    pub pods_with_required_anti_affinity: usize,
}

impl NodeInfo {
    /// The node, with no pods yet.
    pub fn new(node: Arc<Node>) -> Self {
        let mut info = NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            node: node.clone(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            unschedulable: false,
            allocatable: Resources::default(),
            requested: Resources::default(),
            non_zero_requested: (0, 0),
            pods: Vec::new(),
            used_ports: Vec::new(),
            images: HashMap::new(),
            pods_with_affinity: 0,
            pods_with_required_anti_affinity: 0,
        };
        info.set_node(node);
        info
    }

    /// Replaces the node object, keeping the pods.
    pub fn set_node(&mut self, node: Arc<Node>) {
        let spec = node.spec.clone().unwrap_or_default();
        let status = node.status.clone().unwrap_or_default();
        self.labels = node.metadata.labels.clone().unwrap_or_default();
        self.taints = spec.taints.unwrap_or_default();
        self.unschedulable = spec.unschedulable.unwrap_or(false);
        // Allocatable falls back to capacity, as upstream's node defaulting does.
        let allocatable = status.allocatable.as_ref().or(status.capacity.as_ref());
        self.allocatable = allocatable.map(Resources::from_list).unwrap_or_default();
        self.images = status
            .images
            .unwrap_or_default()
            .into_iter()
            .flat_map(|image| {
                let size = image.size_bytes.unwrap_or(0);
                image
                    .names
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |n| (normalize_image(&n), size))
            })
            .collect();
        self.node = node;
    }

    /// Adds a pod's requests and ports.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.non_zero_requested.0 += pod.non_zero.0;
        self.non_zero_requested.1 += pod.non_zero.1;
        self.used_ports.extend(pod.host_ports.iter().cloned());
        if pod.has_affinity() {
            self.pods_with_affinity += 1;
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity += 1;
        }
        self.pods.push(pod);
    }

    /// Removes the pod with this key; returns it if it was there.
    pub fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let index = self.pods.iter().position(|p| p.key == key)?;
        let pod = self.pods.swap_remove(index);
        self.requested.sub(&pod.requests);
        self.non_zero_requested.0 -= pod.non_zero.0;
        self.non_zero_requested.1 -= pod.non_zero.1;
        for port in &pod.host_ports {
            if let Some(i) = self.used_ports.iter().position(|p| p == port) {
                self.used_ports.swap_remove(i);
            }
        }
        if pod.has_affinity() {
            self.pods_with_affinity -= 1;
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity -= 1;
        }
        Some(pod)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(node: Option<&str>) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "a"}},
            "spec": {
                "nodeName": node,
                "containers": [{"name": "c", "image": "i",
                    "resources": {"requests": {"cpu": "100m"}}}],
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "volumes": [
                    {"name": "disk", "gcePersistentDisk": {"pdName": "d"}},
                    {"name": "tmp", "emptyDir": {}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": "c"}}
                ]
            },
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_placed_pod_keeps_what_is_read_of_placed_pods_only() {
        let info = PodInfo::new(pod(Some("n1")));
        // Compiled before the pod is slimmed.
        assert_eq!(info.requests.milli_cpu, 100);
        assert_eq!(info.tolerations.len(), 1);
        assert_eq!(info.images, ["i:latest"]);
        assert_eq!(info.pvc_claims().collect::<Vec<_>>(), ["c"]);
        assert!(!info.is_terminal());
        let spec = info.pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        assert!(spec.containers.is_empty());
        let volumes: Vec<_> = spec.volumes.iter().flatten().map(|v| &v.name).collect();
        assert_eq!(volumes, ["disk"]);
        let status = info.pod.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(status.pod_ip.is_none() && status.conditions.is_none());
        assert_eq!(info.pod.metadata.uid.as_deref(), Some("u"));
    }

    #[test]
    fn a_waiting_pod_keeps_its_whole_spec() {
        let info = PodInfo::new(pod(None));
        let spec = info.pod.spec.as_ref().unwrap();
        assert_eq!(spec.containers.len(), 1);
        assert_eq!(spec.volumes.as_ref().map(Vec::len), Some(3));
        assert_eq!(spec.tolerations.as_ref().map(Vec::len), Some(1));
    }
}
