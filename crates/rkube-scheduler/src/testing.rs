//! Builders for unit tests: nodes and pods from a few numbers or a JSON fragment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

use crate::types::{NodeInfo, PodInfo};

/// A ready node with this much cpu and memory and room for 110 pods.
pub fn node(name: &str, cpu: &str, memory: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": "110"}},
    }))
    .unwrap()
}

/// A pod in `default` with one container requesting this much.
pub fn pod(name: &str, cpu: &str, memory: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "uid": name},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]},
    }))
    .unwrap()
}

/// A compiled pod requesting this much.
pub fn pod_info(cpu: &str, memory: &str) -> PodInfo {
    PodInfo::new(pod("p", cpu, memory))
}

/// A compiled pod with this spec (a container is added when none is given); `metadata`
/// in the value, if any, is taken as the pod's metadata.
pub fn pod_json(spec: Value) -> PodInfo {
    let mut spec = spec;
    let metadata = spec
        .as_object_mut()
        .and_then(|o| o.remove("metadata"))
        .unwrap_or_else(|| json!({}));
    if spec.get("containers").is_none() {
        spec["containers"] = json!([{"name": "c"}]);
    }
    let mut meta = json!({"name": "p", "namespace": "default", "uid": "p"});
    if let Some(extra) = metadata.as_object() {
        for (k, v) in extra {
            meta[k] = v.clone();
        }
    }
    PodInfo::new(serde_json::from_value(json!({"metadata": meta, "spec": spec})).unwrap())
}

/// A node with 4 cpu and 8Gi plus whatever `extra` sets (metadata, spec, status merged in).
pub fn with_node(name: &str, extra: Value) -> NodeInfo {
    let mut value = json!({
        "metadata": {"name": name},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
    });
    for part in ["metadata", "spec", "status"] {
        if let Some(fields) = extra.get(part).and_then(Value::as_object) {
            if value.get(part).is_none() {
                value[part] = json!({});
            }
            for (k, v) in fields {
                value[part][k] = v.clone();
            }
        }
    }
    NodeInfo::new(Arc::new(serde_json::from_value(value).unwrap()))
}

/// A node with this much, already running pods with these (cpu, memory) requests.
pub fn node_info(cpu: &str, memory: &str, used: &[(&str, &str)]) -> NodeInfo {
    let mut info = NodeInfo::new(Arc::new(node("n", cpu, memory)));
    for (i, (c, m)) in used.iter().enumerate() {
        info.add_pod(Arc::new(PodInfo::new(pod(&format!("used-{i}"), c, m))));
    }
    info
}
