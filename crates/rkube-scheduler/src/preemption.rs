//! DefaultPreemption: when no node fits, find a node where removing lower-priority pods
//! makes room, choosing the fewest and least important victims and respecting
//! PodDisruptionBudgets where possible; the preemptor is nominated to that node.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use rkube_api::selector::LabelSelector;

use crate::cache::Snapshot;
use crate::framework::{Code, CycleState, Failure, FitError};
use crate::profile::Profile;
use crate::types::{NodeInfo, PodInfo};

/// What preemption decided.
#[derive(Debug)]
pub enum Preemption {
    /// Delete these pods; the preemptor waits for `node`.
    Nominated {
        /// The node the preemptor is nominated to.
        node: String,
        /// The pods to delete.
        victims: Vec<Arc<PodInfo>>,
    },
    /// No node can be freed; the message (`preemption: …`) joins the FailedScheduling one.
    Failed(String),
}

/// The victims chosen on one node.
#[derive(Debug)]
struct Candidate {
    node: usize,
    victims: Vec<Arc<PodInfo>>,
    pdb_violations: usize,
}

/// A budget: which pods it covers and how many more may go.
struct Budget<'a> {
    namespace: &'a str,
    selector: LabelSelector,
    allowed: i32,
}

fn budgets(pdbs: &HashMap<String, PodDisruptionBudget>) -> Vec<Budget<'_>> {
    pdbs.values()
        .filter_map(|pdb| {
            let selector = LabelSelector::from_api(pdb.spec.as_ref()?.selector.as_ref()?).ok()?;
            Some(Budget {
                namespace: pdb.metadata.namespace.as_deref().unwrap_or_default(),
                selector,
                allowed: pdb.status.as_ref().map_or(0, |s| s.disruptions_allowed),
            })
        })
        .collect()
}

/// Whether `a` matters more than `b`: higher priority, then started earlier.
fn more_important(a: &PodInfo, b: &PodInfo) -> bool {
    if a.priority != b.priority {
        return a.priority > b.priority;
    }
    match (a.start_time, b.start_time) {
        (Some(x), Some(y)) => x < y,
        (Some(_), None) => true,
        _ => false,
    }
}

/// Runs DefaultPreemption's PostFilter for a pod that fit nowhere.
pub fn preempt(
    profile: &Profile,
    state: &CycleState,
    pod: &PodInfo,
    snapshot: &Snapshot,
    fit: &FitError,
    pdbs: &HashMap<String, PodDisruptionBudget>,
) -> Preemption {
    if pod.never_preempt {
        return Preemption::Failed(
            "preemption: not eligible due to preemptionPolicy=Never.".into(),
        );
    }
    if let Some(node) = pod.nominated_node.as_deref().and_then(|n| snapshot.node(n))
        && node
            .pods
            .iter()
            .any(|p| p.terminating && p.priority < pod.priority)
    {
        return Preemption::Failed(
            "preemption: not eligible due to a terminating pod on the nominated node.".into(),
        );
    }
    let all = snapshot.nodes.len();
    let mut statuses: HashMap<usize, Failure> = HashMap::new();
    let mut potential = Vec::new();
    for index in 0..all {
        match fit.statuses.get(&index) {
            Some(f) if f.code == Code::Unschedulable => potential.push(index),
            _ => {
                statuses.insert(
                    index,
                    Failure::unresolvable(
                        "DefaultPreemption",
                        "Preemption is not helpful for scheduling",
                    ),
                );
            }
        }
    }
    let budgets = budgets(pdbs);
    // Upstream stops after finding max(10% of the nodes, 100) candidates.
    let enough = (all / 10).max(100);
    let mut candidates = Vec::new();
    for index in potential {
        match victims_on(
            profile,
            state,
            pod,
            snapshot,
            &snapshot.nodes[index],
            &budgets,
        ) {
            Ok((victims, pdb_violations)) => {
                candidates.push(Candidate {
                    node: index,
                    victims,
                    pdb_violations,
                });
                if candidates.len() >= enough {
                    break;
                }
            }
            Err(failure) => {
                statuses.insert(index, failure);
            }
        }
    }
    match pick(candidates) {
        Some(c) => Preemption::Nominated {
            node: snapshot.nodes[c.node].name.clone(),
            victims: c.victims,
        },
        None => {
            let inner = FitError {
                num_all_nodes: all,
                statuses,
                ..Default::default()
            };
            Preemption::Failed(format!("preemption: {}", inner.message()))
        }
    }
}

/// The fewest, least important pods to remove from `node` so the pod fits, and how many of
/// them break a disruption budget.
fn victims_on(
    profile: &Profile,
    state: &CycleState,
    pod: &PodInfo,
    snapshot: &Snapshot,
    node: &NodeInfo,
    budgets: &[Budget<'_>],
) -> Result<(Vec<Arc<PodInfo>>, usize), Failure> {
    let mut lower: Vec<Arc<PodInfo>> = node
        .pods
        .iter()
        .filter(|p| p.priority < pod.priority)
        .cloned()
        .collect();
    if lower.is_empty() {
        return Err(Failure::unresolvable(
            "DefaultPreemption",
            "No preemption victims found for incoming pod",
        ));
    }
    let mut state = state.clone();
    let mut trial = node.clone();
    for victim in &lower {
        trial.remove_pod(&victim.key);
        for plugin in &profile.filters {
            plugin.remove_pod(&mut state, pod, victim, &trial);
        }
    }
    profile.filter_node(&state, pod, snapshot, &trial)?;
    lower.sort_by(|a, b| {
        if more_important(a, b) {
            std::cmp::Ordering::Less
        } else if more_important(b, a) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    // Pods whose removal would break a budget are reprieved first.
    let mut allowed: Vec<i32> = budgets.iter().map(|b| b.allowed).collect();
    let (mut violating, mut fine) = (Vec::new(), Vec::new());
    for victim in lower {
        let mut breaks = false;
        for (i, b) in budgets.iter().enumerate() {
            if b.namespace == victim.namespace && b.selector.matches(&victim.labels) {
                allowed[i] -= 1;
                if allowed[i] < 0 {
                    breaks = true;
                }
            }
        }
        if breaks {
            violating.push(victim);
        } else {
            fine.push(victim);
        }
    }
    let mut victims = Vec::new();
    let mut pdb_violations = 0;
    for (group, counts) in [(violating, true), (fine, false)] {
        for candidate in group {
            trial.add_pod(candidate.clone());
            for plugin in &profile.filters {
                plugin.add_pod(&mut state, pod, &candidate, &trial);
            }
            if profile.filter_node(&state, pod, snapshot, &trial).is_err() {
                trial.remove_pod(&candidate.key);
                for plugin in &profile.filters {
                    plugin.remove_pod(&mut state, pod, &candidate, &trial);
                }
                if counts {
                    pdb_violations += 1;
                }
                victims.push(candidate);
            }
        }
    }
    Ok((victims, pdb_violations))
}

/// Upstream's `pickOneNodeForPreemption`: fewest budget violations, then the lowest
/// highest victim priority, the smallest priority sum, the fewest victims, the latest
/// start of the most important victims.
fn pick(mut candidates: Vec<Candidate>) -> Option<Candidate> {
    let key = |c: &Candidate| {
        let highest = c
            .victims
            .iter()
            .map(|v| v.priority)
            .max()
            .unwrap_or(i32::MIN);
        let sum: i64 = c
            .victims
            .iter()
            .map(|v| i64::from(v.priority) + i64::from(i32::MAX) + 1)
            .sum();
        (c.pdb_violations, highest, sum, c.victims.len())
    };
    candidates.sort_by(|a, b| {
        key(a).cmp(&key(b)).then_with(|| {
            // Later start of the most important victim first.
            let start = |c: &Candidate| {
                c.victims
                    .iter()
                    .filter(|v| Some(v.priority) == c.victims.iter().map(|v| v.priority).max())
                    .filter_map(|v| v.start_time)
                    .min()
            };
            start(b).cmp(&start(a))
        })
    });
    candidates.into_iter().next()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::SchedulerConfig;
    use crate::profile::Rng;
    use crate::testing::{node, pod_json};
    use serde_json::json;

    fn prio_pod(name: &str, priority: i32, cpu: &str) -> Arc<PodInfo> {
        Arc::new(pod_json(json!({
            "metadata": {"name": name, "labels": {"app": name}},
            "priority": priority,
            "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}],
        })))
    }

    fn run(
        snapshot: &Snapshot,
        pod: &PodInfo,
        pdbs: &HashMap<String, PodDisruptionBudget>,
    ) -> Preemption {
        let profile = SchedulerConfig::default()
            .build_profiles()
            .unwrap()
            .remove(0);
        let mut state = CycleState::default();
        let fit = profile
            .schedule(&mut state, pod, snapshot, &mut 0, &mut Rng::new(1))
            .unwrap_err();
        preempt(&profile, &state, pod, snapshot, &fit, pdbs)
    }

    #[test]
    fn the_fewest_lowest_priority_victims_are_chosen() {
        let mut snapshot = Snapshot::new();
        snapshot.upsert_node(node("a", "4", "8Gi"));
        snapshot.upsert_node(node("b", "4", "8Gi"));
        // a: two low pods of 2 cpu; b: one mid pod of 4 cpu.
        snapshot.add_pod(prio_pod("low-1", 1, "2"), "a", false);
        snapshot.add_pod(prio_pod("low-2", 1, "2"), "a", false);
        snapshot.add_pod(prio_pod("mid", 5, "4"), "b", false);
        match run(&snapshot, &prio_pod("high", 10, "2"), &HashMap::new()) {
            Preemption::Nominated { node, victims } => {
                assert_eq!(node, "a");
                assert_eq!(victims.len(), 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pods_of_equal_or_higher_priority_are_never_victims() {
        let mut snapshot = Snapshot::new();
        snapshot.upsert_node(node("a", "4", "8Gi"));
        snapshot.add_pod(prio_pod("same", 10, "4"), "a", false);
        match run(&snapshot, &prio_pod("high", 10, "2"), &HashMap::new()) {
            Preemption::Failed(msg) => assert_eq!(
                msg,
                "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn preemption_does_not_help_against_taints() {
        let mut snapshot = Snapshot::new();
        let mut tainted = node("a", "4", "8Gi");
        tainted.spec = Some(
            serde_json::from_value(
                json!({"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}),
            )
            .unwrap(),
        );
        snapshot.upsert_node(tainted);
        match run(&snapshot, &prio_pod("high", 10, "2"), &HashMap::new()) {
            Preemption::Failed(msg) => assert_eq!(
                msg,
                "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn budgets_steer_preemption_to_unprotected_pods() {
        let mut snapshot = Snapshot::new();
        snapshot.upsert_node(node("a", "4", "8Gi"));
        snapshot.upsert_node(node("b", "4", "8Gi"));
        snapshot.add_pod(prio_pod("protected", 1, "4"), "a", false);
        snapshot.add_pod(prio_pod("free", 2, "4"), "b", false);
        let pdb: PodDisruptionBudget = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "protected"}}},
            "status": {"disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1},
        }))
        .unwrap();
        let pdbs = HashMap::from([("default/p".to_owned(), pdb)]);
        match run(&snapshot, &prio_pod("high", 10, "2"), &pdbs) {
            Preemption::Nominated { node, victims } => {
                assert_eq!(node, "b");
                assert_eq!(victims[0].name, "free");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pods_that_never_preempt_are_not_eligible() {
        let mut snapshot = Snapshot::new();
        snapshot.upsert_node(node("a", "1", "8Gi"));
        let pod = pod_json(json!({"preemptionPolicy": "Never", "priority": 10,
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "2"}}}]}));
        match run(&snapshot, &pod, &HashMap::new()) {
            Preemption::Failed(msg) => {
                assert_eq!(
                    msg,
                    "preemption: not eligible due to preemptionPolicy=Never."
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
