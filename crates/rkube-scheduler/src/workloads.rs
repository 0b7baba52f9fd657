//! What selects a pod: the selectors of Services, ReplicationControllers, ReplicaSets and
//! StatefulSets, kept (and nothing else of those objects) so PodTopologySpread can give pods
//! without constraints of their own the cluster's default constraints, counting the pods
//! their workload selects (upstream's `helper.DefaultSelector`).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ReplicationController, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;
use kube::ResourceExt;
use rkube_api::selector::LabelSelector;

use crate::types::PodInfo;

/// Selectors by namespace and name; see the module docs.
#[derive(Debug, Default)]
pub struct WorkloadSelectors {
    /// `spec.selector` of Services that have one, by namespace, then name.
    services: HashMap<String, BTreeMap<String, BTreeMap<String, String>>>,
    /// `spec.selector` of ReplicationControllers, by `namespace/name`.
    replication_controllers: HashMap<String, BTreeMap<String, String>>,
    /// ReplicaSets' selectors as expressions (`matchLabels` turned into `In`), by
    /// `namespace/name`.
    replica_sets: HashMap<String, Vec<metav1::LabelSelectorRequirement>>,
    /// StatefulSets' selectors, likewise.
    stateful_sets: HashMap<String, Vec<metav1::LabelSelectorRequirement>>,
}

fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// Keeps `selector` for `object` by `namespace/name`, or forgets the object without one.
fn record<V>(map: &mut HashMap<String, V>, object: &impl ResourceExt, selector: Option<V>) {
    let key = key(&object.namespace().unwrap_or_default(), &object.name_any());
    match selector {
        Some(selector) => {
            map.insert(key, selector);
        }
        None => {
            map.remove(&key);
        }
    }
}

/// A `metav1.LabelSelector` as expressions, or `None` when it is not valid (upstream skips a
/// selector it cannot convert).
fn expressions(selector: &metav1::LabelSelector) -> Option<Vec<metav1::LabelSelectorRequirement>> {
    LabelSelector::from_api(selector).ok()?;
    let mut list: Vec<metav1::LabelSelectorRequirement> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| metav1::LabelSelectorRequirement {
            key: k.clone(),
            operator: "In".into(),
            values: Some(vec![v.clone()]),
        })
        .collect();
    list.extend(selector.match_expressions.iter().flatten().cloned());
    Some(list)
}

impl WorkloadSelectors {
    /// Records a Service's selector. Services without one select nothing and are dropped.
    pub fn apply_service(&mut self, service: &Service) {
        let namespace = service.namespace().unwrap_or_default();
        let name = service.name_any();
        match service.spec.as_ref().and_then(|s| s.selector.clone()) {
            Some(selector) => {
                self.services
                    .entry(namespace)
                    .or_default()
                    .insert(name, selector);
            }
            None => self.remove_service(&key(&namespace, &name)),
        }
    }

    /// Forgets a Service by `namespace/name`.
    pub fn remove_service(&mut self, key: &str) {
        let Some((namespace, name)) = key.split_once('/') else {
            return;
        };
        if let Some(services) = self.services.get_mut(namespace) {
            services.remove(name);
            if services.is_empty() {
                self.services.remove(namespace);
            }
        }
    }

    /// Records a ReplicationController's selector.
    pub fn apply_replication_controller(&mut self, rc: &ReplicationController) {
        let selector = rc.spec.as_ref().and_then(|s| s.selector.clone());
        record(&mut self.replication_controllers, rc, selector);
    }

    /// Forgets a ReplicationController by `namespace/name`.
    pub fn remove_replication_controller(&mut self, key: &str) {
        self.replication_controllers.remove(key);
    }

    /// Records a ReplicaSet's selector.
    pub fn apply_replica_set(&mut self, rs: &ReplicaSet) {
        let list = rs.spec.as_ref().and_then(|s| expressions(&s.selector));
        record(&mut self.replica_sets, rs, list);
    }

    /// Forgets a ReplicaSet by `namespace/name`.
    pub fn remove_replica_set(&mut self, key: &str) {
        self.replica_sets.remove(key);
    }

    /// Records a StatefulSet's selector.
    pub fn apply_stateful_set(&mut self, sts: &StatefulSet) {
        let list = sts.spec.as_ref().and_then(|s| expressions(&s.selector));
        record(&mut self.stateful_sets, sts, list);
    }

    /// Forgets a StatefulSet by `namespace/name`.
    pub fn remove_stateful_set(&mut self, key: &str) {
        self.stateful_sets.remove(key);
    }

    /// The selector of the pods that belong with `pod`: the selectors of the Services in
    /// its namespace that select it, merged, plus the selector of its controller when that
    /// is a ReplicationController, ReplicaSet or StatefulSet this cache knows. `None` when
    /// nothing selects the pod (upstream's empty selector: no default constraints).
    pub fn default_selector(&self, pod: &PodInfo) -> Option<LabelSelector> {
        let mut labels: BTreeMap<String, String> = BTreeMap::new();
        for selector in self
            .services
            .get(&pod.namespace)
            .into_iter()
            .flat_map(|s| s.values())
        {
            if selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v)) {
                labels.extend(selector.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        let mut requirements: Vec<metav1::LabelSelectorRequirement> = Vec::new();
        let owner = pod
            .pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true));
        if let Some(owner) = owner {
            let key = key(&pod.namespace, &owner.name);
            // Upstream compares group, version and kind exactly: `apps/v1beta2` owners are
            // not looked up.
            match (owner.api_version.as_str(), owner.kind.as_str()) {
                ("v1", "ReplicationController") => {
                    if let Some(selector) = self.replication_controllers.get(&key) {
                        labels.extend(selector.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                }
                ("apps/v1", "ReplicaSet") => {
                    requirements.extend(self.replica_sets.get(&key).into_iter().flatten().cloned());
                }
                ("apps/v1", "StatefulSet") => {
                    requirements
                        .extend(self.stateful_sets.get(&key).into_iter().flatten().cloned());
                }
                _ => {}
            }
        }
        if labels.is_empty() && requirements.is_empty() {
            return None;
        }
        LabelSelector::from_api(&metav1::LabelSelector {
            match_labels: Some(labels),
            match_expressions: Some(requirements),
        })
        .ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::{Value, json};

    use super::*;
    use crate::testing::pod_json;

    fn object<T: serde::de::DeserializeOwned>(value: Value) -> T {
        serde_json::from_value(value).unwrap()
    }

    fn owned_by(api_version: &str, kind: &str, name: &str, labels: Value) -> PodInfo {
        pod_json(json!({"metadata": {"labels": labels, "ownerReferences": [{
            "apiVersion": api_version, "kind": kind, "name": name, "uid": "u", "controller": true}]}}))
    }

    fn cache() -> WorkloadSelectors {
        let mut c = WorkloadSelectors::default();
        c.apply_service(&object(
            json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}}}),
        ));
        c.apply_service(&object(
            json!({"metadata": {"name": "other-ns", "namespace": "prod"},
            "spec": {"selector": {"app": "db"}}}),
        ));
        c.apply_service(&object(
            json!({"metadata": {"name": "headless", "namespace": "default"},
            "spec": {}}),
        ));
        c.apply_replica_set(&object(
            json!({"metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web", "hash": "1"}}}}),
        ));
        c.apply_stateful_set(&object(
            json!({"metadata": {"name": "db", "namespace": "default"},
            "spec": {"serviceName": "db", "template": {}, "selector": {"matchExpressions": [
                {"key": "app", "operator": "In", "values": ["db"]}]}}}),
        ));
        c.apply_replication_controller(&object(
            json!({"metadata": {"name": "legacy", "namespace": "default"},
            "spec": {"selector": {"app": "legacy"}}}),
        ));
        c
    }

    #[test]
    fn the_default_selector_comes_from_what_selects_the_pod() {
        let c = cache();
        let matching = |s: &Option<LabelSelector>, labels: Value| {
            let labels: BTreeMap<String, String> = serde_json::from_value(labels).unwrap();
            s.as_ref().unwrap().matches(&labels)
        };
        // Nothing selects it: no selector, so no default constraints.
        let lonely = pod_json(json!({"metadata": {"labels": {"app": "db"}}}));
        assert!(c.default_selector(&lonely).is_none());
        // A Service in its namespace selects it.
        let served = pod_json(json!({"metadata": {"labels": {"app": "web", "hash": "9"}}}));
        let s = c.default_selector(&served);
        assert!(matching(&s, json!({"app": "web"})));
        assert!(!matching(&s, json!({"app": "db"})));
        // Its ReplicaSet's selector joins the Service's.
        let replica = owned_by(
            "apps/v1",
            "ReplicaSet",
            "web-1",
            json!({"app": "web", "hash": "1"}),
        );
        let s = c.default_selector(&replica);
        assert!(matching(&s, json!({"app": "web", "hash": "1"})));
        assert!(!matching(&s, json!({"app": "web", "hash": "2"})));
        // A StatefulSet alone.
        let member = owned_by("apps/v1", "StatefulSet", "db", json!({"app": "db"}));
        assert!(matching(&c.default_selector(&member), json!({"app": "db"})));
        // A ReplicationController alone.
        let old = owned_by(
            "v1",
            "ReplicationController",
            "legacy",
            json!({"app": "legacy"}),
        );
        assert!(matching(
            &c.default_selector(&old),
            json!({"app": "legacy"})
        ));
        // An owner of another kind, or one the cache does not know, adds nothing.
        let job = owned_by("batch/v1", "Job", "web-1", json!({"app": "batch"}));
        assert!(c.default_selector(&job).is_none());
        let unknown = owned_by("apps/v1", "ReplicaSet", "gone", json!({"app": "batch"}));
        assert!(c.default_selector(&unknown).is_none());
    }

    #[test]
    fn forgotten_workloads_no_longer_select() {
        let mut c = cache();
        c.remove_service("default/web");
        c.remove_replica_set("default/web-1");
        let replica = owned_by(
            "apps/v1",
            "ReplicaSet",
            "web-1",
            json!({"app": "web", "hash": "1"}),
        );
        assert!(c.default_selector(&replica).is_none());
    }
}
