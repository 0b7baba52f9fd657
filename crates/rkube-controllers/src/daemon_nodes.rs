//! The DaemonSet controller's pure decisions: which nodes should run a daemon pod (node
//! name, nodeSelector, required node affinity, taints against tolerations, including the
//! ones every daemon pod gets), and what to create or delete on each node to converge and to
//! roll an update out within maxUnavailable / maxSurge.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The tolerations upstream adds to every DaemonSet pod, so that daemons keep running on
/// nodes that are not ready, unreachable, under pressure or cordoned; hostNetwork pods also
/// tolerate an unavailable network.
pub fn default_tolerations(host_network: bool) -> Vec<Toleration> {
    let toleration = |key: &str, effect: &str| Toleration {
        key: Some(key.to_owned()),
        operator: Some("Exists".to_owned()),
        effect: Some(effect.to_owned()),
        value: None,
        toleration_seconds: None,
    };
    let mut out = vec![
        toleration("node.kubernetes.io/not-ready", "NoExecute"),
        toleration("node.kubernetes.io/unreachable", "NoExecute"),
        toleration("node.kubernetes.io/disk-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/memory-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/pid-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        out.push(toleration(
            "node.kubernetes.io/network-unavailable",
            "NoSchedule",
        ));
    }
    out
}

/// Adds the default tolerations a pod spec lacks (same key and effect).
pub fn add_default_tolerations(spec: &mut PodSpec) {
    let host_network = spec.host_network == Some(true);
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for default in default_tolerations(host_network) {
        let present = tolerations
            .iter()
            .any(|t| t.key == default.key && t.effect == default.effect);
        if !present {
            tolerations.push(default);
        }
    }
}

/// Whether `toleration` tolerates `taint`, as upstream's `ToleratesTaint`.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref() {
        Some("Exists") => true,
        _ => {
            !key.is_empty()
                && toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
    }
}

fn requirement_matches(req: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if req.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// Whether a node selector term matches the node; an empty term matches nothing.
fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.metadata.labels.clone().unwrap_or_default();
    expressions
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let value = (r.key == "metadata.name")
                .then_some(node.metadata.name.as_deref())
                .flatten();
            requirement_matches(r, value)
        })
}

/// Where a node stands for a DaemonSet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Eligibility {
    /// A daemon pod should run there (and be created if missing).
    pub should_run: bool,
    /// A daemon pod already there may stay (only NoSchedule taints stand in the way).
    pub should_continue_running: bool,
}

/// Whether pods of `spec` (with the default tolerations already added) belong on `node`.
pub fn eligibility(spec: &PodSpec, node: &Node) -> Eligibility {
    let name = node.metadata.name.as_deref().unwrap_or("");
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let name_ok = spec
        .node_name
        .as_deref()
        .is_none_or(|n| n.is_empty() || n == name);
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let affinity_ok = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .is_none_or(|required| {
            required
                .node_selector_terms
                .iter()
                .any(|term| term_matches(term, node))
        });
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let untolerated = |effect: &str| {
        node.spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .filter(|t| t.effect == effect)
            .any(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
    };
    let placed = name_ok && selector_ok && affinity_ok;
    let no_execute_ok = !untolerated("NoExecute");
    Eligibility {
        should_run: placed && no_execute_ok && !untolerated("NoSchedule"),
        should_continue_running: placed && no_execute_ok,
    }
}

/// Resolves an int-or-percent against `total`, rounding up as upstream does for DaemonSets.
pub fn scaled(value: Option<&IntOrString>, total: i32, default: i32) -> i32 {
    match value {
        None => default,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => {
            match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
                Some(percent) => {
                    let scaled = (i64::from(total) * percent + 99).div_euclid(100);
                    i32::try_from(scaled).unwrap_or(i32::MAX)
                }
                None => s.parse().unwrap_or(default),
            }
        }
    }
}

/// A daemon pod as the rollout sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DaemonPod {
    /// Its name.
    pub name: String,
    /// Made from the current template.
    pub updated: bool,
    /// Ready for minReadySeconds.
    pub available: bool,
    /// Failed: to be replaced.
    pub failed: bool,
}

/// A node and the live (not deleting) daemon pods on it, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeDaemons {
    /// Where the node stands.
    pub eligibility: Eligibility,
    /// Its daemon pods.
    pub pods: Vec<DaemonPod>,
}

/// How updates roll out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rollout {
    /// Pods are replaced only when the user deletes them.
    OnDelete,
    /// At most `max_unavailable` nodes without an available pod, or `max_surge` nodes with
    /// an extra new pod beside the old one.
    RollingUpdate {
        /// maxUnavailable, resolved.
        max_unavailable: i32,
        /// maxSurge, resolved.
        max_surge: i32,
    },
}

/// One thing to do.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DaemonStep {
    /// Create a daemon pod (from the current template) on this node.
    Create(String),
    /// Delete this pod.
    Delete(String),
}

/// What to do on every node, as upstream's `manage` then `rollingUpdate` decide it.
pub fn daemon_steps(nodes: &BTreeMap<String, NodeDaemons>, rollout: Rollout) -> Vec<DaemonStep> {
    let mut steps = Vec::new();
    let surge = matches!(rollout, Rollout::RollingUpdate { max_surge, .. } if max_surge > 0);
    let mut settled: Vec<(&String, &NodeDaemons)> = Vec::new();
    for (node, state) in nodes {
        let (failed, live): (Vec<&DaemonPod>, Vec<&DaemonPod>) =
            state.pods.iter().partition(|p| p.failed);
        steps.extend(failed.iter().map(|p| DaemonStep::Delete(p.name.clone())));
        let e = state.eligibility;
        if !e.should_run {
            if !e.should_continue_running {
                steps.extend(live.iter().map(|p| DaemonStep::Delete(p.name.clone())));
            }
            continue;
        }
        if live.is_empty() {
            steps.push(DaemonStep::Create(node.clone()));
            continue;
        }
        let surging = surge && live.len() == 2 && live.iter().filter(|p| p.updated).count() == 1;
        if live.len() > 1 && !surging {
            // Duplicates: the oldest stays.
            steps.extend(live[1..].iter().map(|p| DaemonStep::Delete(p.name.clone())));
            continue;
        }
        if failed.is_empty() {
            settled.push((node, state));
        }
    }
    let Rollout::RollingUpdate {
        max_unavailable,
        max_surge,
    } = rollout
    else {
        return steps;
    };
    let mut unavailable = 0;
    let mut replace_now = Vec::new();
    let mut candidates = Vec::new();
    let mut surged = 0;
    for (node, state) in &settled {
        let new = state.pods.iter().find(|p| p.updated);
        let old = state.pods.iter().find(|p| !p.updated);
        match (new, old) {
            (Some(new), Some(old)) => {
                // A surge pod ready: the old one goes.
                if new.available {
                    steps.push(DaemonStep::Delete(old.name.clone()));
                } else {
                    surged += 1;
                }
            }
            (Some(new), None) => {
                if !new.available {
                    unavailable += 1;
                }
            }
            (None, Some(old)) if max_surge > 0 => {
                if !old.available {
                    steps.push(DaemonStep::Create((*node).clone()));
                } else {
                    candidates.push(DaemonStep::Create((*node).clone()));
                }
            }
            (None, Some(old)) => {
                if !old.available {
                    replace_now.push(DaemonStep::Delete(old.name.clone()));
                } else {
                    candidates.push(DaemonStep::Delete(old.name.clone()));
                }
            }
            (None, None) => {}
        }
    }
    // Nodes still to get a pod count as unavailable.
    unavailable += i32::try_from(
        steps
            .iter()
            .filter(|s| matches!(s, DaemonStep::Create(_)))
            .count(),
    )
    .unwrap_or(0);
    let budget = if max_surge > 0 {
        max_surge - surged
    } else {
        max_unavailable - unavailable - i32::try_from(replace_now.len()).unwrap_or(0)
    };
    steps.extend(replace_now);
    steps.extend(
        candidates
            .into_iter()
            .take(usize::try_from(budget.max(0)).unwrap_or(0)),
    );
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(value: serde_json::Value) -> Node {
        serde_json::from_value(value).unwrap_or_default()
    }

    fn spec(value: serde_json::Value) -> PodSpec {
        let mut spec: PodSpec = serde_json::from_value(value).unwrap_or_default();
        add_default_tolerations(&mut spec);
        spec
    }

    #[test]
    fn node_selector_and_required_affinity_choose_nodes() {
        let linux = node(
            serde_json::json!({"metadata": {"name": "a", "labels": {"os": "linux", "gen": "3"}}}),
        );
        let other =
            node(serde_json::json!({"metadata": {"name": "b", "labels": {"os": "windows"}}}));
        let by_label = spec(serde_json::json!({"containers": [], "nodeSelector": {"os": "linux"}}));
        assert!(eligibility(&by_label, &linux).should_run);
        assert!(!eligibility(&by_label, &other).should_run);
        let by_affinity = spec(
            serde_json::json!({"containers": [], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "gen", "operator": "Gt", "values": ["2"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}
            ]}}}}),
        );
        assert!(eligibility(&by_affinity, &linux).should_run);
        assert!(
            eligibility(&by_affinity, &other).should_run,
            "terms are ORed"
        );
        let none = node(serde_json::json!({"metadata": {"name": "c"}}));
        assert!(!eligibility(&by_affinity, &none).should_run);
    }

    #[test]
    fn taints_keep_daemons_off_unless_tolerated_and_defaults_tolerate_node_conditions() {
        let plain = spec(serde_json::json!({"containers": []}));
        let cordoned = node(
            serde_json::json!({"metadata": {"name": "a"}, "spec": {"taints": [
                {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
                {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}
            ]}}),
        );
        assert!(eligibility(&plain, &cordoned).should_run);
        let dedicated = node(
            serde_json::json!({"metadata": {"name": "b"}, "spec": {"taints": [
                {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
            ]}}),
        );
        let e = eligibility(&plain, &dedicated);
        assert_eq!((e.should_run, e.should_continue_running), (false, true));
        let evicting = node(
            serde_json::json!({"metadata": {"name": "c"}, "spec": {"taints": [
                {"key": "dedicated", "value": "gpu", "effect": "NoExecute"}
            ]}}),
        );
        let e = eligibility(&plain, &evicting);
        assert_eq!((e.should_run, e.should_continue_running), (false, false));
        let tolerant = spec(serde_json::json!({"containers": [], "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "gpu"}
        ]}));
        assert!(eligibility(&tolerant, &dedicated).should_run);
        assert!(eligibility(&tolerant, &evicting).should_run);
        // The network-unavailable toleration is only for hostNetwork pods.
        let no_network = node(
            serde_json::json!({"metadata": {"name": "d"}, "spec": {"taints": [
                {"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}
            ]}}),
        );
        assert!(!eligibility(&plain, &no_network).should_run);
        let host = spec(serde_json::json!({"containers": [], "hostNetwork": true}));
        assert!(eligibility(&host, &no_network).should_run);
    }

    #[test]
    fn percentages_round_up() {
        assert_eq!(scaled(Some(&IntOrString::String("25%".into())), 5, 1), 2);
        assert_eq!(scaled(Some(&IntOrString::Int(3)), 5, 1), 3);
        assert_eq!(scaled(None, 5, 1), 1);
    }

    fn pod(name: &str, updated: bool, available: bool) -> DaemonPod {
        DaemonPod {
            name: name.to_owned(),
            updated,
            available,
            failed: false,
        }
    }

    fn on(pods: Vec<DaemonPod>) -> NodeDaemons {
        NodeDaemons {
            eligibility: Eligibility {
                should_run: true,
                should_continue_running: true,
            },
            pods,
        }
    }

    #[test]
    fn missing_pods_are_created_and_ineligible_nodes_emptied() {
        let mut nodes = BTreeMap::new();
        nodes.insert("a".to_owned(), on(vec![]));
        nodes.insert(
            "b".to_owned(),
            NodeDaemons {
                eligibility: Eligibility::default(),
                pods: vec![pod("x", true, true)],
            },
        );
        nodes.insert(
            "c".to_owned(),
            on(vec![pod("y", true, true), pod("z", true, true)]),
        );
        let steps = daemon_steps(&nodes, Rollout::OnDelete);
        assert_eq!(
            steps,
            vec![
                DaemonStep::Create("a".into()),
                DaemonStep::Delete("x".into()),
                DaemonStep::Delete("z".into())
            ]
        );
    }

    #[test]
    fn rolling_update_replaces_at_most_max_unavailable_at_a_time() {
        let nodes: BTreeMap<String, NodeDaemons> = (0..4)
            .map(|i| {
                (
                    format!("n{i}"),
                    on(vec![pod(&format!("old{i}"), false, true)]),
                )
            })
            .collect();
        let rollout = Rollout::RollingUpdate {
            max_unavailable: 1,
            max_surge: 0,
        };
        assert_eq!(
            daemon_steps(&nodes, rollout),
            vec![DaemonStep::Delete("old0".into())]
        );
        // While n0's new pod is not available, nothing else goes.
        let mut next = nodes.clone();
        next.insert("n0".into(), on(vec![pod("new0", true, false)]));
        assert_eq!(daemon_steps(&next, rollout), vec![]);
        next.insert("n0".into(), on(vec![pod("new0", true, true)]));
        assert_eq!(
            daemon_steps(&next, rollout),
            vec![DaemonStep::Delete("old1".into())]
        );
        assert_eq!(daemon_steps(&next, Rollout::OnDelete), vec![]);
    }

    #[test]
    fn surge_starts_the_new_pod_before_the_old_one_goes() {
        let nodes: BTreeMap<String, NodeDaemons> = (0..3)
            .map(|i| {
                (
                    format!("n{i}"),
                    on(vec![pod(&format!("old{i}"), false, true)]),
                )
            })
            .collect();
        let rollout = Rollout::RollingUpdate {
            max_unavailable: 0,
            max_surge: 1,
        };
        assert_eq!(
            daemon_steps(&nodes, rollout),
            vec![DaemonStep::Create("n0".into())]
        );
        let mut next = nodes.clone();
        next.insert(
            "n0".into(),
            on(vec![pod("old0", false, true), pod("new0", true, false)]),
        );
        assert_eq!(daemon_steps(&next, rollout), vec![]);
        next.insert(
            "n0".into(),
            on(vec![pod("old0", false, true), pod("new0", true, true)]),
        );
        assert_eq!(
            daemon_steps(&next, rollout),
            vec![
                DaemonStep::Delete("old0".into()),
                DaemonStep::Create("n1".into())
            ]
        );
    }
}
