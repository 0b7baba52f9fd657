//! NodeResourcesFit (does the pod's request fit what the node has left?) with its three
//! scoring strategies, and NodeResourcesBalancedAllocation.

use std::borrow::Cow;

use crate::cache::Snapshot;
use crate::framework::{CycleState, Failure, Plugin, events, score_each};
use crate::types::{NodeInfo, PodInfo};

/// NodeResourcesFit's name.
pub const FIT: &str = "NodeResourcesFit";
/// NodeResourcesBalancedAllocation's name.
pub const BALANCED: &str = "NodeResourcesBalancedAllocation";

/// How NodeResourcesFit scores nodes.
#[derive(Clone, Debug, PartialEq)]
pub enum ScoringStrategy {
    /// Prefer the emptiest nodes (spreading; the default).
    LeastAllocated,
    /// Prefer the fullest nodes (bin packing).
    MostAllocated,
    /// A piecewise linear function of utilization: (utilization 0..=100, score 0..=10).
    RequestedToCapacityRatio(Vec<(i64, i64)>),
}

/// NodeResourcesFit.
#[derive(Clone, Debug)]
pub struct NodeResourcesFit {
    /// The scoring strategy.
    pub strategy: ScoringStrategy,
    /// The resources scored, with weights.
    pub resources: Vec<(String, i64)>,
}

impl Default for NodeResourcesFit {
    fn default() -> Self {
        NodeResourcesFit {
            strategy: ScoringStrategy::LeastAllocated,
            resources: default_resources(),
        }
    }
}

/// cpu and memory, weight 1 each.
pub fn default_resources() -> Vec<(String, i64)> {
    vec![("cpu".into(), 1), ("memory".into(), 1)]
}

/// (requested including the pod, allocatable) of a resource on a node, with the
/// non-zero defaults for cpu and memory as upstream scores them.
fn requested_and_allocatable(pod: &PodInfo, node: &NodeInfo, resource: &str) -> (i64, i64) {
    // cpu and memory are nearly always what is scored: compare them first, by length.
    match resource.len() {
        3 if resource == "cpu" => (
            node.non_zero_requested.0 + pod.non_zero.0,
            node.allocatable.milli_cpu,
        ),
        6 if resource == "memory" => (
            node.non_zero_requested.1 + pod.non_zero.1,
            node.allocatable.memory,
        ),
        _ => (
            node.requested.get(resource) + pod.requests.get(resource),
            node.allocatable.get(resource),
        ),
    }
}

fn is_cpu_or_memory(resource: &str) -> bool {
    resource == "cpu" || resource == "memory"
}

/// The weights of cpu and memory when they are the only resources scored, as by default:
/// then a pass over the nodes reads two fixed fields per node instead of looking each
/// resource up by name.
fn cpu_and_memory(resources: &[(String, i64)]) -> Option<(i64, i64)> {
    match resources {
        [(a, wa), (b, wb)] if a == "cpu" && b == "memory" => Some((*wa, *wb)),
        [(a, wa), (b, wb)] if a == "memory" && b == "cpu" => Some((*wb, *wa)),
        _ => None,
    }
}

/// (requested including the pod, allocatable) of cpu and of memory, as
/// [`requested_and_allocatable`] gives them.
fn cpu_and_memory_use(pod: &PodInfo, node: &NodeInfo) -> ((i64, i64), (i64, i64)) {
    (
        (
            node.non_zero_requested.0 + pod.non_zero.0,
            node.allocatable.milli_cpu,
        ),
        (
            node.non_zero_requested.1 + pod.non_zero.1,
            node.allocatable.memory,
        ),
    )
}

impl NodeResourcesFit {
    fn insufficient(pod: &PodInfo, node: &NodeInfo) -> Option<Failure> {
        let mut reasons: Vec<Cow<'static, str>> = Vec::new();
        let mut unresolvable = false;
        if node.pods.len() as i64 + 1 > node.allocatable.pods {
            reasons.push("Too many pods".into());
        }
        let req = &pod.requests;
        if req.is_zero() && reasons.is_empty() {
            return None;
        }
        let alloc = &node.allocatable;
        let used = &node.requested;
        let mut check = |name: &'static str, want: i64, have: i64, free: i64| {
            if want > 0 && want > free {
                reasons.push(Cow::Borrowed(name));
                unresolvable |= want > have;
            }
        };
        check(
            "Insufficient cpu",
            req.milli_cpu,
            alloc.milli_cpu,
            alloc.milli_cpu - used.milli_cpu,
        );
        check(
            "Insufficient memory",
            req.memory,
            alloc.memory,
            alloc.memory - used.memory,
        );
        check(
            "Insufficient ephemeral-storage",
            req.ephemeral_storage,
            alloc.ephemeral_storage,
            alloc.ephemeral_storage - used.ephemeral_storage,
        );
        for (name, want) in &req.scalar {
            let have = alloc.get(name);
            if *want > 0 && *want > have - used.get(name) {
                reasons.push(format!("Insufficient {name}").into());
                unresolvable |= *want > have;
            }
        }
        if reasons.is_empty() {
            return None;
        }
        let mut failure = Failure::unschedulable(FIT, "");
        failure.reasons = reasons;
        if unresolvable {
            failure.code = crate::framework::Code::Unresolvable;
        }
        Some(failure)
    }

    /// The strategy's score of one resource, 0..=100.
    fn resource_score(&self, requested: i64, allocatable: i64) -> i64 {
        match &self.strategy {
            ScoringStrategy::LeastAllocated => {
                if allocatable == 0 || requested > allocatable {
                    0
                } else {
                    (allocatable - requested) * 100 / allocatable
                }
            }
            ScoringStrategy::MostAllocated => {
                if allocatable == 0 {
                    0
                } else {
                    requested.min(allocatable) * 100 / allocatable
                }
            }
            ScoringStrategy::RequestedToCapacityRatio(shape) => {
                let utilization = if allocatable == 0 || requested > allocatable {
                    100
                } else {
                    requested * 100 / allocatable
                };
                broken_linear(shape, utilization) * 10
            }
        }
    }
}

/// The piecewise linear function through `shape`'s points, flat beyond its ends.
fn broken_linear(shape: &[(i64, i64)], x: i64) -> i64 {
    let Some(first) = shape.first() else {
        return 0;
    };
    if x <= first.0 {
        return first.1;
    }
    for pair in shape.windows(2) {
        let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
        if x <= x1 {
            if x1 == x0 {
                return y1;
            }
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0);
        }
    }
    shape.last().map_or(0, |p| p.1)
}

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        FIT
    }
    fn events(&self) -> u32 {
        events::NODE_ADD | events::NODE_ALLOCATABLE | events::POD_DELETE
    }
    fn filters(&self) -> bool {
        true
    }
    fn scores(&self) -> bool {
        true
    }
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Failure> {
        match Self::insufficient(pod, node) {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let (mut total, mut weights) = (0, 0);
        for (resource, weight) in &self.resources {
            let (requested, allocatable) = requested_and_allocatable(pod, node, resource);
            if allocatable == 0 && !is_cpu_or_memory(resource) {
                continue;
            }
            total += self.resource_score(requested, allocatable) * weight;
            weights += weight;
        }
        self.weighted(total, weights)
    }
    fn score_nodes(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        nodes: &[usize],
        scores: &mut [i64],
    ) {
        let Some((cpu_weight, memory_weight)) = cpu_and_memory(&self.resources) else {
            return score_each(self, state, pod, snapshot, nodes, scores);
        };
        for (slot, index) in scores.iter_mut().zip(nodes) {
            let (cpu, memory) = cpu_and_memory_use(pod, &snapshot.nodes[*index]);
            let total = self.resource_score(cpu.0, cpu.1) * cpu_weight
                + self.resource_score(memory.0, memory.1) * memory_weight;
            *slot = self.weighted(total, cpu_weight + memory_weight);
        }
    }
}

impl NodeResourcesFit {
    /// The weighted mean of the resources' scores.
    fn weighted(&self, total: i64, weights: i64) -> i64 {
        if weights == 0 {
            0
        } else if matches!(self.strategy, ScoringStrategy::RequestedToCapacityRatio(_)) {
            (total as f64 / weights as f64).round() as i64
        } else {
            total / weights
        }
    }
}

/// NodeResourcesBalancedAllocation: prefer nodes whose resources stay evenly used.
#[derive(Clone, Debug)]
pub struct BalancedAllocation {
    /// The resources compared.
    pub resources: Vec<(String, i64)>,
}

impl Default for BalancedAllocation {
    fn default() -> Self {
        BalancedAllocation {
            resources: default_resources(),
        }
    }
}

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        BALANCED
    }
    fn scores(&self) -> bool {
        true
    }
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let mut fractions = [0f64; 8];
        let mut n = 0;
        for (resource, _) in self.resources.iter().take(fractions.len()) {
            let (requested, allocatable) = requested_and_allocatable(pod, node, resource);
            if allocatable == 0 {
                continue;
            }
            fractions[n] = (requested as f64 / allocatable as f64).min(1.0);
            n += 1;
        }
        balance(&fractions[..n])
    }
    fn score_nodes(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        nodes: &[usize],
        scores: &mut [i64],
    ) {
        if cpu_and_memory(&self.resources).is_none() {
            return score_each(self, state, pod, snapshot, nodes, scores);
        }
        let fraction = |(requested, allocatable): (i64, i64)| {
            (allocatable != 0).then(|| (requested as f64 / allocatable as f64).min(1.0))
        };
        for (slot, index) in scores.iter_mut().zip(nodes) {
            let (cpu, memory) = cpu_and_memory_use(pod, &snapshot.nodes[*index]);
            *slot = match (fraction(cpu), fraction(memory)) {
                (Some(a), Some(b)) => balance(&[a, b]),
                (Some(a), None) | (None, Some(a)) => balance(&[a]),
                (None, None) => balance(&[]),
            };
        }
    }
}

/// 100 for resources used in equal fractions, less the more they differ (one minus their
/// standard deviation).
fn balance(fractions: &[f64]) -> i64 {
    let n = fractions.len();
    let std = match n {
        0 | 1 => 0.0,
        2 => (fractions[0] - fractions[1]).abs() / 2.0,
        _ => {
            let mean = fractions.iter().sum::<f64>() / n as f64;
            let variance = fractions
                .iter()
                .map(|f| (f - mean) * (f - mean))
                .sum::<f64>()
                / n as f64;
            variance.sqrt()
        }
    };
    ((1.0 - std) * 100.0) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{node_info, pod_info};

    #[test]
    fn fit_filter_names_every_insufficient_resource() {
        type Case = (
            &'static str,
            &'static str,
            &'static str,
            &'static str,
            &'static str,
            Vec<&'static str>,
        );
        let cases: [Case; 5] = [
            ("fits", "1", "1Gi", "4", "8Gi", vec![]),
            (
                "cpu short",
                "3",
                "1Gi",
                "4",
                "8Gi",
                vec!["Insufficient cpu"],
            ),
            (
                "memory short",
                "1",
                "8Gi",
                "4",
                "8Gi",
                vec!["Insufficient memory"],
            ),
            (
                "both short",
                "4",
                "8Gi",
                "4",
                "8Gi",
                vec!["Insufficient cpu", "Insufficient memory"],
            ),
            ("empty pod always fits", "0", "0", "0", "0", vec![]),
        ];
        for (name, cpu, memory, node_cpu, node_memory, want) in cases {
            // 2 cpu and 2Gi are already used on the node.
            let node = node_info(node_cpu, node_memory, &[("2", "2Gi")]);
            let pod = pod_info(cpu, memory);
            let got = NodeResourcesFit::default()
                .filter(&CycleState::default(), &pod, &node)
                .err()
                .map(|f| f.reasons.iter().map(|r| r.to_string()).collect::<Vec<_>>())
                .unwrap_or_default();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn a_request_larger_than_the_node_is_unresolvable() {
        let node = node_info("4", "8Gi", &[]);
        let err = NodeResourcesFit::default()
            .filter(&CycleState::default(), &pod_info("5", "1Gi"), &node)
            .unwrap_err();
        assert_eq!(err.code, crate::framework::Code::Unresolvable);
        let err = NodeResourcesFit::default()
            .filter(
                &CycleState::default(),
                &pod_info("3", "1Gi"),
                &node_info("4", "8Gi", &[("2", "0")]),
            )
            .unwrap_err();
        assert_eq!(err.code, crate::framework::Code::Unschedulable);
    }

    #[test]
    fn too_many_pods_is_a_reason() {
        let mut node = node_info("4", "8Gi", &[("0", "0")]);
        node.allocatable.pods = 1;
        let err = NodeResourcesFit::default()
            .filter(&CycleState::default(), &pod_info("0", "0"), &node)
            .unwrap_err();
        assert_eq!(err.reasons, vec!["Too many pods"]);
    }

    #[test]
    fn extended_resources_are_checked() {
        let mut node = node_info("4", "8Gi", &[]);
        node.allocatable.scalar.insert("example.com/gpu".into(), 1);
        let mut pod = crate::testing::pod("p", "1", "1Gi");
        pod.spec.as_mut().unwrap().containers[0]
            .resources
            .as_mut()
            .unwrap()
            .requests
            .as_mut()
            .unwrap()
            .insert(
                "example.com/gpu".into(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity("2".into()),
            );
        let err = NodeResourcesFit::default()
            .filter(&CycleState::default(), &PodInfo::new(pod), &node)
            .unwrap_err();
        assert_eq!(err.reasons, vec!["Insufficient example.com/gpu"]);
    }

    #[test]
    fn scoring_strategies_score_as_upstream() {
        // Node: 4 cpu, 8Gi; used 1 cpu, 2Gi; pod asks 1 cpu, 2Gi → 50% of both.
        let node = node_info("4", "8Gi", &[("1", "2Gi")]);
        let pod = pod_info("1", "2Gi");
        let shape = vec![(0, 0), (100, 10)];
        let cases = [
            ("least", ScoringStrategy::LeastAllocated, 50),
            ("most", ScoringStrategy::MostAllocated, 50),
            (
                "ratio",
                ScoringStrategy::RequestedToCapacityRatio(shape),
                50,
            ),
        ];
        for (name, strategy, want) in cases {
            let fit = NodeResourcesFit {
                strategy,
                resources: default_resources(),
            };
            assert_eq!(
                fit.score(&CycleState::default(), &pod, &node),
                want,
                "{name}"
            );
        }
        let emptier = node_info("4", "8Gi", &[]);
        let least = NodeResourcesFit::default();
        assert_eq!(least.score(&CycleState::default(), &pod, &emptier), 75);
        let most = NodeResourcesFit {
            strategy: ScoringStrategy::MostAllocated,
            resources: default_resources(),
        };
        assert_eq!(most.score(&CycleState::default(), &pod, &emptier), 25);
    }

    #[test]
    fn broken_linear_interpolates_and_clamps() {
        let shape = [(10, 0), (50, 10), (100, 4)];
        let cases = [
            (0, 0),
            (10, 0),
            (30, 5),
            (50, 10),
            (75, 7),
            (100, 4),
            (120, 4),
        ];
        for (x, want) in cases {
            assert_eq!(broken_linear(&shape, x), want, "x={x}");
        }
    }

    #[test]
    fn balanced_allocation_prefers_even_use() {
        let cases = [
            // pod 1 cpu + 2Gi on 4 cpu / 8Gi: 25% and 25% → 100.
            ("even", "4", "8Gi", 100),
            // 1/2 cpu and 2/16 memory: |0.5 - 0.125| / 2 = 0.1875 → 81.
            ("uneven", "2", "16Gi", 81),
        ];
        for (name, cpu, memory, want) in cases {
            let node = node_info(cpu, memory, &[]);
            let got = BalancedAllocation::default().score(
                &CycleState::default(),
                &pod_info("1", "2Gi"),
                &node,
            );
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn a_pass_over_the_nodes_scores_each_as_one_call_does() {
        // Nodes empty, loaded, overcommitted, and without cpu or memory to offer.
        type Shape = (
            &'static str,
            &'static str,
            &'static [(&'static str, &'static str)],
        );
        let shapes: [Shape; 6] = [
            ("4", "8Gi", &[]),
            ("4", "8Gi", &[("3", "1Gi")]),
            ("2", "16Gi", &[("1", "15Gi"), ("500m", "2Gi")]),
            ("1", "1Gi", &[("2", "2Gi")]),
            ("0", "8Gi", &[]),
            ("4", "0", &[]),
        ];
        let mut snapshot = Snapshot::new();
        for (i, (cpu, memory, used)) in shapes.iter().enumerate() {
            let name = format!("n{i}");
            snapshot.upsert_node(crate::testing::node(&name, cpu, memory));
            for (j, (c, m)) in used.iter().enumerate() {
                let pod = crate::testing::pod(&format!("used-{i}-{j}"), c, m);
                snapshot.add_pod(std::sync::Arc::new(PodInfo::new(pod)), &name, false);
            }
        }
        let nodes: Vec<usize> = (0..shapes.len()).rev().collect();
        let resources = |list: &[(&str, i64)]| -> Vec<(String, i64)> {
            list.iter().map(|(r, w)| ((*r).to_owned(), *w)).collect()
        };
        let weightings = [
            resources(&[("cpu", 1), ("memory", 1)]),
            resources(&[("memory", 1), ("cpu", 3)]),
            resources(&[("cpu", 2), ("memory", 0)]),
            resources(&[("cpu", 1)]),
            resources(&[("cpu", 1), ("memory", 1), ("example.com/gpu", 2)]),
        ];
        let strategies = [
            ScoringStrategy::LeastAllocated,
            ScoringStrategy::MostAllocated,
            ScoringStrategy::RequestedToCapacityRatio(vec![(0, 0), (50, 7), (100, 10)]),
        ];
        let state = CycleState::default();
        let check = |plugin: &dyn Plugin, pod: &PodInfo, what: &str| {
            let mut scores = vec![-1; nodes.len()];
            plugin.score_nodes(&state, pod, &snapshot, &nodes, &mut scores);
            let one_by_one: Vec<i64> = nodes
                .iter()
                .map(|i| plugin.score(&state, pod, &snapshot.nodes[*i]))
                .collect();
            assert_eq!(scores, one_by_one, "{what}");
        };
        for pod in [
            pod_info("500m", "1Gi"),
            pod_info("0", "0"),
            pod_info("3", "9Gi"),
        ] {
            for resources in &weightings {
                for strategy in &strategies {
                    let fit = NodeResourcesFit {
                        strategy: strategy.clone(),
                        resources: resources.clone(),
                    };
                    check(&fit, &pod, &format!("fit {strategy:?} {resources:?}"));
                }
                let balanced = BalancedAllocation {
                    resources: resources.clone(),
                };
                check(&balanced, &pod, &format!("balanced {resources:?}"));
            }
        }
    }
}
