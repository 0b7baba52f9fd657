//! PodTopologySpread: `DoNotSchedule` constraints filter nodes whose domain would exceed
//! `maxSkew` over the least populated domain (with `minDomains`); `ScheduleAnyway`
//! constraints score nodes by how many matching pods their domains already hold.
//!
//! A pod without constraints of its own gets the cluster's default constraints (the
//! plugin's `defaultConstraints` with `defaultingType: List`, or the system's: hostname
//! with maxSkew 3 and zone with maxSkew 5, both `ScheduleAnyway`), counting the pods that
//! the Services and controllers selecting it select; when nothing selects it, none.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Taint;
use rkube_api::FieldError;
use rkube_api::selector::LabelSelector;
use rkube_api::validation::names::is_qualified_name;
use serde_json::Value;

use crate::cache::{LabelValues, Snapshot};
use crate::framework::{CycleState, Failure, MAX_NODE_SCORE, Plugin, PreFilter, events};
use crate::types::{NodeInfo, PodInfo, SpreadConstraint, tolerated};

const NAME: &str = "PodTopologySpread";
const SCORE_STATE: &str = "PodTopologySpread/score";
const HOSTNAME: &str = "kubernetes.io/hostname";
const ZONE: &str = "topology.kubernetes.io/zone";

/// PodTopologySpread, with the default constraints for pods that have none.
pub struct PodTopologySpread {
    /// Constraints for pods without their own; the selector is filled in per pod.
    defaults: Vec<SpreadConstraint>,
    /// Whether `defaults` are the system's. Upstream then scores nodes that lack one of the
    /// keys (a cluster without zones still spreads by hostname) instead of ignoring them.
    system_defaulted: bool,
}

impl Default for PodTopologySpread {
    /// The system defaults, as upstream's `defaultingType: System`.
    fn default() -> Self {
        PodTopologySpread {
            defaults: vec![
                default_constraint(3, HOSTNAME, false),
                default_constraint(5, ZONE, false),
            ],
            system_defaulted: true,
        }
    }
}

fn default_constraint(max_skew: i32, key: &str, hard: bool) -> SpreadConstraint {
    SpreadConstraint {
        max_skew,
        topology_key: key.to_owned(),
        hard,
        selector: LabelSelector::nothing(),
        min_domains: 1,
        honor_node_affinity: true,
        honor_taints: false,
    }
}

/// One error, or upstream's aggregate `[a, b]` of several.
fn aggregate(errors: &[FieldError]) -> String {
    let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    match texts.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

impl PodTopologySpread {
    /// The plugin with `defaults` (`defaultingType: List`).
    pub fn with_defaults(defaults: Vec<SpreadConstraint>) -> Self {
        PodTopologySpread {
            defaults,
            system_defaulted: false,
        }
    }

    /// PodTopologySpreadArgs: `defaultingType` (`System`, the default, or `List`) and
    /// `defaultConstraints`, checked as upstream's `ValidatePodTopologySpreadArgs`.
    pub fn from_args(args: &Value) -> Result<Self, String> {
        let mut errors = Vec::new();
        let list = args
            .get("defaultConstraints")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let defaulting = match args.get("defaultingType") {
            None | Some(Value::Null) => "System".to_owned(),
            Some(Value::String(s)) if s.is_empty() => "System".to_owned(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        match defaulting.as_str() {
            "System" if !list.is_empty() => errors.push(FieldError::invalid(
                "defaultingType",
                "System",
                "when .defaultConstraints are not empty",
            )),
            "System" | "List" => {}
            other => errors.push(FieldError::not_supported(
                "defaultingType",
                other,
                &["System", "List"],
            )),
        }
        let mut defaults = Vec::new();
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for (i, c) in list.iter().enumerate() {
            let path = format!("defaultConstraints[{i}]");
            let max_skew = c.get("maxSkew").and_then(Value::as_i64).unwrap_or(0);
            if max_skew <= 0 || max_skew > i64::from(i32::MAX) {
                errors.push(FieldError::invalid(
                    format!("{path}.maxSkew"),
                    max_skew,
                    "not in valid range (0, inf)",
                ));
            }
            let key = c.get("topologyKey").and_then(Value::as_str).unwrap_or("");
            if key.is_empty() {
                errors.push(FieldError::required(
                    format!("{path}.topologyKey"),
                    "can not be empty",
                ));
            } else {
                for message in is_qualified_name(key) {
                    errors.push(FieldError::invalid(
                        format!("{path}.topologyKey"),
                        key,
                        &message,
                    ));
                }
            }
            let when = c
                .get("whenUnsatisfiable")
                .and_then(Value::as_str)
                .unwrap_or("");
            match when {
                "" => errors.push(FieldError::required(
                    format!("{path}.whenUnsatisfiable"),
                    "can not be empty",
                )),
                "DoNotSchedule" | "ScheduleAnyway" => {}
                other => errors.push(FieldError::not_supported(
                    format!("{path}.whenUnsatisfiable"),
                    other,
                    &["DoNotSchedule", "ScheduleAnyway"],
                )),
            }
            if c.get("labelSelector").is_some_and(|s| !s.is_null()) {
                errors.push(FieldError::forbidden(
                    format!("{path}.labelSelector"),
                    "constraint must not define a selector, as they deduced for each pod",
                ));
            }
            if seen.contains(&(key, when)) {
                errors.push(FieldError::duplicate(path, format!("{{{key}, {when}}}")));
            }
            seen.push((key, when));
            let mut constraint = default_constraint(max_skew as i32, key, when == "DoNotSchedule");
            if let Some(m) = c.get("minDomains").and_then(Value::as_i64) {
                constraint.min_domains = (m as i32).max(1);
            }
            constraint.honor_node_affinity =
                c.get("nodeAffinityPolicy").and_then(Value::as_str) != Some("Ignore");
            constraint.honor_taints =
                c.get("nodeTaintsPolicy").and_then(Value::as_str) == Some("Honor");
            defaults.push(constraint);
        }
        if !errors.is_empty() {
            return Err(format!("{NAME}: {}", aggregate(&errors)));
        }
        Ok(if defaulting == "List" {
            Self::with_defaults(defaults)
        } else {
            Self::default()
        })
    }

    /// The pod's constraints of one kind (`hard`: DoNotSchedule): its own, or when it has
    /// none, the defaults with the selector of what selects it (none when nothing does).
    fn constraints(&self, pod: &PodInfo, snapshot: &Snapshot, hard: bool) -> Vec<SpreadConstraint> {
        if !pod.spread.is_empty() {
            return pod
                .spread
                .iter()
                .filter(|c| c.hard == hard)
                .cloned()
                .collect();
        }
        let mut defaults: Vec<SpreadConstraint> = self
            .defaults
            .iter()
            .filter(|c| c.hard == hard)
            .cloned()
            .collect();
        if defaults.is_empty() {
            return defaults;
        }
        let Some(selector) = snapshot.workloads.default_selector(pod) else {
            return Vec::new();
        };
        for c in &mut defaults {
            c.selector = selector.clone();
        }
        defaults
    }
}

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

fn has_all_keys(constraints: &[SpreadConstraint], node: &NodeInfo) -> bool {
    constraints
        .iter()
        .all(|c| node.labels.contains_key(&c.topology_key))
}

/// Per hard constraint: matching pods per domain value, and the domains' minimum.
#[derive(Clone, Default)]
struct FilterState {
    /// The pod's hard constraints (its own or the defaults).
    constraints: Vec<SpreadConstraint>,
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
        if !has_all_keys(&self.constraints, node) {
            return;
        }
        for (slot, c) in self.constraints.iter().enumerate() {
            if !eligible(pod, c, node) || !counts_pod(pod, c, other) {
                continue;
            }
            if let Some(value) = node.labels.get(&c.topology_key) {
                *self.counts[slot].entry(value.clone()).or_default() += by;
            }
        }
    }
}

/// Per soft constraint: matching pods per domain among the feasible nodes' domains
/// (hostname domains are counted per node at Score), and the constraint's weight.
#[derive(Clone)]
struct ScoreState {
    constraints: Vec<SpreadConstraint>,
    counts: Vec<HashMap<String, i64>>,
    weights: Vec<f64>,
    /// Whether nodes lacking a key are left unscored (always, except for system defaults).
    require_all_keys: bool,
    /// Per constraint, its matching pods on each node (indexed like `Snapshot::nodes`).
    matching: Vec<Arc<Vec<i64>>>,
    /// Per constraint, each node's domain (indexed like `Snapshot::nodes`).
    values: Vec<LabelValues>,
}

impl ScoreState {
    /// A node's raw score; `domain(slot, constraint)` is the node's value of a constraint's
    /// key, and `on_node(slot, constraint)` counts a hostname constraint's matching pods there.
    fn score<'a>(
        &self,
        domain: impl Fn(usize, &SpreadConstraint) -> Option<&'a str>,
        on_node: impl Fn(usize, &SpreadConstraint) -> i64,
    ) -> i64 {
        if self.require_all_keys
            && !(self.constraints.iter().enumerate()).all(|(slot, c)| domain(slot, c).is_some())
        {
            // Nodes without the keys are ignored, and score 0 after normalizing.
            return i64::MIN;
        }
        let mut total = 0.0;
        for (slot, c) in self.constraints.iter().enumerate() {
            let Some(value) = domain(slot, c) else {
                continue;
            };
            let n = if c.topology_key == HOSTNAME {
                on_node(slot, c)
            } else {
                self.counts[slot].get(value).copied().unwrap_or(0)
            };
            // maxSkew - 1 waters down small differences: the larger the allowed skew, the
            // less a few pods more matter.
            total += n as f64 * self.weights[slot] + f64::from(c.max_skew - 1);
        }
        total.round() as i64
    }
}

/// Per constraint, how many pods it counts on each node: the pod's namespace, not
/// terminating, matching the constraint's selector (from the cache's selector counts).
fn matching_pods(
    pod: &PodInfo,
    constraints: &[SpreadConstraint],
    snapshot: &Snapshot,
) -> Vec<Arc<Vec<i64>>> {
    constraints
        .iter()
        .map(|c| snapshot.matching_pods(&pod.namespace, &c.selector))
        .collect()
}

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> u32 {
        // Upstream registers pod and node events only: what selects a pod matters to its
        // score, never to whether it fits. A deleted node can lower a domain's skew.
        events::POD_ADD
            | events::POD_DELETE
            | events::NODE_ADD
            | events::NODE_DELETE
            | events::NODE_LABEL
            | events::NODE_TAINT
    }
    fn filters(&self) -> bool {
        true
    }
    fn scores(&self) -> bool {
        true
    }
    fn reads_workloads(&self) -> bool {
        !self.defaults.is_empty()
    }
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> Result<PreFilter, Failure> {
        let constraints = self.constraints(pod, snapshot, true);
        if constraints.is_empty() {
            return Ok(PreFilter::Skip);
        }
        let matching = matching_pods(pod, &constraints, snapshot);
        let mut s = FilterState {
            counts: vec![HashMap::new(); constraints.len()],
            constraints,
        };
        for (index, node) in snapshot.nodes.iter().enumerate() {
            if !has_all_keys(&s.constraints, node) {
                continue;
            }
            for (slot, c) in s.constraints.iter().enumerate() {
                if !eligible(pod, c, node) {
                    continue;
                }
                let Some(value) = node.labels.get(&c.topology_key) else {
                    continue;
                };
                *s.counts[slot].entry(value.clone()).or_default() += matching[slot][index];
            }
        }
        state.write(NAME, s);
        Ok(PreFilter::Continue)
    }
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Failure> {
        let Some(s) = state.read::<FilterState>(NAME) else {
            return Ok(());
        };
        for (slot, c) in s.constraints.iter().enumerate() {
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
        let constraints = self.constraints(pod, snapshot, false);
        if constraints.is_empty() {
            return false;
        }
        // Only the system defaults score nodes that lack a key, so that a cluster without
        // zone labels still spreads by hostname (upstream's `requireAllTopologies`).
        let require_all_keys = !pod.spread.is_empty() || !self.system_defaulted;
        // Each node's domain per constraint, from the snapshot (the same between node
        // changes); a pass over every node per placed pod then compares no labels.
        let values: Vec<LabelValues> = constraints
            .iter()
            .map(|c| snapshot.label_values(&c.topology_key))
            .collect();
        let keyed = |index: usize| values.iter().all(|v| v[index].is_some());
        let mut counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); constraints.len()];
        let mut scored = 0usize;
        for index in feasible {
            if require_all_keys && !keyed(*index) {
                continue;
            }
            scored += 1;
            for (slot, c) in constraints.iter().enumerate() {
                if c.topology_key == HOSTNAME {
                    continue;
                }
                // A node without the key is the "" domain, as upstream's map lookup gives.
                let value = values[slot][*index].as_deref().unwrap_or_default();
                if !counts[slot].contains_key(value) {
                    counts[slot].insert(value.to_owned(), 0);
                }
            }
        }
        // Each constraint's weight grows with its number of domains among feasible nodes,
        // so counts in small topologies are not drowned by big ones.
        let weights: Vec<f64> = constraints
            .iter()
            .zip(&counts)
            .map(|(c, domains)| {
                let size = if c.topology_key == HOSTNAME {
                    scored
                } else {
                    domains.len()
                };
                ((size + 2) as f64).ln()
            })
            .collect();
        let matching = matching_pods(pod, &constraints, snapshot);
        for (index, node) in snapshot.nodes.iter().enumerate() {
            if require_all_keys && !keyed(index) {
                continue;
            }
            for (slot, c) in constraints.iter().enumerate() {
                // A node with no matching pods adds nothing to its domain.
                if c.topology_key == HOSTNAME
                    || matching[slot][index] == 0
                    || !eligible(pod, c, node)
                {
                    continue;
                }
                let value = values[slot][index].as_deref().unwrap_or_default();
                if let Some(n) = counts[slot].get_mut(value) {
                    *n += matching[slot][index];
                }
            }
        }
        state.write(
            SCORE_STATE,
            ScoreState {
                constraints,
                counts,
                weights,
                require_all_keys,
                matching,
                values,
            },
        );
        true
    }
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(s) = state.read::<ScoreState>(SCORE_STATE) else {
            return 0;
        };
        s.score(
            |_, c| node.labels.get(&c.topology_key).map(String::as_str),
            |_, c| node.pods.iter().filter(|p| counts_pod(pod, c, p)).count() as i64,
        )
    }
    fn score_nodes(
        &self,
        state: &CycleState,
        _pod: &PodInfo,
        _snapshot: &Snapshot,
        nodes: &[usize],
        scores: &mut [i64],
    ) {
        let Some(s) = state.read::<ScoreState>(SCORE_STATE) else {
            scores.fill(0);
            return;
        };
        for (slot, index) in scores.iter_mut().zip(nodes) {
            *slot = s.score(
                |at, _| s.values[at][*index].as_deref(),
                |at, _| s.matching[at][*index],
            );
        }
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
#[path = "spread_tests.rs"]
mod tests;
