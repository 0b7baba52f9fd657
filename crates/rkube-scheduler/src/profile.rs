//! A scheduling profile and its cycle: PreFilter, Filter over the nodes (all of them, or
//! the adaptive share upstream's `percentageOfNodesToScore` asks for), PreScore, Score,
//! NormalizeScore with weights, and the choice of the best node; then Reserve, Unreserve
//! and PreBind for the node chosen.

use std::sync::Arc;

use crate::cache::Snapshot;
use crate::framework::{CycleState, Failure, FitError, Plugin, PreBindTask, PreFilter};
use crate::types::{NodeInfo, PodInfo};

/// The fewest feasible nodes a cycle looks for before it stops filtering.
const MIN_FEASIBLE_NODES: usize = 100;
/// The least share of nodes the adaptive rule filters, in percent.
const MIN_FEASIBLE_PERCENTAGE: usize = 5;

/// A profile: a scheduler name and the plugins it runs.
pub struct Profile {
    /// The `schedulerName` pods name to be scheduled by this profile.
    pub scheduler_name: String,
    /// Plugins with a PreFilter or Filter, in order.
    pub filters: Vec<Arc<dyn Plugin>>,
    /// Plugins that score, with their weights.
    pub scorers: Vec<(Arc<dyn Plugin>, i64)>,
    /// Plugins with Reserve, Unreserve and PreBind, in order.
    pub reservers: Vec<Arc<dyn Plugin>>,
    /// Percentage of nodes to score; `None` for the adaptive default.
    pub percentage_of_nodes_to_score: Option<u32>,
    /// Whether DefaultPreemption runs when no node fits.
    pub preemption: bool,
}

/// The outcome of a cycle that found a node.
#[derive(Debug)]
pub struct Placement {
    /// The node's index in the snapshot.
    pub node: usize,
    /// How many nodes were filtered.
    pub evaluated: usize,
    /// How many passed.
    pub feasible: usize,
}

/// A small, fast random source for tie-breaking (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is replaced).
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

impl Profile {
    /// How many feasible nodes to look for among `all` (upstream's
    /// `numFeasibleNodesToFind`).
    pub fn nodes_to_find(&self, all: usize) -> usize {
        let configured = self.percentage_of_nodes_to_score.map(|p| p as usize);
        if all < MIN_FEASIBLE_NODES || configured.is_some_and(|p| p >= 100) {
            return all;
        }
        let percentage = configured.filter(|p| *p > 0).unwrap_or_else(|| {
            50usize
                .saturating_sub(all / 125)
                .max(MIN_FEASIBLE_PERCENTAGE)
        });
        (all * percentage / 100).max(MIN_FEASIBLE_NODES)
    }

    /// Whether a plugin of this profile reads the selectors of workloads.
    pub fn reads_workloads(&self) -> bool {
        self.filters
            .iter()
            .chain(self.scorers.iter().map(|(p, _)| p))
            .any(|p| p.reads_workloads())
    }

    /// The filter plugins this cycle runs: those whose PreFilter did not ask to be skipped.
    pub fn active_filters(&self, state: &CycleState) -> Vec<Arc<dyn Plugin>> {
        self.filters
            .iter()
            .filter(|p| p.filters() && !state.skip_filter.contains(&p.name()))
            .cloned()
            .collect()
    }

    /// Runs the active filters on one node, stopping at the first that rejects.
    fn run_filters(
        active: &[Arc<dyn Plugin>],
        state: &CycleState,
        pod: &PodInfo,
        node: &NodeInfo,
    ) -> Result<(), Failure> {
        for plugin in active {
            plugin.filter(state, pod, node)?;
        }
        Ok(())
    }

    /// Filters a node as if the pods nominated to it with at least this pod's priority
    /// were already there (they are about to be), and as it is.
    pub fn filter_node(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        node: &NodeInfo,
    ) -> Result<(), Failure> {
        self.filter_node_with(&self.active_filters(state), state, pod, snapshot, node)
    }

    fn filter_node_with(
        &self,
        active: &[Arc<dyn Plugin>],
        state: &CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        node: &NodeInfo,
    ) -> Result<(), Failure> {
        if !snapshot.nominated.is_empty()
            && let Some(nominated) = snapshot.nominated.get(&node.name)
        {
            let ahead: Vec<_> = nominated
                .iter()
                .filter(|p| p.priority >= pod.priority && p.key != pod.key)
                .collect();
            if !ahead.is_empty() {
                let mut state = state.clone();
                let mut node = node.clone();
                for other in ahead {
                    node.add_pod(other.clone());
                    for plugin in &self.filters {
                        plugin.add_pod(&mut state, pod, other, &node);
                    }
                }
                Self::run_filters(active, &state, pod, &node)?;
            }
        }
        Self::run_filters(active, state, pod, node)
    }

    /// Runs PreFilter; `Err` carries the rejection.
    pub fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> Result<Option<Vec<String>>, Failure> {
        let mut only: Option<Vec<String>> = None;
        for plugin in &self.filters {
            match plugin.pre_filter(state, pod, snapshot)? {
                PreFilter::Continue => {}
                PreFilter::Skip => state.skip_filter.push(plugin.name()),
                PreFilter::Nodes(names) => {
                    only = Some(match only {
                        None => names,
                        Some(prev) => prev.into_iter().filter(|n| names.contains(n)).collect(),
                    });
                }
            }
        }
        Ok(only)
    }

    /// One scheduling cycle for `pod`: the chosen node, or why there is none. `start`
    /// is where filtering begins (it moves on every cycle, as upstream's
    /// `nextStartNodeIndex`, so the same nodes are not always looked at first).
    pub fn schedule(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        start: &mut usize,
        rng: &mut Rng,
    ) -> Result<Placement, Box<FitError>> {
        let all = snapshot.nodes.len();
        let mut error = Box::new(FitError {
            num_all_nodes: all,
            ..Default::default()
        });
        if all == 0 {
            return Err(error);
        }
        let only = match self.pre_filter(state, pod, snapshot) {
            Ok(only) => only,
            Err(failure) => {
                error.pre_filter_msg = Some(failure.reasons.join(", "));
                error.rejectors.push(failure.plugin);
                return Err(error);
            }
        };
        let active = self.active_filters(state);
        // A pod that preemption nominated to a node most likely fits only there: that node
        // is tried first and, when it passes, taken alone, without filtering or scoring the
        // others (upstream's `evaluateNominatedNode`). When it fails, every node is
        // evaluated as usual.
        if let Some(index) = pod
            .nominated_node
            .as_deref()
            .and_then(|n| snapshot.node_index(n))
            && self
                .filter_node_with(&active, state, pod, snapshot, &snapshot.nodes[index])
                .is_ok()
        {
            return Ok(Placement {
                node: index,
                evaluated: 1,
                feasible: 1,
            });
        }
        let candidates: Option<Vec<usize>> = only.map(|names| {
            names
                .iter()
                .filter_map(|n| snapshot.node_index(n))
                .collect()
        });
        let total = candidates.as_ref().map_or(all, Vec::len);
        let want = self.nodes_to_find(total);
        let mut feasible = Vec::with_capacity(want.min(total));
        let mut evaluated = 0;
        let begin = if candidates.is_some() {
            0
        } else {
            *start % all
        };
        for step in 0..total {
            let index = match &candidates {
                Some(c) => c[step],
                None => (begin + step) % all,
            };
            evaluated += 1;
            match self.filter_node_with(&active, state, pod, snapshot, &snapshot.nodes[index]) {
                Ok(()) => {
                    feasible.push(index);
                    if feasible.len() >= want {
                        break;
                    }
                }
                Err(failure) => {
                    if !error.rejectors.contains(&failure.plugin) {
                        error.rejectors.push(failure.plugin);
                    }
                    error.statuses.insert(index, failure);
                }
            }
        }
        if candidates.is_none() {
            *start = (begin + evaluated) % all;
        }
        if candidates.is_some() {
            // Nodes the PreFilter result left out count as rejected by it.
            let listed: std::collections::HashSet<usize> =
                candidates.iter().flatten().copied().collect();
            for index in 0..all {
                if !listed.contains(&index) && !error.statuses.contains_key(&index) {
                    error.statuses.insert(
                        index,
                        Failure::unresolvable(
                            "PreFilter",
                            "node(s) didn't satisfy plugin(s) [PreFilter]",
                        ),
                    );
                }
            }
        }
        match feasible.len() {
            0 => Err(error),
            1 => Ok(Placement {
                node: feasible[0],
                evaluated,
                feasible: 1,
            }),
            n => Ok(Placement {
                node: self.best(state, pod, snapshot, &feasible, rng),
                evaluated,
                feasible: n,
            }),
        }
    }

    /// Runs Reserve for the chosen node; when one plugin fails, every plugin is
    /// unreserved (in reverse order, as upstream) and the failure returned.
    pub fn reserve(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        node: &str,
        snapshot: &mut Snapshot,
    ) -> Result<(), Failure> {
        for plugin in &self.reservers {
            if let Err(failure) = plugin.reserve(state, pod, node, snapshot) {
                self.unreserve(state, pod, node, snapshot);
                return Err(failure);
            }
        }
        Ok(())
    }

    /// Runs Unreserve, last plugin first.
    pub fn unreserve(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        node: &str,
        snapshot: &mut Snapshot,
    ) {
        for plugin in self.reservers.iter().rev() {
            plugin.unreserve(state, pod, node, snapshot);
        }
    }

    /// The PreBind work of each plugin that has some, by plugin name, in order.
    pub fn pre_bind(
        &self,
        client: &kube::Client,
        state: &CycleState,
        pod: &Arc<PodInfo>,
        node: &str,
    ) -> Vec<(&'static str, PreBindTask)> {
        self.reservers
            .iter()
            .filter_map(|p| Some((p.name(), p.pre_bind(client, state, pod, node)?)))
            .collect()
    }

    /// Scores the feasible nodes and picks the best, ties broken at random.
    fn best(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        feasible: &[usize],
        rng: &mut Rng,
    ) -> usize {
        let mut totals = vec![0i64; feasible.len()];
        let mut scores = vec![0i64; feasible.len()];
        for (plugin, weight) in &self.scorers {
            if !plugin.pre_score(state, pod, snapshot, feasible) {
                continue;
            }
            plugin.score_nodes(state, pod, snapshot, feasible, &mut scores);
            plugin.normalize(state, pod, &mut scores);
            for (total, score) in totals.iter_mut().zip(&scores) {
                *total += score * weight;
            }
        }
        let mut best = 0;
        let mut ties = 0u64;
        for i in 0..totals.len() {
            if totals[i] > totals[best] {
                best = i;
                ties = 1;
            } else if totals[i] == totals[best] {
                ties += 1;
                if rng.next_u64().is_multiple_of(ties) {
                    best = i;
                }
            }
        }
        feasible[best]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::{node, pod};

    fn profile(percentage: Option<u32>) -> Profile {
        Profile {
            scheduler_name: "default-scheduler".into(),
            filters: Vec::new(),
            scorers: Vec::new(),
            reservers: Vec::new(),
            percentage_of_nodes_to_score: percentage,
            preemption: false,
        }
    }

    /// Nodes `busy` (3 of 4 cpu used) and `idle` (4 cpu free), with the default plugins.
    fn busy_and_idle() -> (Profile, Snapshot) {
        let profile = crate::SchedulerConfig::default()
            .build_profiles()
            .unwrap()
            .remove(0);
        let mut snapshot = Snapshot::new();
        snapshot.upsert_node(node("busy", "4", "8Gi"));
        snapshot.upsert_node(node("idle", "4", "8Gi"));
        snapshot.add_pod(
            Arc::new(PodInfo::new(pod("resident", "3", "1Gi"))),
            "busy",
            false,
        );
        (profile, snapshot)
    }

    fn nominated(name: &str, cpu: &str, node: Option<&str>, priority: i32) -> PodInfo {
        let mut p = pod(name, cpu, "100Mi");
        p.spec.as_mut().unwrap().priority = Some(priority);
        p.status = Some(k8s_openapi::api::core::v1::PodStatus {
            nominated_node_name: node.map(str::to_owned),
            ..Default::default()
        });
        PodInfo::new(p)
    }

    fn place(profile: &Profile, snapshot: &Snapshot, pod: &PodInfo) -> Option<(String, usize)> {
        let mut state = CycleState::default();
        let placement = profile
            .schedule(&mut state, pod, snapshot, &mut 0, &mut Rng::new(3))
            .ok()?;
        Some((
            snapshot.nodes[placement.node].name.clone(),
            placement.evaluated,
        ))
    }

    #[test]
    fn a_nominated_node_that_fits_is_taken_without_looking_further() {
        let (profile, snapshot) = busy_and_idle();
        // (case, nominated node, cpu, where it goes, how many nodes were filtered)
        let cases = [
            (
                "not nominated: the emptier node wins",
                None,
                "500m",
                "idle",
                2,
            ),
            ("nominated and fits", Some("busy"), "500m", "busy", 1),
            ("nominated but does not fit", Some("busy"), "2", "idle", 2),
            (
                "nominated to a node that is gone",
                Some("gone"),
                "500m",
                "idle",
                2,
            ),
        ];
        for (case, node, cpu, want, evaluated) in cases {
            let pod = nominated("p", cpu, node, 0);
            assert_eq!(
                place(&profile, &snapshot, &pod),
                Some((want.to_owned(), evaluated)),
                "{case}"
            );
        }
    }

    #[test]
    fn pods_nominated_with_at_least_the_same_priority_hold_their_room() {
        let (profile, mut snapshot) = busy_and_idle();
        // A preemptor of priority 10 is nominated to `idle` and will need 3 of its 4 cpu.
        let preemptor = Arc::new(nominated("preemptor", "3", Some("idle"), 10));
        snapshot.nominate(&preemptor, Some("idle"));
        // (case, priority, where a 2-cpu pod can go)
        let cases = [
            ("lower priority: the nominated pod counts", 5, None),
            ("equal priority: the nominated pod counts", 10, None),
            ("higher priority: it does not", 20, Some("idle")),
        ];
        for (case, priority, want) in cases {
            let pod = nominated("p", "2", None, priority);
            let got = place(&profile, &snapshot, &pod).map(|(n, _)| n);
            assert_eq!(got.as_deref(), want, "{case}");
        }
        // The nominated pod itself is not counted against itself.
        assert_eq!(
            place(&profile, &snapshot, &preemptor)
                .map(|(n, _)| n)
                .as_deref(),
            Some("idle")
        );
    }

    #[test]
    fn the_share_of_nodes_filtered_adapts_to_cluster_size() {
        let cases = [
            (None, 50, 50),
            (None, 500, 230),
            (None, 5000, 500),
            (None, 20000, 1000),
            (Some(100), 5000, 5000),
            (Some(1), 5000, 100),
            (Some(30), 1000, 300),
        ];
        for (pct, all, want) in cases {
            assert_eq!(profile(pct).nodes_to_find(all), want, "{pct:?} of {all}");
        }
    }
}
