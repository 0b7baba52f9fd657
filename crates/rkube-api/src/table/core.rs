//! Core-group kinds other than pods and events: services, endpoints, nodes, namespaces,
//! config, storage claims and quotas.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::Value;

use super::desc::*;
use super::format::{
    age, at, count, count_cell, flag, format_labels, has, int, list, name, opt_text, or_none,
    quantity, text,
};
use super::{AGE, Column, NAME, col, wide};

/// `kubectl get configmaps`.
pub(super) const CONFIG_MAP: &[Column] = &[NAME, col("Data", "string", CM_DATA), AGE];

/// One config map's row: DATA counts `data` and `binaryData` keys.
pub(super) fn config_map(object: &Value, now: Timestamp) -> Vec<Value> {
    let keys = count(object, &["data"]) + count(object, &["binaryData"]);
    vec![name(object), count_cell(keys), age(object, now)]
}

/// `kubectl get secrets`.
pub(super) const SECRET: &[Column] = &[
    NAME,
    col("Type", "string", SECRET_TYPE),
    col("Data", "string", SECRET_DATA),
    AGE,
];

/// One secret's row. `stringData` keys count too: upstream merges them into `data` before
/// printing.
pub(super) fn secret(object: &Value, now: Timestamp) -> Vec<Value> {
    let mut keys: BTreeSet<&str> = BTreeSet::new();
    for field in ["data", "stringData"] {
        if let Some(map) = at(object, &[field]).and_then(Value::as_object) {
            keys.extend(map.keys().map(String::as_str));
        }
    }
    vec![
        name(object),
        Value::from(text(object, &["type"])),
        count_cell(keys.len()),
        age(object, now),
    ]
}

/// `kubectl get serviceaccounts`.
pub(super) const SERVICE_ACCOUNT: &[Column] = &[NAME, col("Secrets", "string", SA_SECRETS), AGE];

/// One service account's row.
pub(super) fn service_account(object: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(object),
        count_cell(count(object, &["secrets"])),
        age(object, now),
    ]
}

/// `kubectl get namespaces`.
pub(super) const NAMESPACE: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the namespace"),
    AGE,
];

/// One namespace's row.
pub(super) fn namespace(object: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(object),
        Value::from(text(object, &["status", "phase"])),
        age(object, now),
    ]
}

/// `kubectl get services`.
pub(super) const SERVICE: &[Column] = &[
    NAME,
    col("Type", "string", SVC_TYPE),
    col("Cluster-IP", "string", SVC_CLUSTER_IP),
    col("External-IP", "string", SVC_EXTERNAL_IPS),
    col("Port(s)", "string", SVC_PORTS),
    AGE,
    wide("Selector", "string", SVC_SELECTOR),
];

/// Load-balancer ingress points: each one's IP, else its hostname, sorted and deduplicated.
/// Upstream's server prints wide, so the list is never clipped.
pub(super) fn load_balancer_ingress(status: &Value) -> String {
    let points: BTreeSet<&str> = list(status, &["ingress"])
        .iter()
        .map(|i| {
            let ip = text(i, &["ip"]);
            if ip.is_empty() {
                text(i, &["hostname"])
            } else {
                ip
            }
        })
        .filter(|p| !p.is_empty())
        .collect();
    points.into_iter().collect::<Vec<_>>().join(",")
}

fn service_external_ip(service: &Value) -> String {
    let external: Vec<&str> = list(service, &["spec", "externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match text(service, &["spec", "type"]) {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".to_owned()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let ingress = at(service, &["status", "loadBalancer"])
                .map(load_balancer_ingress)
                .unwrap_or_default();
            if !external.is_empty() {
                let mut all: Vec<&str> = Vec::new();
                if !ingress.is_empty() {
                    all.extend(ingress.split(','));
                }
                all.extend(external);
                all.join(",")
            } else if !ingress.is_empty() {
                ingress
            } else {
                "<pending>".to_owned()
            }
        }
        "ExternalName" => text(service, &["spec", "externalName"]).to_owned(),
        _ => "<unknown>".to_owned(),
    }
}

/// One service's row.
pub(super) fn service(service: &Value, now: Timestamp) -> Vec<Value> {
    // Upstream's defaulting fills `clusterIPs` from `clusterIP` when only the latter is set.
    let cluster_ip = list(service, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .or_else(|| opt_text(service, &["spec", "clusterIP"]).filter(|ip| !ip.is_empty()))
        .unwrap_or("<none>");
    let ports: Vec<String> = list(service, &["spec", "ports"])
        .iter()
        .map(|p| {
            let port = int(p, &["port"]);
            let protocol = text(p, &["protocol"]);
            let node_port = int(p, &["nodePort"]);
            if node_port > 0 {
                format!("{port}:{node_port}/{protocol}")
            } else {
                format!("{port}/{protocol}")
            }
        })
        .collect();
    vec![
        name(service),
        Value::from(text(service, &["spec", "type"])),
        Value::from(cluster_ip),
        Value::from(service_external_ip(service)),
        Value::from(or_none(&ports.join(","))),
        age(service, now),
        Value::from(format_labels(at(service, &["spec", "selector"]))),
    ]
}

/// `kubectl get endpoints`.
pub(super) const ENDPOINTS: &[Column] = &[NAME, col("Endpoints", "string", EP_SUBSETS), AGE];

/// `host:port`, with brackets around IPv6 hosts (Go's `net.JoinHostPort`).
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// One endpoints object's row: the first three addresses (with each port), then `+ N more...`.
pub(super) fn endpoints(object: &Value, now: Timestamp) -> Vec<Value> {
    const MAX: usize = 3;
    let subsets = list(object, &["subsets"]);
    let cell = if subsets.is_empty() {
        "<none>".to_owned()
    } else {
        let mut shown: Vec<String> = Vec::new();
        let mut total = 0usize;
        for subset in subsets {
            let addresses = list(subset, &["addresses"]);
            let ports = list(subset, &["ports"]);
            if ports.is_empty() {
                // Headless services may have addresses without ports.
                total += addresses.len();
                for address in addresses {
                    if shown.len() < MAX {
                        shown.push(text(address, &["ip"]).to_owned());
                    }
                }
                continue;
            }
            for port in ports {
                total += addresses.len();
                for address in addresses {
                    if shown.len() < MAX {
                        shown.push(join_host_port(text(address, &["ip"]), int(port, &["port"])));
                    }
                }
            }
        }
        if total > MAX && shown.len() == MAX {
            format!("{} + {} more...", shown.join(","), total - MAX)
        } else {
            shown.join(",")
        }
    };
    vec![name(object), Value::from(cell), age(object, now)]
}

/// `kubectl get nodes`.
pub(super) const NODE: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", NODE_KUBELET),
    wide("Internal-IP", "string", NODE_ADDRESSES),
    wide("External-IP", "string", NODE_ADDRESSES),
    wide("OS-Image", "string", NODE_OS_IMAGE),
    wide("Kernel-Version", "string", NODE_KERNEL),
    wide("Container-Runtime", "string", NODE_RUNTIME),
];

fn node_address(node: &Value, type_: &str) -> String {
    list(node, &["status", "addresses"])
        .iter()
        .find(|a| text(a, &["type"]) == type_)
        .map_or_else(|| "<none>".to_owned(), |a| text(a, &["address"]).to_owned())
}

fn or_unknown(value: &str) -> String {
    if value.is_empty() {
        "<unknown>".to_owned()
    } else {
        value.to_owned()
    }
}

/// One node's row. ROLES come from `node-role.kubernetes.io/<role>` label keys and the
/// `kubernetes.io/role` label's value.
pub(super) fn node(node: &Value, now: Timestamp) -> Vec<Value> {
    // Upstream keeps the last condition of each type.
    let ready = list(node, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| text(c, &["type"]) == "Ready");
    let mut status = vec![match ready {
        Some(c) if text(c, &["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if flag(node, &["spec", "unschedulable"]) {
        status.push("SchedulingDisabled");
    }
    let mut roles: BTreeSet<&str> = BTreeSet::new();
    if let Some(labels) = at(node, &["metadata", "labels"]).and_then(Value::as_object) {
        for (key, value) in labels {
            if let Some(role) = key.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role);
                }
            } else if key == "kubernetes.io/role" {
                let value = value.as_str().unwrap_or("");
                if !value.is_empty() {
                    roles.insert(value);
                }
            }
        }
    }
    let roles = roles.into_iter().collect::<Vec<_>>().join(",");
    let info = |field: &str| text(node, &["status", "nodeInfo", field]);
    vec![
        name(node),
        Value::from(status.join(",")),
        Value::from(or_none(&roles)),
        age(node, now),
        Value::from(info("kubeletVersion")),
        Value::from(node_address(node, "InternalIP")),
        Value::from(node_address(node, "ExternalIP")),
        Value::from(or_unknown(info("osImage"))),
        Value::from(or_unknown(info("kernelVersion"))),
        Value::from(or_unknown(info("containerRuntimeVersion"))),
    ]
}

/// `kubectl get persistentvolumes`.
pub(super) const PERSISTENT_VOLUME: &[Column] = &[
    NAME,
    col("Capacity", "string", PV_CAPACITY),
    col("Access Modes", "string", PV_ACCESS),
    col("Reclaim Policy", "string", PV_RECLAIM),
    col("Status", "string", PV_PHASE),
    col("Claim", "string", PV_CLAIM),
    col("StorageClass", "string", "StorageClass of the pv"),
    col(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pv",
    ),
    col("Reason", "string", PV_REASON),
    AGE,
    wide("VolumeMode", "string", PV_MODE),
];

/// Access modes abbreviated in upstream's fixed order: RWO, ROX, RWX, RWOP.
fn access_modes(modes: &[Value]) -> String {
    let has_mode = |mode: &str| modes.iter().any(|m| m.as_str() == Some(mode));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| has_mode(mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// The storage class: the beta annotation wins over `spec.storageClassName`.
fn storage_class(object: &Value) -> String {
    at(
        object,
        &[
            "metadata",
            "annotations",
            "volume.beta.kubernetes.io/storage-class",
        ],
    )
    .and_then(Value::as_str)
    .unwrap_or_else(|| text(object, &["spec", "storageClassName"]))
    .to_owned()
}

fn unset_or(value: Option<&str>) -> String {
    value.unwrap_or("<unset>").to_owned()
}

/// The phase, or `Terminating` once deletion started.
fn phase_or_terminating(object: &Value) -> String {
    if has(object, &["metadata", "deletionTimestamp"]) {
        "Terminating".to_owned()
    } else {
        text(object, &["status", "phase"]).to_owned()
    }
}

/// One persistent volume's row.
pub(super) fn persistent_volume(pv: &Value, now: Timestamp) -> Vec<Value> {
    let claim = if has(pv, &["spec", "claimRef"]) {
        format!(
            "{}/{}",
            text(pv, &["spec", "claimRef", "namespace"]),
            text(pv, &["spec", "claimRef", "name"])
        )
    } else {
        String::new()
    };
    vec![
        name(pv),
        Value::from(quantity(at(pv, &["spec", "capacity", "storage"]))),
        Value::from(access_modes(list(pv, &["spec", "accessModes"]))),
        Value::from(text(pv, &["spec", "persistentVolumeReclaimPolicy"])),
        Value::from(phase_or_terminating(pv)),
        Value::from(claim),
        Value::from(storage_class(pv)),
        Value::from(unset_or(opt_text(
            pv,
            &["spec", "volumeAttributesClassName"],
        ))),
        Value::from(text(pv, &["status", "reason"])),
        age(pv, now),
        Value::from(unset_or(opt_text(pv, &["spec", "volumeMode"]))),
    ]
}

/// `kubectl get persistentvolumeclaims`.
pub(super) const PERSISTENT_VOLUME_CLAIM: &[Column] = &[
    NAME,
    col("Status", "string", PVC_PHASE),
    col("Volume", "string", PVC_VOLUME),
    col("Capacity", "string", PVC_CAPACITY),
    col("Access Modes", "string", PVC_ACCESS),
    col("StorageClass", "string", "StorageClass of the pvc"),
    col(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pvc",
    ),
    AGE,
    wide("VolumeMode", "string", PVC_MODE),
];

/// One claim's row: capacity and access modes only once bound to a volume.
pub(super) fn persistent_volume_claim(pvc: &Value, now: Timestamp) -> Vec<Value> {
    let volume = text(pvc, &["spec", "volumeName"]);
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity(at(pvc, &["status", "capacity", "storage"])),
            access_modes(list(pvc, &["status", "accessModes"])),
        )
    };
    vec![
        name(pvc),
        Value::from(phase_or_terminating(pvc)),
        Value::from(volume),
        Value::from(capacity),
        Value::from(modes),
        Value::from(storage_class(pvc)),
        Value::from(unset_or(opt_text(
            pvc,
            &["spec", "volumeAttributesClassName"],
        ))),
        age(pvc, now),
        Value::from(unset_or(opt_text(pvc, &["spec", "volumeMode"]))),
    ]
}

/// `kubectl get resourcequotas`.
pub(super) const RESOURCE_QUOTA: &[Column] = &[
    NAME,
    col(
        "Request",
        "string",
        "Request represents a minimum amount of cpu/memory that a container may consume.",
    ),
    col(
        "Limit",
        "string",
        "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
    ),
    AGE,
];

/// One quota's row: `resource: used/hard` for each hard limit, sorted by resource name;
/// `limits.*` resources go to LIMIT, the rest to REQUEST.
pub(super) fn resource_quota(quota: &Value, now: Timestamp) -> Vec<Value> {
    let mut requests: Vec<String> = Vec::new();
    let mut limits: Vec<String> = Vec::new();
    if let Some(hard) = at(quota, &["status", "hard"]).and_then(Value::as_object) {
        let mut resources: Vec<&String> = hard.keys().collect();
        resources.sort();
        for resource in resources {
            let used = quantity(at(quota, &["status", "used", resource]));
            let entry = format!("{resource}: {used}/{}", quantity(hard.get(resource)));
            let mut pieces = resource.split('.');
            let is_limit = pieces.next() == Some("limits") && pieces.next().is_some();
            if is_limit {
                limits.push(entry);
            } else {
                requests.push(entry);
            }
        }
    }
    vec![
        name(quota),
        Value::from(requests.join(", ")),
        Value::from(limits.join(", ")),
        age(quota, now),
    ]
}
