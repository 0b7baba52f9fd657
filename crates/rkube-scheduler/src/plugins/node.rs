//! Plugins that look at one node at a time: NodeName, NodePorts, NodeUnschedulable,
//! NodeAffinity, TaintToleration and ImageLocality.

use k8s_openapi::api::core::v1::Taint;

use crate::cache::Snapshot;
use crate::framework::{
    CycleState, Failure, MAX_NODE_SCORE, Plugin, PreFilter, default_normalize, events,
};
use crate::types::{NodeInfo, PodInfo, tolerated};

/// NodeName: a pod that names a node runs only there.
pub struct NodeName;

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        "NodeName"
    }
    fn events(&self) -> u32 {
        events::NODE_ADD
    }
    fn filters(&self) -> bool {
        true
    }
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Failure> {
        match &pod.node_name {
            Some(name) if *name != node.name => Err(Failure::unresolvable(
                "NodeName",
                "node(s) didn't match the requested node name",
            )),
            _ => Ok(()),
        }
    }
}

/// NodePorts: host ports cannot be claimed twice on one node.
pub struct NodePorts;

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        "NodePorts"
    }
    fn events(&self) -> u32 {
        events::NODE_ADD | events::POD_DELETE
    }
    fn filters(&self) -> bool {
        true
    }
    fn pre_filter(
        &self,
        _: &mut CycleState,
        pod: &PodInfo,
        _: &Snapshot,
    ) -> Result<PreFilter, Failure> {
        Ok(if pod.host_ports.is_empty() {
            PreFilter::Skip
        } else {
            PreFilter::Continue
        })
    }
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Failure> {
        let conflict = pod
            .host_ports
            .iter()
            .any(|want| node.used_ports.iter().any(|used| used.conflicts(want)));
        if conflict {
            Err(Failure::unschedulable(
                "NodePorts",
                "node(s) didn't have free ports for the requested pod ports",
            ))
        } else {
            Ok(())
        }
    }
}

/// NodeUnschedulable: cordoned nodes take only pods that tolerate the
/// `node.kubernetes.io/unschedulable` taint.
pub struct NodeUnschedulable;

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        "NodeUnschedulable"
    }
    fn events(&self) -> u32 {
        events::NODE_ADD | events::NODE_TAINT
    }
    fn filters(&self) -> bool {
        true
    }
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Failure> {
        if !node.unschedulable {
            return Ok(());
        }
        let taint = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if tolerated(&pod.tolerations, &taint) {
            Ok(())
        } else {
            Err(Failure::unresolvable(
                "NodeUnschedulable",
                "node(s) were unschedulable",
            ))
        }
    }
}

/// NodeAffinity: `nodeSelector` and required node affinity filter; preferred terms score.
pub struct NodeAffinity;

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }
    fn events(&self) -> u32 {
        events::NODE_ADD | events::NODE_LABEL
    }
    fn filters(&self) -> bool {
        true
    }
    fn scores(&self) -> bool {
        true
    }
    fn pre_filter(
        &self,
        _: &mut CycleState,
        pod: &PodInfo,
        _: &Snapshot,
    ) -> Result<PreFilter, Failure> {
        Ok(if pod.node_selector.is_none() {
            PreFilter::Skip
        } else {
            PreFilter::Continue
        })
    }
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Failure> {
        match &pod.node_selector {
            Some(m) if !m.matches(&node.labels, &node.name) => Err(Failure::unresolvable(
                "NodeAffinity",
                "node(s) didn't match Pod's node affinity/selector",
            )),
            _ => Ok(()),
        }
    }
    fn pre_score(&self, _: &mut CycleState, pod: &PodInfo, _: &Snapshot, _: &[usize]) -> bool {
        !pod.preferred_node_terms.is_empty()
    }
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        pod.preferred_node_terms
            .iter()
            .filter(|(_, term)| term.matches(&node.labels, &node.name))
            .map(|(w, _)| *w)
            .sum()
    }
    fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        default_normalize(MAX_NODE_SCORE, false, scores);
    }
}

/// TaintToleration: NoSchedule and NoExecute taints filter; PreferNoSchedule taints score.
pub struct TaintToleration;

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }
    fn events(&self) -> u32 {
        events::NODE_ADD | events::NODE_TAINT
    }
    fn filters(&self) -> bool {
        true
    }
    fn scores(&self) -> bool {
        true
    }
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Failure> {
        let untolerated = node.taints.iter().find(|t| {
            (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(&pod.tolerations, t)
        });
        match untolerated {
            Some(t) => Err(Failure::unresolvable(
                "TaintToleration",
                format!(
                    "node(s) had untolerated taint {{{}: {}}}",
                    t.key,
                    t.value.as_deref().unwrap_or_default()
                ),
            )),
            None => Ok(()),
        }
    }
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        intolerable_preferences(pod, node)
    }
    fn score_nodes(
        &self,
        _: &CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        nodes: &[usize],
        scores: &mut [i64],
    ) {
        for (slot, index) in scores.iter_mut().zip(nodes) {
            let node = &snapshot.nodes[*index];
            *slot = if node.taints.is_empty() {
                0
            } else {
                intolerable_preferences(pod, node)
            };
        }
    }
    fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        default_normalize(MAX_NODE_SCORE, true, scores);
    }
}

/// How many of the node's PreferNoSchedule taints the pod does not tolerate.
fn intolerable_preferences(pod: &PodInfo, node: &NodeInfo) -> i64 {
    node.taints
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule")
        .filter(|t| {
            !pod.tolerations
                .iter()
                .filter(|tol| {
                    tol.effect
                        .as_deref()
                        .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
                })
                .any(|tol| crate::types::tolerates(tol, t))
        })
        .count() as i64
}

/// ImageLocality: prefer nodes that already have the pod's images, weighed by how widely
/// each image has spread (so one node with a popular image does not attract everything).
pub struct ImageLocality;

const MB: i64 = 1024 * 1024;
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// The spread-weighted sizes of the pod's images present on the node.
#[derive(Clone)]
struct ImageState {
    total_nodes: usize,
    spread: Vec<usize>,
}

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        "ImageLocality"
    }
    fn scores(&self) -> bool {
        true
    }
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        _: &[usize],
    ) -> bool {
        let spread: Vec<usize> = pod
            .images
            .iter()
            .map(|i| snapshot.image_spread(i))
            .collect();
        if spread.iter().all(|n| *n == 0) {
            return false;
        }
        state.write(
            "ImageLocality",
            ImageState {
                total_nodes: snapshot.nodes.len(),
                spread,
            },
        );
        true
    }
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(s) = state.read::<ImageState>("ImageLocality") else {
            return 0;
        };
        image_score(pod, node, &s.spread, s.total_nodes)
    }
}

fn image_score(pod: &PodInfo, node: &NodeInfo, spread: &[usize], total_nodes: usize) -> i64 {
    let mut sum = 0i64;
    for (image, nodes) in pod.images.iter().zip(spread) {
        if let Some(size) = node.images.get(image) {
            let ratio = *nodes as f64 / total_nodes.max(1) as f64;
            sum += (*size as f64 * ratio) as i64;
        }
    }
    let max = MAX_CONTAINER_THRESHOLD * pod.images.len().max(1) as i64;
    let sum = sum.clamp(MIN_THRESHOLD, max);
    MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::{node_info, pod_json, with_node};
    use serde_json::json;

    fn reasons(result: Result<(), Failure>) -> Option<String> {
        result.err().map(|f| f.reasons.join(", "))
    }

    #[test]
    fn node_name_filters_other_nodes() {
        let pod = pod_json(json!({"nodeName": "n1"}));
        let cases = [
            ("n1", None),
            ("n2", Some("node(s) didn't match the requested node name")),
        ];
        for (node, want) in cases {
            let got =
                reasons(NodeName.filter(&CycleState::default(), &pod, &with_node(node, json!({}))));
            assert_eq!(got.as_deref(), want, "{node}");
        }
    }

    #[test]
    fn node_ports_conflict_on_the_same_port_and_protocol() {
        let used = PodInfo::new(
            serde_json::from_value(json!({"metadata": {"name": "used", "namespace": "default"},
                "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}}))
                .unwrap(),
        );
        let mut node = node_info("4", "8Gi", &[]);
        node.add_pod(std::sync::Arc::new(used));
        let cases = [
            (json!({"containerPort": 80, "hostPort": 8080}), true),
            (
                json!({"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}),
                false,
            ),
            (json!({"containerPort": 80, "hostPort": 8081}), false),
            (
                json!({"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.1"}),
                true,
            ),
        ];
        for (port, conflict) in cases {
            let pod = pod_json(json!({"containers": [{"name": "c", "ports": [port.clone()]}]}));
            let got = NodePorts
                .filter(&CycleState::default(), &pod, &node)
                .is_err();
            assert_eq!(got, conflict, "{port}");
        }
    }

    #[test]
    fn unschedulable_nodes_take_only_tolerating_pods() {
        let node = with_node("n", json!({"spec": {"unschedulable": true}}));
        let cases = [
            (json!({}), Some("node(s) were unschedulable")),
            (
                json!({"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}),
                None,
            ),
        ];
        for (spec, want) in cases {
            let got = reasons(NodeUnschedulable.filter(
                &CycleState::default(),
                &pod_json(spec.clone()),
                &node,
            ));
            assert_eq!(got.as_deref(), want, "{spec}");
        }
    }

    #[test]
    fn node_affinity_filters_on_selector_and_required_terms() {
        let node = with_node(
            "n1",
            json!({"metadata": {"labels": {"zone": "a", "size": "8"}}}),
        );
        let term = |expr: serde_json::Value| {
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchExpressions": [expr]}]}}}})
        };
        let cases = [
            ("no constraint", json!({}), true),
            (
                "selector matches",
                json!({"nodeSelector": {"zone": "a"}}),
                true,
            ),
            (
                "selector differs",
                json!({"nodeSelector": {"zone": "b"}}),
                false,
            ),
            (
                "In",
                term(json!({"key": "zone", "operator": "In", "values": ["a", "b"]})),
                true,
            ),
            (
                "NotIn",
                term(json!({"key": "zone", "operator": "NotIn", "values": ["a"]})),
                false,
            ),
            (
                "Exists",
                term(json!({"key": "size", "operator": "Exists"})),
                true,
            ),
            (
                "DoesNotExist",
                term(json!({"key": "gpu", "operator": "DoesNotExist"})),
                true,
            ),
            (
                "Gt",
                term(json!({"key": "size", "operator": "Gt", "values": ["4"]})),
                true,
            ),
            (
                "Lt",
                term(json!({"key": "size", "operator": "Lt", "values": ["4"]})),
                false,
            ),
            (
                "matchFields on the name",
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                    {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}}}),
                true,
            ),
        ];
        for (name, spec, fits) in cases {
            let got = NodeAffinity.filter(&CycleState::default(), &pod_json(spec), &node);
            assert_eq!(got.is_ok(), fits, "{name}");
            if let Err(f) = got {
                assert_eq!(
                    f.reasons,
                    vec!["node(s) didn't match Pod's node affinity/selector"]
                );
            }
        }
    }

    #[test]
    fn node_affinity_scores_preferred_terms_by_weight() {
        let pod = pod_json(
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 2, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
            {"weight": 5, "preference": {"matchExpressions": [{"key": "ssd", "operator": "Exists"}]}}]}}}),
        );
        let nodes = [
            with_node("a", json!({"metadata": {"labels": {"zone": "a"}}})),
            with_node(
                "b",
                json!({"metadata": {"labels": {"zone": "a", "ssd": "1"}}}),
            ),
            with_node("c", json!({})),
        ];
        let mut scores: Vec<i64> = nodes
            .iter()
            .map(|n| NodeAffinity.score(&CycleState::default(), &pod, n))
            .collect();
        assert_eq!(scores, vec![2, 7, 0]);
        NodeAffinity.normalize(&CycleState::default(), &pod, &mut scores);
        assert_eq!(scores, vec![28, 100, 0]);
    }

    #[test]
    fn taints_filter_unless_tolerated() {
        let node = with_node(
            "n",
            json!({"spec": {"taints": [
            {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
            {"key": "soft", "value": "x", "effect": "PreferNoSchedule"}]}}),
        );
        let cases = [
            (
                json!({}),
                Some("node(s) had untolerated taint {dedicated: gpu}"),
            ),
            (
                json!({"tolerations": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}),
                None,
            ),
            (
                json!({"tolerations": [{"key": "dedicated", "value": "cpu", "effect": "NoSchedule"}]}),
                Some("node(s) had untolerated taint {dedicated: gpu}"),
            ),
            (
                json!({"tolerations": [{"key": "dedicated", "operator": "Exists"}]}),
                None,
            ),
            (json!({"tolerations": [{"operator": "Exists"}]}), None),
            (
                json!({"tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]}),
                Some("node(s) had untolerated taint {dedicated: gpu}"),
            ),
        ];
        for (spec, want) in cases {
            let got = reasons(TaintToleration.filter(
                &CycleState::default(),
                &pod_json(spec.clone()),
                &node,
            ));
            assert_eq!(got.as_deref(), want, "{spec}");
        }
    }

    #[test]
    fn prefer_no_schedule_taints_lower_the_score() {
        let nodes = [
            with_node(
                "a",
                json!({"spec": {"taints": [{"key": "k", "value": "v", "effect": "PreferNoSchedule"}]}}),
            ),
            with_node("b", json!({})),
        ];
        let pod = pod_json(json!({}));
        let mut scores: Vec<i64> = nodes
            .iter()
            .map(|n| TaintToleration.score(&CycleState::default(), &pod, n))
            .collect();
        TaintToleration.normalize(&CycleState::default(), &pod, &mut scores);
        assert_eq!(scores, vec![0, 100]);
        // A pass over the nodes scores each as one call does, tolerated taints included.
        let mut snapshot = Snapshot::new();
        for node in &nodes {
            snapshot.upsert_node((*node.node).clone());
        }
        let tolerant = pod_json(json!({"tolerations": [
            {"key": "k", "operator": "Exists", "effect": "PreferNoSchedule"}]}));
        for (pod, want) in [(&pod, [1, 0]), (&tolerant, [0, 0])] {
            let indexes: Vec<usize> = ["a", "b"]
                .iter()
                .map(|n| snapshot.node_index(n).unwrap())
                .collect();
            let mut scores = [-1; 2];
            let state = CycleState::default();
            TaintToleration.score_nodes(&state, pod, &snapshot, &indexes, &mut scores);
            assert_eq!(scores, want);
        }
    }

    #[test]
    fn image_locality_scores_present_images_by_size_and_spread() {
        let pod = pod_json(json!({"containers": [{"name": "c", "image": "big"}]}));
        let with_image = |mb: i64| {
            with_node(
                "n",
                json!({"status": {"images": [{"names": ["big:latest"], "sizeBytes": mb * MB}]}}),
            )
        };
        let cases = [
            // 523 MiB on every node: (523 - 23) / (1000 - 23) of 100.
            (523, 1, 1, 51),
            // Present on half of the nodes: half the size counts.
            (1046, 1, 2, 51),
            (10, 1, 1, 0),
            (5000, 1, 1, 100),
        ];
        for (mb, spread, total, want) in cases {
            assert_eq!(
                image_score(&pod, &with_image(mb), &[spread], total),
                want,
                "{mb} MiB"
            );
        }
        assert_eq!(image_score(&pod, &with_node("n", json!({})), &[1], 1), 0);
    }
}
