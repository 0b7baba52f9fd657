//! The scheduler's cache of the cluster: every node with the pods bound or assumed on it.
//!
//! The scheduling loop owns the cache and applies informer events between cycles, so a
//! cycle reads a consistent picture without copying it: the cache is the cycle's snapshot.
//! A pod is *assumed* on its node as soon as the scheduler picks the node, before the
//! binding is written, so the next cycle already counts its requests; the informer's
//! update confirms it, a failed binding forgets it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::core::v1::Node;
use rkube_api::selector::LabelSelector;

use crate::framework::events;
use crate::types::{NodeInfo, PodInfo, PodKey};
use crate::volumes::VolumeCache;
use crate::workloads::WorkloadSelectors;

/// Where a pod is accounted.
#[derive(Clone, Debug)]
struct Placement {
    node: String,
    assumed: bool,
}

/// The cluster as the scheduler sees it; see the module docs.
#[derive(Default)]
pub struct Snapshot {
    /// Every node, in a stable order (the order filtering walks them).
    pub nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    placements: HashMap<PodKey, Placement>,
    /// Pods bound to nodes the cache does not know (yet), by node.
    orphans: HashMap<String, Vec<Arc<PodInfo>>>,
    /// How many nodes have each image.
    image_nodes: HashMap<String, usize>,
    /// Namespace labels, for namespace selectors in pod affinity terms.
    pub namespaces: HashMap<String, BTreeMap<String, String>>,
    /// Pods nominated to nodes by preemption, by node.
    pub nominated: HashMap<String, Vec<Arc<PodInfo>>>,
    /// Persistent volumes, claims and storage classes.
    pub volumes: VolumeCache,
    /// The selectors of Services, ReplicationControllers, ReplicaSets and StatefulSets.
    pub workloads: WorkloadSelectors,
    /// How many accounted pods have pod affinity or anti-affinity terms.
    pods_with_affinity: usize,
    /// How many accounted pods have required anti-affinity terms.
    pods_with_required_anti_affinity: usize,
    /// Per-node counts of the pods matching recently asked-for selectors.
    selector_counts: Mutex<SelectorCounts>,
    /// Each node's value of the label keys asked for since the nodes or their labels last
    /// changed, in node order.
    label_values: Mutex<HashMap<String, LabelValues>>,
}

/// Each node's value of one label key, in node order (`None` where a node lacks it).
pub type LabelValues = Arc<Vec<Option<String>>>;

/// How many (namespace, selector) pairs keep their per-node counts.
const COUNTED_SELECTORS: usize = 16;

/// Matching pods per node for the (namespace, selector) pairs asked for most recently.
///
/// Spreading counts, for every pod it places, the pods its workload's selector matches on
/// every node; pods of one workload are placed one after another, so the counts of a few
/// recent selectors, kept up to date as pods are accounted and forgotten, answer that in
/// one step per node instead of one per pod in the cluster.
#[derive(Default)]
struct SelectorCounts {
    entries: Vec<CountedSelector>,
    clock: u64,
}

struct CountedSelector {
    namespace: String,
    selector: LabelSelector,
    /// Indexed like `Snapshot::nodes`.
    per_node: Arc<Vec<i64>>,
    used: u64,
}

impl CountedSelector {
    /// Whether the selector counts `pod`: same namespace, not terminating, labels match.
    fn counts(&self, pod: &PodInfo) -> bool {
        pod.namespace == self.namespace && !pod.terminating && self.selector.matches(&pod.labels)
    }

    fn count(&self, info: &NodeInfo) -> i64 {
        info.pods.iter().filter(|p| self.counts(p)).count() as i64
    }
}

impl Snapshot {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The node with this name.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|i| &self.nodes[*i])
    }

    /// The index of the node with this name.
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// How many nodes have `image` (normalized).
    pub fn image_spread(&self, image: &str) -> usize {
        self.image_nodes.get(image).copied().unwrap_or(0)
    }

    /// How many pods are accounted (bound and assumed).
    pub fn pod_count(&self) -> usize {
        self.placements.len()
    }

    /// Whether the pod is assumed (picked, binding not yet confirmed).
    pub fn is_assumed(&self, key: &str) -> bool {
        self.placements.get(key).is_some_and(|p| p.assumed)
    }

    /// The node a pod is accounted on.
    pub fn node_of(&self, key: &str) -> Option<&str> {
        self.placements.get(key).map(|p| p.node.as_str())
    }

    /// Whether any accounted pod has pod affinity or anti-affinity terms.
    pub fn any_pod_with_affinity(&self) -> bool {
        self.pods_with_affinity > 0
    }

    /// Whether any accounted pod has required anti-affinity terms.
    pub fn any_pod_with_required_anti_affinity(&self) -> bool {
        self.pods_with_required_anti_affinity > 0
    }

    /// How many pods in `namespace` that are not terminating and match `selector` each node
    /// holds, indexed like [`Snapshot::nodes`].
    pub fn matching_pods(&self, namespace: &str, selector: &LabelSelector) -> Arc<Vec<i64>> {
        let mut counts = self.counts();
        counts.clock += 1;
        let clock = counts.clock;
        if let Some(entry) = counts
            .entries
            .iter_mut()
            .find(|e| e.namespace == namespace && e.selector == *selector)
        {
            entry.used = clock;
            return entry.per_node.clone();
        }
        let mut entry = CountedSelector {
            namespace: namespace.to_owned(),
            selector: selector.clone(),
            per_node: Arc::default(),
            used: clock,
        };
        entry.per_node = Arc::new(self.nodes.iter().map(|n| entry.count(n)).collect());
        let per_node = entry.per_node.clone();
        if counts.entries.len() >= COUNTED_SELECTORS
            && let Some(oldest) = (0..counts.entries.len()).min_by_key(|i| counts.entries[*i].used)
        {
            counts.entries.swap_remove(oldest);
        }
        counts.entries.push(entry);
        per_node
    }

    /// Each node's value of the label `key`, in node order. Spreading reads the domain of
    /// every node for every pod it places; between node changes that is one answer.
    pub fn label_values(&self, key: &str) -> LabelValues {
        let mut cached = self
            .label_values
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(values) = cached.get(key) {
            return values.clone();
        }
        let values: LabelValues = Arc::new(
            self.nodes
                .iter()
                .map(|n| n.labels.get(key).cloned())
                .collect(),
        );
        cached.insert(key.to_owned(), values.clone());
        values
    }

    fn forget_label_values(&mut self) {
        self.label_values
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, SelectorCounts> {
        self.selector_counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `by` to the counts of the selectors matching `pod` on node `index`.
    fn count_pod(&self, pod: &PodInfo, index: usize, by: i64) {
        for entry in &mut self.counts().entries {
            if entry.counts(pod) {
                Arc::make_mut(&mut entry.per_node)[index] += by;
            }
        }
    }

    fn count_affinity(&mut self, pod: &PodInfo, add: bool) {
        let step = |n: &mut usize| {
            if add {
                *n += 1;
            } else {
                *n = n.saturating_sub(1);
            }
        };
        if pod.has_affinity() {
            step(&mut self.pods_with_affinity);
        }
        if !pod.required_anti_affinity.is_empty() {
            step(&mut self.pods_with_required_anti_affinity);
        }
    }

    /// Marks an assumed pod as bound (its binding was observed), keeping what is accounted.
    /// Returns false if the pod is not assumed on `node`.
    pub fn confirm(&mut self, key: &str, node: &str) -> bool {
        match self.placements.get_mut(key) {
            Some(p) if p.assumed && p.node == node => {
                p.assumed = false;
                true
            }
            _ => false,
        }
    }

    /// Labels of a namespace.
    pub fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.namespaces.get(namespace).cloned()
    }

    fn count_images(&mut self, info: &NodeInfo, delta: isize) {
        for image in info.images.keys() {
            let n = self.image_nodes.entry(image.clone()).or_default();
            *n = n.saturating_add_signed(delta);
            if *n == 0 {
                self.image_nodes.remove(image);
            }
        }
    }

    /// Adds or replaces a node; returns the events (bit set) the change amounts to, 0 when
    /// nothing the scheduler looks at changed.
    pub fn upsert_node(&mut self, node: Node) -> u32 {
        let name = node.metadata.name.clone().unwrap_or_default();
        let node = Arc::new(node);
        match self.index.get(&name).copied() {
            Some(i) => {
                let old = self.nodes[i].clone_header();
                self.count_images(&old, -1);
                self.nodes[i].set_node(node);
                let new = &self.nodes[i];
                let mut changed = 0;
                if old.allocatable != new.allocatable {
                    changed |= events::NODE_ALLOCATABLE;
                }
                if old.labels != new.labels {
                    changed |= events::NODE_LABEL;
                }
                if old.taints != new.taints || old.unschedulable != new.unschedulable {
                    changed |= events::NODE_TAINT;
                }
                if old.images != new.images {
                    changed |= events::NODE_IMAGES;
                }
                if changed & events::NODE_LABEL != 0 {
                    self.forget_label_values();
                }
                let header = self.nodes[i].clone_header();
                self.count_images(&header, 1);
                changed
            }
            None => {
                let mut info = NodeInfo::new(node);
                for pod in self.orphans.remove(&name).unwrap_or_default() {
                    info.add_pod(pod);
                }
                self.count_images(&info.clone_header(), 1);
                for entry in &mut self.counts().entries {
                    let n = entry.count(&info);
                    Arc::make_mut(&mut entry.per_node).push(n);
                }
                self.index.insert(name, self.nodes.len());
                self.nodes.push(info);
                self.forget_label_values();
                events::NODE_ADD
            }
        }
    }

    /// Removes a node; its pods stay accounted, as orphans, until they are deleted.
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else {
            return;
        };
        let info = self.nodes.swap_remove(i);
        self.forget_label_values();
        for entry in &mut self.counts().entries {
            Arc::make_mut(&mut entry.per_node).swap_remove(i);
        }
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
        self.count_images(&info.clone_header(), -1);
        if !info.pods.is_empty() {
            self.orphans.insert(info.name.clone(), info.pods);
        }
    }

    /// Accounts a pod on `node`: bound (from the informer) or assumed (just picked).
    /// A pod already accounted elsewhere is moved.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>, node: &str, assumed: bool) {
        self.remove_pod(&pod.key);
        self.count_affinity(&pod, true);
        self.placements.insert(
            pod.key.clone(),
            Placement {
                node: node.to_owned(),
                assumed,
            },
        );
        match self.index.get(node).copied() {
            Some(i) => {
                self.count_pod(&pod, i, 1);
                self.nodes[i].add_pod(pod);
            }
            None => self.orphans.entry(node.to_owned()).or_default().push(pod),
        }
    }

    /// Stops accounting a pod; returns it if it was accounted.
    pub fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let placement = self.placements.remove(key)?;
        let pod = match self.index.get(&placement.node).copied() {
            Some(i) => {
                let pod = self.nodes[i].remove_pod(key);
                if let Some(pod) = &pod {
                    self.count_pod(pod, i, -1);
                }
                pod
            }
            None => {
                let list = self.orphans.get_mut(&placement.node)?;
                let at = list.iter().position(|p| p.key == key)?;
                let pod = list.swap_remove(at);
                if list.is_empty() {
                    self.orphans.remove(&placement.node);
                }
                Some(pod)
            }
        }?;
        self.count_affinity(&pod, false);
        Some(pod)
    }

    /// Records (or with `None` clears) a pod's nominated node.
    pub fn nominate(&mut self, pod: &Arc<PodInfo>, node: Option<&str>) {
        self.nominated.retain(|_, pods| {
            pods.retain(|p| p.key != pod.key);
            !pods.is_empty()
        });
        if let Some(node) = node {
            self.nominated
                .entry(node.to_owned())
                .or_default()
                .push(pod.clone());
        }
    }
}

impl NodeInfo {
    /// The node-level facts without the pods, for comparing before and after an update.
    fn clone_header(&self) -> NodeInfo {
        NodeInfo {
            name: self.name.clone(),
            node: self.node.clone(),
            labels: self.labels.clone(),
            taints: self.taints.clone(),
            unschedulable: self.unschedulable,
            allocatable: self.allocatable.clone(),
            requested: Default::default(),
            non_zero_requested: (0, 0),
            pods: Vec::new(),
            used_ports: Vec::new(),
            images: self.images.clone(),
            pods_with_affinity: 0,
            pods_with_required_anti_affinity: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::{node, pod};

    #[test]
    fn assumed_pods_count_until_forgotten_and_survive_node_updates() {
        let mut cache = Snapshot::new();
        assert_eq!(cache.upsert_node(node("n1", "4", "8Gi")), events::NODE_ADD);
        let p = Arc::new(PodInfo::new(pod("p", "1", "1Gi")));
        cache.add_pod(p.clone(), "n1", true);
        assert!(cache.is_assumed("default/p"));
        assert_eq!(cache.node("n1").unwrap().requested.milli_cpu, 1000);
        assert_eq!(cache.upsert_node(node("n1", "4", "8Gi")), 0);
        assert_eq!(
            cache.upsert_node(node("n1", "8", "8Gi")),
            events::NODE_ALLOCATABLE
        );
        assert_eq!(cache.node("n1").unwrap().requested.milli_cpu, 1000);
        cache.remove_pod("default/p");
        assert_eq!(cache.node("n1").unwrap().requested.milli_cpu, 0);
        assert_eq!(cache.pod_count(), 0);
    }

    #[test]
    fn pods_of_an_unknown_node_join_it_when_it_appears() {
        let mut cache = Snapshot::new();
        cache.add_pod(Arc::new(PodInfo::new(pod("p", "1", "1Gi"))), "late", false);
        cache.upsert_node(node("early", "4", "8Gi"));
        cache.upsert_node(node("late", "4", "8Gi"));
        assert_eq!(cache.node("late").unwrap().pods.len(), 1);
        cache.remove_node("early");
        assert_eq!(cache.node_index("late"), Some(0));
        assert_eq!(cache.node("late").unwrap().requested.milli_cpu, 1000);
    }

    #[test]
    fn selector_counts_follow_pods_and_nodes() {
        let labelled = |name: &str, app: &str, namespace: &str| {
            let mut p = pod(name, "1", "1Gi");
            p.metadata.namespace = Some(namespace.to_owned());
            p.metadata.labels = Some([("app".to_owned(), app.to_owned())].into());
            p
        };
        let info = |p| Arc::new(PodInfo::new(p));
        let web = LabelSelector::parse("app=web").unwrap();
        let mut cache = Snapshot::new();
        cache.upsert_node(node("n1", "4", "8Gi"));
        cache.upsert_node(node("n2", "4", "8Gi"));
        cache.add_pod(info(labelled("a", "web", "default")), "n1", false);
        assert_eq!(*cache.matching_pods("default", &web), vec![1, 0]);
        // Kept up to date from here on, as a fresh count would give.
        cache.add_pod(info(labelled("b", "web", "default")), "n2", true);
        cache.add_pod(info(labelled("c", "db", "default")), "n2", false);
        cache.add_pod(info(labelled("d", "web", "other")), "n2", false);
        cache.add_pod(info(labelled("e", "web", "default")), "n3", false);
        assert_eq!(*cache.matching_pods("default", &web), vec![1, 1]);
        cache.upsert_node(node("n3", "4", "8Gi"));
        assert_eq!(*cache.matching_pods("default", &web), vec![1, 1, 1]);
        cache.remove_node("n1");
        // n3 took n1's place.
        assert_eq!(*cache.matching_pods("default", &web), vec![1, 1]);
        let mut leaving = labelled("b", "web", "default");
        leaving.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        cache.add_pod(info(leaving), "n2", false);
        assert_eq!(*cache.matching_pods("default", &web), vec![1, 0]);
        cache.remove_pod("default/e");
        assert_eq!(*cache.matching_pods("default", &web), vec![0, 0]);
        assert_eq!(
            *cache.matching_pods("default", &LabelSelector::parse("app=db").unwrap()),
            vec![0, 1]
        );
    }

    #[test]
    fn label_values_follow_nodes_and_their_labels() {
        let zoned = |name: &str, zone: Option<&str>| {
            let mut n = node(name, "4", "8Gi");
            if let Some(zone) = zone {
                n.metadata
                    .labels
                    .get_or_insert_with(Default::default)
                    .insert("zone".to_owned(), zone.to_owned());
            }
            n
        };
        let values = |cache: &Snapshot| (*cache.label_values("zone")).clone();
        let mut cache = Snapshot::new();
        cache.upsert_node(zoned("n1", Some("a")));
        cache.upsert_node(zoned("n2", None));
        assert_eq!(values(&cache), [Some("a".to_owned()), None]);
        cache.upsert_node(zoned("n3", Some("b")));
        assert_eq!(
            values(&cache),
            [Some("a".to_owned()), None, Some("b".to_owned())]
        );
        // Relabelled.
        cache.upsert_node(zoned("n2", Some("c")));
        assert_eq!(
            values(&cache),
            [
                Some("a".to_owned()),
                Some("c".to_owned()),
                Some("b".to_owned())
            ]
        );
        // n3 takes n1's place.
        cache.remove_node("n1");
        assert_eq!(values(&cache), [Some("b".to_owned()), Some("c".to_owned())]);
    }
}
