//! PodTopologySpread: `DoNotSchedule` constraints filter nodes whose domain would exceed
//! `maxSkew` over the least populated domain (with `minDomains`); `ScheduleAnyway`
//! constraints score nodes by how many matching pods their domains already hold.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Taint;

use crate::cache::Snapshot;
use crate::framework::{CycleState, Failure, MAX_NODE_SCORE, Plugin, PreFilter, events};
use crate::types::{NodeInfo, PodInfo, SpreadConstraint, tolerated};

const NAME: &str = "PodTopologySpread";
const HOSTNAME: &str = "kubernetes.io/hostname";

/// PodTopologySpread.
#[derive(Default)]
pub struct PodTopologySpread;

/// Whether a node counts for the pod's constraints: it passes the pod's node affinity
/// (unless the policy ignores it) and, if the policy honours taints, its taints.
fn eligible(pod: &PodInfo, c: &SpreadConstraint, node: &NodeInfo) -> bool {
    if c.honor_node_affinity
        && let Some(m) = &pod.node_selector
        && !m.matches(&node.labels, &node.name)
    {
        return false;
    }
    if c.honor_taints {
        let untolerated = |t: &Taint| {
            (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(&pod.tolerations, t)
        };
        if node.taints.iter().any(untolerated) {
            return false;
        }
    }
    true
}

fn counts_pod(pod: &PodInfo, c: &SpreadConstraint, other: &PodInfo) -> bool {
    other.namespace == pod.namespace && !other.terminating && c.selector.matches(&other.labels)
}

fn has_all_keys(constraints: &[&SpreadConstraint], node: &NodeInfo) -> bool {
    constraints
        .iter()
        .all(|c| node.labels.contains_key(&c.topology_key))
}

/// Per hard constraint: matching pods per domain value, and the domains' minimum.
#[derive(Clone, Default)]
struct FilterState {
    /// Indexes into the pod's constraints (hard ones only).
    constraints: Vec<usize>,
    counts: Vec<HashMap<String, i64>>,
}

impl FilterState {
    fn min(&self, i: usize, min_domains: i32) -> i64 {
        let counts = &self.counts[i];
        if (counts.len() as i32) < min_domains {
            return 0;
        }
        counts.values().copied().min().unwrap_or(0)
    }

    fn update(&mut self, pod: &PodInfo, other: &PodInfo, node: &NodeInfo, by: i64) {
        let hard: Vec<&SpreadConstraint> =
            self.constraints.iter().map(|i| &pod.spread[*i]).collect();
        if !has_all_keys(&hard, node) {
            return;
        }
        for (slot, c) in hard.iter().enumerate() {
            if !eligible(pod, c, node) || !counts_pod(pod, c, other) {
                continue;
            }
            if let Some(value) = node.labels.get(&c.topology_key) {
                *self.counts[slot].entry(value.clone()).or_default() += by;
            }
        }
    }
}

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> u32 {
        events::POD_ADD
            | events::POD_DELETE
            | events::NODE_ADD
            | events::NODE_LABEL
            | events::NODE_TAINT
    }
    fn filters(&self) -> bool {
        true
    }
    fn scores(&self) -> bool {
        true
    }
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> Result<PreFilter, Failure> {
        let constraints: Vec<usize> = (0..pod.spread.len())
            .filter(|i| pod.spread[*i].hard)
            .collect();
        if constraints.is_empty() {
            return Ok(PreFilter::Skip);
        }
        let hard: Vec<&SpreadConstraint> = constraints.iter().map(|i| &pod.spread[*i]).collect();
        let mut s = FilterState {
            counts: vec![HashMap::new(); constraints.len()],
            constraints,
        };
        for node in &snapshot.nodes {
            if !has_all_keys(&hard, node) {
                continue;
            }
            for (slot, c) in hard.iter().enumerate() {
                if !eligible(pod, c, node) {
                    continue;
                }
                let Some(value) = node.labels.get(&c.topology_key) else {
                    continue;
                };
                let n = node.pods.iter().filter(|p| counts_pod(pod, c, p)).count() as i64;
                *s.counts[slot].entry(value.clone()).or_default() += n;
            }
        }
        state.write(NAME, s);
        Ok(PreFilter::Continue)
    }
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Failure> {
        let Some(s) = state.read::<FilterState>(NAME) else {
            return Ok(());
        };
        for (slot, i) in s.constraints.iter().enumerate() {
            let c = &pod.spread[*i];
            let Some(value) = node.labels.get(&c.topology_key) else {
                return Err(Failure::unresolvable(
                    NAME,
                    "node(s) didn't match pod topology spread constraints (missing required label)",
                ));
            };
            let self_match = i64::from(c.selector.matches(&pod.labels));
            let here = s.counts[slot].get(value).copied().unwrap_or(0);
            let skew = here + self_match - s.min(slot, c.min_domains);
            if skew > i64::from(c.max_skew) {
                return Err(Failure::unschedulable(
                    NAME,
                    "node(s) didn't match pod topology spread constraints",
                ));
            }
        }
        Ok(())
    }
    fn add_pod(&self, state: &mut CycleState, pod: &PodInfo, added: &PodInfo, node: &NodeInfo) {
        if let Some(s) = state.read_mut::<FilterState>(NAME) {
            s.update(pod, added, node, 1);
        }
    }
    fn remove_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        removed: &PodInfo,
        node: &NodeInfo,
    ) {
        if let Some(s) = state.read_mut::<FilterState>(NAME) {
            s.update(pod, removed, node, -1);
        }
    }
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        feasible: &[usize],
    ) -> bool {
        let soft: Vec<&SpreadConstraint> = pod.spread.iter().filter(|c| !c.hard).collect();
        if soft.is_empty() {
            return false;
        }
        let mut counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); soft.len()];
        // Domains among the feasible nodes set each constraint's weight.
        let mut domains: Vec<std::collections::HashSet<&str>> =
            vec![Default::default(); soft.len()];
        for index in feasible {
            let node = &snapshot.nodes[*index];
            if !has_all_keys(&soft, node) {
                continue;
            }
            for (slot, c) in soft.iter().enumerate() {
                if let Some(v) = node.labels.get(&c.topology_key) {
                    domains[slot].insert(v);
                }
            }
        }
        for node in &snapshot.nodes {
            if !has_all_keys(&soft, node) {
                continue;
            }
            for (slot, c) in soft.iter().enumerate() {
                let Some(value) = node.labels.get(&c.topology_key) else {
                    continue;
                };
                if c.topology_key == HOSTNAME && !domains[slot].contains(value.as_str()) {
                    continue;
                }
                if !eligible(pod, c, node) {
                    continue;
                }
                let n = node.pods.iter().filter(|p| counts_pod(pod, c, p)).count() as i64;
                *counts[slot].entry(value.clone()).or_default() += n;
            }
        }
        let weights: Vec<f64> = domains
            .iter()
            .map(|d| ((d.len() + 2) as f64).ln())
            .collect();
        state.write("PodTopologySpread/score", (counts, weights));
        true
    }
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let Some((counts, weights)) =
            state.read::<(Vec<HashMap<String, i64>>, Vec<f64>)>("PodTopologySpread/score")
        else {
            return 0;
        };
        let soft: Vec<&SpreadConstraint> = pod.spread.iter().filter(|c| !c.hard).collect();
        if !has_all_keys(&soft, node) {
            // Nodes without the keys are ignored, and score 0 after normalizing.
            return i64::MIN;
        }
        let mut total = 0.0;
        for (slot, c) in soft.iter().enumerate() {
            let value = node
                .labels
                .get(&c.topology_key)
                .map(String::as_str)
                .unwrap_or_default();
            let n = counts[slot].get(value).copied().unwrap_or(0);
            total += n as f64 * weights[slot] + f64::from(c.max_skew - 1);
        }
        total.round() as i64
    }
    fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        let counted = scores.iter().copied().filter(|s| *s != i64::MIN);
        let (min, max) = counted.fold((i64::MAX, i64::MIN), |(lo, hi), s| (lo.min(s), hi.max(s)));
        for s in scores.iter_mut() {
            *s = if *s == i64::MIN {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *s) / max
            };
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use super::*;
    use crate::testing::{node, pod_json};
    use serde_json::json;

    fn zone_node(name: &str, zone: &str) -> k8s_openapi::api::core::v1::Node {
        let mut n = node(name, "4", "8Gi");
        n.metadata.labels = Some(
            [
                ("zone".to_owned(), zone.to_owned()),
                (HOSTNAME.to_owned(), name.to_owned()),
            ]
            .into(),
        );
        n
    }

    fn spread_pod(name: &str, max_skew: i32, when: &str, min_domains: Option<i32>) -> Arc<PodInfo> {
        let mut c = json!({"maxSkew": max_skew, "topologyKey": "zone", "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": {"app": "web"}}});
        if let Some(m) = min_domains {
            c["minDomains"] = json!(m);
        }
        Arc::new(pod_json(
            json!({"metadata": {"name": name, "labels": {"app": "web"}},
            "topologySpreadConstraints": [c]}),
        ))
    }

    /// Zones a (2 nodes), b, c; `web` pods: a has 2, b has 1, c has 0.
    fn cluster() -> Snapshot {
        let mut s = Snapshot::new();
        for (n, z) in [("a1", "a"), ("a2", "a"), ("b1", "b"), ("c1", "c")] {
            s.upsert_node(zone_node(n, z));
        }
        s.add_pod(spread_pod("w1", 1, "DoNotSchedule", None), "a1", false);
        s.add_pod(spread_pod("w2", 1, "DoNotSchedule", None), "a2", false);
        s.add_pod(spread_pod("w3", 1, "DoNotSchedule", None), "b1", false);
        s
    }

    fn feasible(s: &Snapshot, pod: &PodInfo) -> Vec<String> {
        let mut state = CycleState::default();
        PodTopologySpread.pre_filter(&mut state, pod, s).unwrap();
        s.nodes
            .iter()
            .filter(|n| PodTopologySpread.filter(&state, pod, n).is_ok())
            .map(|n| n.name.clone())
            .collect()
    }

    #[test]
    fn hard_constraints_keep_skew_within_max_skew() {
        let s = cluster();
        let cases = [
            (1, None, vec!["c1"]),
            (2, None, vec!["b1", "c1"]),
            (3, None, vec!["a1", "a2", "b1", "c1"]),
            // Four domains required, three exist: the minimum counts as 0.
            (2, Some(4), vec!["b1", "c1"]),
            (1, Some(4), vec!["c1"]),
        ];
        for (skew, min_domains, want) in cases {
            let pod = spread_pod("new", skew, "DoNotSchedule", min_domains);
            assert_eq!(
                feasible(&s, &pod),
                want,
                "maxSkew {skew} minDomains {min_domains:?}"
            );
        }
    }

    #[test]
    fn nodes_without_the_topology_key_are_unresolvable() {
        let mut s = cluster();
        s.upsert_node(node("bare", "4", "8Gi"));
        let pod = spread_pod("new", 1, "DoNotSchedule", None);
        let mut state = CycleState::default();
        PodTopologySpread.pre_filter(&mut state, &pod, &s).unwrap();
        let err = PodTopologySpread
            .filter(&state, &pod, s.node("bare").unwrap())
            .unwrap_err();
        assert_eq!(err.code, crate::framework::Code::Unresolvable);
    }

    #[test]
    fn soft_constraints_prefer_emptier_domains() {
        let s = cluster();
        let pod = spread_pod("new", 1, "ScheduleAnyway", None);
        let mut state = CycleState::default();
        assert!(PodTopologySpread.pre_score(&mut state, &pod, &s, &[0, 1, 2, 3]));
        let mut scores: Vec<i64> = s
            .nodes
            .iter()
            .map(|n| PodTopologySpread.score(&state, &pod, n))
            .collect();
        PodTopologySpread.normalize(&state, &pod, &mut scores);
        assert!(scores[3] > scores[2] && scores[2] > scores[0], "{scores:?}");
        assert_eq!(scores[3], 100);
    }
}
