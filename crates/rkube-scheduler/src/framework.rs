//! The plugin framework: the extension points a scheduling cycle runs (PreFilter, Filter,
//! PreScore, Score, NormalizeScore, then Reserve for the chosen node and PreBind before the
//! binding is written), the per-cycle state plugins share, and the failure report that
//! becomes a pod's FailedScheduling message.

use std::any::Any;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::cache::Snapshot;
use crate::types::{NodeInfo, PodInfo};

/// The cluster events a pod rejected by a plugin may be waiting for, as a bit set: the
/// queue moves an unschedulable pod back only on an event one of its rejectors named
/// (upstream's `EventsToRegister`).
pub mod events {
    /// A node was added.
    pub const NODE_ADD: u32 = 1;
    /// A node's allocatable resources changed.
    pub const NODE_ALLOCATABLE: u32 = 1 << 1;
    /// A node's labels changed.
    pub const NODE_LABEL: u32 = 1 << 2;
    /// A node's taints or `unschedulable` changed.
    pub const NODE_TAINT: u32 = 1 << 3;
    /// A node's images changed.
    pub const NODE_IMAGES: u32 = 1 << 4;
    /// A pod was bound to a node (or its labels changed).
    pub const POD_ADD: u32 = 1 << 5;
    /// An assigned pod was deleted (its resources are free).
    pub const POD_DELETE: u32 = 1 << 6;
    /// Volumes: a claim, volume or storage class changed.
    pub const VOLUME: u32 = 1 << 7;
    /// A namespace's labels changed.
    pub const NAMESPACE: u32 = 1 << 8;
    /// A node was deleted (a topology domain may be gone).
    pub const NODE_DELETE: u32 = 1 << 9;
    /// Every event.
    pub const ALL: u32 = u32::MAX;
}

/// How a node failed a filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// The pod does not fit, but removing pods (preemption) might change that.
    Unschedulable,
    /// The pod cannot run there whatever is removed (`UnschedulableAndUnresolvable`).
    Unresolvable,
}

/// A filter's verdict against a node: why the pod cannot run there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Whether preemption could help.
    pub code: Code,
    /// The reasons, as the FailedScheduling message counts them.
    pub reasons: Vec<Cow<'static, str>>,
    /// The plugin that rejected.
    pub plugin: &'static str,
}

impl Failure {
    /// One reason that preemption might resolve.
    pub fn unschedulable(plugin: &'static str, reason: impl Into<Cow<'static, str>>) -> Self {
        Failure {
            code: Code::Unschedulable,
            reasons: vec![reason.into()],
            plugin,
        }
    }

    /// One reason that preemption cannot resolve.
    pub fn unresolvable(plugin: &'static str, reason: impl Into<Cow<'static, str>>) -> Self {
        Failure {
            code: Code::Unresolvable,
            reasons: vec![reason.into()],
            plugin,
        }
    }
}

/// State a plugin computes in PreFilter or PreScore and reads back in Filter or Score.
pub trait StateData: Any + Send + Sync {
    /// A copy, for preemption's what-if runs.
    fn clone_data(&self) -> Box<dyn StateData>;
    /// As `Any`, to downcast.
    fn as_any(&self) -> &dyn Any;
    /// As mutable `Any`, to downcast.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Any + Send + Sync + Clone> StateData for T {
    fn clone_data(&self) -> Box<dyn StateData> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// What plugins share during one cycle for one pod.
#[derive(Default)]
pub struct CycleState {
    data: foldhash::HashMap<&'static str, Box<dyn StateData>>,
    /// Plugins that asked to be skipped at Filter (their PreFilter found nothing to check).
    pub skip_filter: Vec<&'static str>,
    /// Plugins that asked to be skipped at Score.
    pub skip_score: Vec<&'static str>,
}

impl Clone for CycleState {
    fn clone(&self) -> Self {
        CycleState {
            data: self
                .data
                .iter()
                .map(|(k, v)| (*k, (**v).clone_data()))
                .collect(),
            skip_filter: self.skip_filter.clone(),
            skip_score: self.skip_score.clone(),
        }
    }
}

impl CycleState {
    /// Stores a plugin's state.
    pub fn write<T: StateData>(&mut self, key: &'static str, value: T) {
        self.data.insert(key, Box::new(value));
    }

    /// Reads a plugin's state.
    pub fn read<T: 'static>(&self, key: &'static str) -> Option<&T> {
        let data: &dyn StateData = &**self.data.get(key)?;
        data.as_any().downcast_ref()
    }

    /// Reads a plugin's state for change.
    pub fn read_mut<T: 'static>(&mut self, key: &'static str) -> Option<&mut T> {
        let data: &mut dyn StateData = &mut **self.data.get_mut(key)?;
        data.as_any_mut().downcast_mut()
    }
}

/// What PreFilter decided.
pub enum PreFilter {
    /// Go on to Filter.
    Continue,
    /// Nothing for this plugin to check: skip its Filter.
    Skip,
    /// Only these nodes can pass (upstream's `PreFilterResult.NodeNames`).
    Nodes(Vec<String>),
}

/// The API writes a plugin's PreBind makes, run after the cycle and before the pod's
/// binding is written; an error fails the binding (the message is the plugin's status).
pub type PreBindTask = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A scheduling plugin. Every extension point has a default that does nothing, so a plugin
/// implements only the points it takes part in and says which in `filters`/`scores`.
pub trait Plugin: Send + Sync {
    /// The plugin's name as configuration names it.
    fn name(&self) -> &'static str;

    /// The cluster events that may make a pod this plugin rejected schedulable.
    fn events(&self) -> u32 {
        events::ALL
    }

    /// Whether the plugin filters.
    fn filters(&self) -> bool {
        false
    }

    /// Whether the plugin scores.
    fn scores(&self) -> bool {
        false
    }

    /// Whether the plugin reads the selectors of Services, ReplicationControllers,
    /// ReplicaSets and StatefulSets (`Snapshot::workloads`); they are watched only if one
    /// does.
    fn reads_workloads(&self) -> bool {
        false
    }

    /// Checks the pod against the whole cluster before nodes are filtered; an error
    /// rejects the pod outright (its message becomes the PreFilter message).
    fn pre_filter(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _snapshot: &Snapshot,
    ) -> Result<PreFilter, Failure> {
        Ok(PreFilter::Continue)
    }

    /// Whether the pod can run on the node.
    fn filter(&self, _state: &CycleState, _pod: &PodInfo, _node: &NodeInfo) -> Result<(), Failure> {
        Ok(())
    }

    /// Updates PreFilter state for a pod added to `node` in a what-if (preemption,
    /// nominated pods).
    fn add_pod(&self, _state: &mut CycleState, _pod: &PodInfo, _added: &PodInfo, _node: &NodeInfo) {
    }

    /// Updates PreFilter state for a pod removed from `node` in a what-if.
    fn remove_pod(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _removed: &PodInfo,
        _node: &NodeInfo,
    ) {
    }

    /// Prepares scoring over the feasible nodes; `false` skips this plugin's Score.
    fn pre_score(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _snapshot: &Snapshot,
        _nodes: &[usize],
    ) -> bool {
        true
    }

    /// The node's raw score.
    fn score(&self, _state: &CycleState, _pod: &PodInfo, _node: &NodeInfo) -> i64 {
        0
    }

    /// The raw scores of the nodes at `nodes` into `scores`, in order: by default one
    /// [`Plugin::score`] per node. A plugin overrides it to score a whole pass in one loop.
    fn score_nodes(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        nodes: &[usize],
        scores: &mut [i64],
    ) {
        score_each(self, state, pod, snapshot, nodes, scores);
    }

    /// Maps raw scores onto 0..=100, in place.
    fn normalize(&self, _state: &CycleState, _pod: &PodInfo, _scores: &mut [i64]) {}

    /// Whether the plugin takes part in Reserve, Unreserve and PreBind.
    fn reserves(&self) -> bool {
        false
    }

    /// Sets aside what the pod will use on the chosen `node` (in the scheduler's cache),
    /// before its binding is written, so the next cycle does not hand it out again.
    fn reserve(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _node: &str,
        _snapshot: &mut Snapshot,
    ) -> Result<(), Failure> {
        Ok(())
    }

    /// Undoes `reserve` after a later step failed; must be safe to call when `reserve`
    /// did nothing.
    fn unreserve(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _node: &str,
        _snapshot: &mut Snapshot,
    ) {
    }

    /// The writes that must be done before the pod is bound to `node`, if any.
    fn pre_bind(
        &self,
        _client: &kube::Client,
        _state: &CycleState,
        _pod: &Arc<PodInfo>,
        _node: &str,
    ) -> Option<PreBindTask> {
        None
    }
}

/// The highest score a plugin gives a node.
pub const MAX_NODE_SCORE: i64 = 100;

/// One [`Plugin::score`] per node at `nodes`, into `scores`: the default pass, and the
/// fallback of plugins whose own pass covers only some configurations.
pub fn score_each<P: Plugin + ?Sized>(
    plugin: &P,
    state: &CycleState,
    pod: &PodInfo,
    snapshot: &Snapshot,
    nodes: &[usize],
    scores: &mut [i64],
) {
    for (slot, index) in scores.iter_mut().zip(nodes) {
        *slot = plugin.score(state, pod, &snapshot.nodes[*index]);
    }
}

/// Scales scores so the highest becomes 100 (or, reversed, the lowest), as upstream's
/// `DefaultNormalizeScore`.
pub fn default_normalize(max: i64, reverse: bool, scores: &mut [i64]) {
    let highest = scores.iter().copied().max().unwrap_or(0);
    if highest == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = max);
        }
        return;
    }
    for s in scores.iter_mut() {
        let mut v = max * *s / highest;
        if reverse {
            v = max - v;
        }
        *s = v;
    }
}

/// The FailedScheduling message when the cluster has no nodes at all.
pub const NO_NODES: &str = "no nodes available to schedule pods";

/// Why a pod could not be placed: every node's failure, summarised the way upstream's
/// `FitError` writes it.
#[derive(Clone, Debug, Default)]
pub struct FitError {
    /// How many nodes the cluster has.
    pub num_all_nodes: usize,
    /// A PreFilter rejection, which applies to every node.
    pub pre_filter_msg: Option<String>,
    /// Each node's failure, by node index in the snapshot.
    pub statuses: HashMap<usize, Failure>,
    /// What preemption had to say, if it ran.
    pub post_filter_msg: Option<String>,
    /// The plugins that rejected the pod somewhere.
    pub rejectors: Vec<&'static str>,
}

impl FitError {
    /// The reasons counted over nodes: "3 Insufficient cpu", sorted as strings.
    pub fn histogram<'a>(statuses: impl Iterator<Item = &'a Failure>) -> Vec<String> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for failure in statuses {
            for reason in &failure.reasons {
                *counts.entry(reason.as_ref()).or_default() += 1;
            }
        }
        let mut lines: Vec<String> = counts
            .into_iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        lines.sort();
        lines
    }

    /// The FailedScheduling message: `0/5 nodes are available: 2 node(s) had untolerated
    /// taint {…}, 3 Insufficient cpu. preemption: …`.
    pub fn message(&self) -> String {
        if self.num_all_nodes == 0 {
            // Upstream's ErrNoNodesAvailable: no filter ran and preemption does not either.
            return NO_NODES.to_owned();
        }
        let mut msg = format!("0/{} nodes are available:", self.num_all_nodes);
        match &self.pre_filter_msg {
            Some(pre) => {
                msg.push(' ');
                msg.push_str(pre);
                msg.push('.');
            }
            None => {
                let lines = Self::histogram(self.statuses.values());
                if !lines.is_empty() {
                    msg.push(' ');
                    msg.push_str(&lines.join(", "));
                    msg.push('.');
                }
            }
        }
        if let Some(post) = &self.post_filter_msg {
            msg.push(' ');
            msg.push_str(post);
            msg.push('.');
        }
        msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_normalize_scales_to_the_highest_score() {
        let cases: [(&[i64], bool, &[i64]); 4] = [
            (&[1, 2, 4], false, &[25, 50, 100]),
            (&[1, 2, 4], true, &[75, 50, 0]),
            (&[0, 0], false, &[0, 0]),
            (&[0, 0], true, &[100, 100]),
        ];
        for (input, reverse, want) in cases {
            let mut scores = input.to_vec();
            default_normalize(MAX_NODE_SCORE, reverse, &mut scores);
            assert_eq!(scores, want, "{input:?} reverse={reverse}");
        }
    }

    #[test]
    fn the_fit_error_message_counts_reasons_and_sorts_them_as_upstream() {
        let mut err = FitError {
            num_all_nodes: 5,
            ..Default::default()
        };
        for i in 0..3 {
            err.statuses.insert(
                i,
                Failure::unschedulable("NodeResourcesFit", "Insufficient cpu"),
            );
        }
        for i in 3..5 {
            err.statuses.insert(
                i,
                Failure::unresolvable(
                    "TaintToleration",
                    "node(s) had untolerated taint {dedicated: gpu}",
                ),
            );
        }
        err.post_filter_msg = Some(
            "preemption: 0/5 nodes are available: 2 Preemption is not helpful for scheduling, 3 No preemption victims found for incoming pod.".into(),
        );
        assert_eq!(
            err.message(),
            "0/5 nodes are available: 2 node(s) had untolerated taint {dedicated: gpu}, 3 Insufficient cpu. \
             preemption: 0/5 nodes are available: 2 Preemption is not helpful for scheduling, 3 No preemption victims found for incoming pod.."
        );
        // A cluster without nodes says so, as upstream's ErrNoNodesAvailable.
        let empty = FitError::default();
        assert_eq!(empty.message(), "no nodes available to schedule pods");
    }
}
