//! InterPodAffinity: required pod affinity and anti-affinity (the pod's own and, by
//! symmetry, existing pods' anti-affinity against it) filter; preferred terms score.
//! Counts are kept per topology pair (label key → value → matching pods).

use foldhash::HashMap;

use crate::cache::Snapshot;
use crate::framework::{CycleState, Failure, MAX_NODE_SCORE, Plugin, PreFilter, events};
use crate::types::{AffinityTerm, NodeInfo, PodInfo};

const NAME: &str = "InterPodAffinity";

/// Matching pods per topology pair: key → value → count.
type PairCounts = HashMap<String, HashMap<String, i64>>;

fn bump(counts: &mut PairCounts, key: &str, value: &str, by: i64) {
    // Keys are allocated only the first time a pair is seen.
    let inner = match counts.get_mut(key) {
        Some(inner) => inner,
        None => counts.entry(key.to_owned()).or_default(),
    };
    match inner.get_mut(value) {
        Some(n) => {
            *n += by;
            if *n == 0 {
                inner.remove(value);
            }
        }
        None if by != 0 => {
            inner.insert(value.to_owned(), by);
        }
        None => {}
    }
}

fn count(counts: &PairCounts, key: &str, value: &str) -> i64 {
    counts
        .get(key)
        .and_then(|m| m.get(value))
        .copied()
        .unwrap_or(0)
}

/// PreFilter's counts.
#[derive(Clone, Default)]
struct FilterState {
    /// Existing pods whose required anti-affinity matches the incoming pod.
    existing_anti: PairCounts,
    /// Existing pods matching all of the incoming pod's required affinity terms.
    affinity: PairCounts,
    /// Existing pods matching each of the incoming pod's required anti-affinity terms.
    anti: PairCounts,
    /// Namespace labels, for terms with namespace selectors.
    namespaces: std::collections::HashMap<String, std::collections::BTreeMap<String, String>>,
}

/// InterPodAffinity.
pub struct InterPodAffinity {
    /// Weight of existing pods' required affinity terms when scoring
    /// (`hardPodAffinityWeight`, default 1).
    pub hard_pod_affinity_weight: i64,
}

impl Default for InterPodAffinity {
    fn default() -> Self {
        InterPodAffinity {
            hard_pod_affinity_weight: 1,
        }
    }
}

fn matches(
    term: &AffinityTerm,
    pod: &PodInfo,
    namespaces: &std::collections::HashMap<String, std::collections::BTreeMap<String, String>>,
) -> bool {
    term.matches(pod, &|ns| namespaces.get(ns).cloned())
}

impl FilterState {
    /// Adds (`by` = 1) or removes (-1) an existing pod's contribution.
    fn account(&mut self, pod: &PodInfo, existing: &PodInfo, node: &NodeInfo, by: i64) {
        for term in &existing.required_anti_affinity {
            if let Some(value) = node.labels.get(&term.topology_key)
                && matches(term, pod, &self.namespaces)
            {
                bump(&mut self.existing_anti, &term.topology_key, value, by);
            }
        }
        if !pod.required_affinity.is_empty()
            && pod
                .required_affinity
                .iter()
                .all(|t| matches(t, existing, &self.namespaces))
        {
            for term in &pod.required_affinity {
                if let Some(value) = node.labels.get(&term.topology_key) {
                    bump(&mut self.affinity, &term.topology_key, value, by);
                }
            }
        }
        for term in &pod.required_anti_affinity {
            if let Some(value) = node.labels.get(&term.topology_key)
                && matches(term, existing, &self.namespaces)
            {
                bump(&mut self.anti, &term.topology_key, value, by);
            }
        }
    }
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> u32 {
        events::POD_ADD
            | events::POD_DELETE
            | events::NODE_ADD
            | events::NODE_LABEL
            | events::NAMESPACE
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
        let own_terms = !pod.required_affinity.is_empty() || !pod.required_anti_affinity.is_empty();
        if !own_terms && !snapshot.any_pod_with_required_anti_affinity() {
            return Ok(PreFilter::Skip);
        }
        let mut s = FilterState {
            namespaces: snapshot.namespaces.clone(),
            ..Default::default()
        };
        let mut any_existing = false;
        for node in &snapshot.nodes {
            if !own_terms && node.pods_with_required_anti_affinity == 0 {
                continue;
            }
            for existing in &node.pods {
                if !own_terms && existing.required_anti_affinity.is_empty() {
                    continue;
                }
                any_existing |= !existing.required_anti_affinity.is_empty();
                s.account(pod, existing, node, 1);
            }
        }
        if !own_terms && !any_existing {
            return Ok(PreFilter::Skip);
        }
        state.write(NAME, s);
        Ok(PreFilter::Continue)
    }
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Failure> {
        let Some(s) = state.read::<FilterState>(NAME) else {
            return Ok(());
        };
        if !s.existing_anti.is_empty()
            && node
                .labels
                .iter()
                .any(|(k, v)| count(&s.existing_anti, k, v) > 0)
        {
            return Err(Failure::unschedulable(
                NAME,
                "node(s) didn't satisfy existing pods anti-affinity rules",
            ));
        }
        if !pod.required_affinity.is_empty() {
            let satisfied = pod.required_affinity.iter().all(|t| {
                node.labels
                    .get(&t.topology_key)
                    .is_some_and(|v| count(&s.affinity, &t.topology_key, v) > 0)
            });
            // The first pod of a group that selects itself may start anywhere its keys exist.
            let first_of_group = s.affinity.values().all(HashMap::is_empty)
                && pod.required_affinity.iter().all(|t| {
                    matches(t, pod, &s.namespaces) && node.labels.contains_key(&t.topology_key)
                });
            if !satisfied && !first_of_group {
                return Err(Failure::unresolvable(
                    NAME,
                    "node(s) didn't match pod affinity rules",
                ));
            }
        }
        for term in &pod.required_anti_affinity {
            if let Some(v) = node.labels.get(&term.topology_key)
                && count(&s.anti, &term.topology_key, v) > 0
            {
                return Err(Failure::unschedulable(
                    NAME,
                    "node(s) didn't match pod anti-affinity rules",
                ));
            }
        }
        Ok(())
    }
    fn add_pod(&self, state: &mut CycleState, pod: &PodInfo, added: &PodInfo, node: &NodeInfo) {
        if let Some(s) = state.read_mut::<FilterState>(NAME) {
            s.account(pod, added, node, 1);
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
            s.account(pod, removed, node, -1);
        }
    }
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        _: &[usize],
    ) -> bool {
        let own = !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
        if !own && !snapshot.any_pod_with_affinity() {
            return false;
        }
        let mut scores = PairCounts::default();
        let namespaces = &snapshot.namespaces;
        let mut any = false;
        for node in &snapshot.nodes {
            if !own && node.pods_with_affinity == 0 {
                continue;
            }
            for existing in &node.pods {
                let mut add = |term: &AffinityTerm, subject: &PodInfo, weight: i64| {
                    if let Some(value) = node.labels.get(&term.topology_key)
                        && matches(term, subject, namespaces)
                    {
                        bump(&mut scores, &term.topology_key, value, weight);
                        any = true;
                    }
                };
                for t in &pod.preferred_affinity {
                    add(t, existing, t.weight);
                }
                for t in &pod.preferred_anti_affinity {
                    add(t, existing, -t.weight);
                }
                if existing.has_affinity() {
                    for t in &existing.preferred_affinity {
                        add(t, pod, t.weight);
                    }
                    for t in &existing.preferred_anti_affinity {
                        add(t, pod, -t.weight);
                    }
                    if self.hard_pod_affinity_weight > 0 {
                        for t in &existing.required_affinity {
                            add(t, pod, self.hard_pod_affinity_weight);
                        }
                    }
                }
            }
        }
        if !any {
            return false;
        }
        state.write("InterPodAffinity/score", scores);
        true
    }
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(scores) = state.read::<PairCounts>("InterPodAffinity/score") else {
            return 0;
        };
        scores
            .iter()
            .filter_map(|(k, values)| values.get(node.labels.get(k)?))
            .sum()
    }
    fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        let (min, max) = scores
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
        let diff = max - min;
        for s in scores.iter_mut() {
            *s = if diff > 0 {
                MAX_NODE_SCORE * (*s - min) / diff
            } else {
                0
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

    fn labelled(name: &str, labels: serde_json::Value, spec: serde_json::Value) -> Arc<PodInfo> {
        let mut spec = spec;
        spec["metadata"] = json!({"name": name, "labels": labels});
        Arc::new(pod_json(spec))
    }

    fn zone_node(name: &str, zone: &str) -> k8s_openapi::api::core::v1::Node {
        let mut n = node(name, "4", "8Gi");
        n.metadata.labels = Some(
            [
                ("zone".to_owned(), zone.to_owned()),
                ("kubernetes.io/hostname".to_owned(), name.to_owned()),
            ]
            .into(),
        );
        n
    }

    fn term(kind: &str, key: &str, app: &str) -> serde_json::Value {
        json!({"affinity": {kind: {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}]}}})
    }

    fn feasible(snapshot: &Snapshot, pod: &PodInfo) -> Vec<String> {
        let plugin = InterPodAffinity::default();
        let mut state = CycleState::default();
        if let Ok(PreFilter::Skip) = plugin.pre_filter(&mut state, pod, snapshot) {
            return snapshot.nodes.iter().map(|n| n.name.clone()).collect();
        }
        snapshot
            .nodes
            .iter()
            .filter(|n| plugin.filter(&state, pod, n).is_ok())
            .map(|n| n.name.clone())
            .collect()
    }

    fn cluster() -> Snapshot {
        let mut s = Snapshot::new();
        s.upsert_node(zone_node("a1", "a"));
        s.upsert_node(zone_node("a2", "a"));
        s.upsert_node(zone_node("b1", "b"));
        s.add_pod(labelled("db", json!({"app": "db"}), json!({})), "a1", false);
        s
    }

    #[test]
    fn required_affinity_and_anti_affinity_follow_topology() {
        let s = cluster();
        let cases = [
            (
                "affinity to db by zone",
                term("podAffinity", "zone", "db"),
                vec!["a1", "a2"],
            ),
            (
                "affinity to db by host",
                term("podAffinity", "kubernetes.io/hostname", "db"),
                vec!["a1"],
            ),
            (
                "anti-affinity to db by zone",
                term("podAntiAffinity", "zone", "db"),
                vec!["b1"],
            ),
            (
                "anti-affinity to db by host",
                term("podAntiAffinity", "kubernetes.io/hostname", "db"),
                vec!["a2", "b1"],
            ),
            (
                "affinity to nothing",
                term("podAffinity", "zone", "cache"),
                vec![],
            ),
        ];
        for (name, spec, want) in cases {
            let pod = labelled("p", json!({"app": "web"}), spec);
            assert_eq!(feasible(&s, &pod), want, "{name}");
        }
    }

    #[test]
    fn the_first_pod_of_a_self_affine_group_may_go_anywhere() {
        let s = cluster();
        let pod = labelled(
            "p",
            json!({"app": "web"}),
            term("podAffinity", "zone", "web"),
        );
        assert_eq!(feasible(&s, &pod), vec!["a1", "a2", "b1"]);
    }

    #[test]
    fn existing_pods_anti_affinity_keeps_matching_pods_away() {
        let mut s = cluster();
        s.add_pod(
            labelled(
                "lonely",
                json!({"app": "lonely"}),
                term("podAntiAffinity", "zone", "web"),
            ),
            "b1",
            false,
        );
        let web = labelled("p", json!({"app": "web"}), json!({}));
        assert_eq!(feasible(&s, &web), vec!["a1", "a2"]);
        let mut state = CycleState::default();
        InterPodAffinity::default()
            .pre_filter(&mut state, &web, &s)
            .unwrap();
        let err = InterPodAffinity::default()
            .filter(&state, &web, s.node("b1").unwrap())
            .unwrap_err();
        assert_eq!(
            err.reasons,
            vec!["node(s) didn't satisfy existing pods anti-affinity rules"]
        );
    }

    #[test]
    fn removing_a_pod_in_a_what_if_lifts_anti_affinity() {
        let s = cluster();
        let pod = labelled(
            "p",
            json!({"app": "web"}),
            term("podAntiAffinity", "kubernetes.io/hostname", "db"),
        );
        let plugin = InterPodAffinity::default();
        let mut state = CycleState::default();
        plugin.pre_filter(&mut state, &pod, &s).unwrap();
        let a1 = s.node("a1").unwrap();
        assert!(plugin.filter(&state, &pod, a1).is_err());
        plugin.remove_pod(&mut state, &pod, &a1.pods[0], a1);
        assert!(plugin.filter(&state, &pod, a1).is_ok());
    }

    #[test]
    fn preferred_terms_score_by_weight_and_topology() {
        let s = cluster();
        let pod = labelled(
            "p",
            json!({"app": "web"}),
            json!({"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}}]}}}),
        );
        let plugin = InterPodAffinity::default();
        let mut state = CycleState::default();
        assert!(plugin.pre_score(&mut state, &pod, &s, &[0, 1, 2]));
        let mut scores: Vec<i64> = s
            .nodes
            .iter()
            .map(|n| plugin.score(&state, &pod, n))
            .collect();
        assert_eq!(scores, vec![10, 10, 0]);
        plugin.normalize(&state, &pod, &mut scores);
        assert_eq!(scores, vec![100, 100, 0]);
    }
}
