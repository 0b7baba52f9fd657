//! Core defaults other than pods: Service, Namespace, Node, volumes and claims, Endpoints,
//! LimitRange.

use serde_json::{Map, Value, json};

use super::{child, child_or_insert, default_str, default_value, each_object, is_nil, str_of};
use crate::defaults::{pod, quantity};

/// Seconds a ClientIP session sticks when no timeout is given (three hours).
const CLIENT_IP_TIMEOUT_SECONDS: i64 = 10_800;

/// `SetDefaults_Service`, plus the IP family fields upstream's service REST fills in for a
/// single-stack cluster.
pub(super) fn service(obj: &mut Map<String, Value>) {
    let Some(spec) = child_or_insert(obj, "spec") else {
        return;
    };
    default_str(spec, "sessionAffinity", "None");
    match str_of(spec, "sessionAffinity") {
        Some("None") => {
            spec.remove("sessionAffinityConfig");
        }
        Some("ClientIP") => {
            let has_timeout = spec
                .get("sessionAffinityConfig")
                .and_then(|c| c.get("clientIP"))
                .and_then(|c| c.get("timeoutSeconds"))
                .is_some_and(|t| !t.is_null());
            if !has_timeout {
                spec.insert(
                    "sessionAffinityConfig".to_owned(),
                    json!({"clientIP": {"timeoutSeconds": CLIENT_IP_TIMEOUT_SECONDS}}),
                );
            }
        }
        _ => {}
    }
    default_str(spec, "type", "ClusterIP");
    each_object(spec, "ports", |port| {
        default_str(port, "protocol", "TCP");
        let unset = match port.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_f64() == Some(0.0),
            Some(Value::String(s)) => s.is_empty(),
            Some(_) => false,
        };
        if unset && let Some(number) = port.get("port").cloned() {
            port.insert("targetPort".to_owned(), number);
        }
    });
    let service_type = str_of(spec, "type").unwrap_or("").to_owned();
    let has_external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|ips| !ips.is_empty());
    let externally_accessible = matches!(service_type.as_str(), "LoadBalancer" | "NodePort")
        || (service_type == "ClusterIP" && has_external_ips);
    if externally_accessible {
        default_str(spec, "externalTrafficPolicy", "Cluster");
    }
    if matches!(
        service_type.as_str(),
        "ClusterIP" | "NodePort" | "LoadBalancer"
    ) {
        default_value(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if service_type == "LoadBalancer" {
        default_value(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if service_type != "ExternalName" {
        ip_families(spec);
    }
    if service_type == "LoadBalancer"
        && let Some(status) = child(obj, "status")
        && let Some(lb) = child(status, "loadBalancer")
    {
        each_object(lb, "ingress", |ingress| {
            if str_of(ingress, "ip").is_some_and(|ip| !ip.is_empty()) {
                default_value(ingress, "ipMode", json!("VIP"));
            }
        });
    }
}

/// `clusterIPs` mirrors `clusterIP`, and the IP family fields are filled as upstream's
/// service REST fills them on a single-stack cluster: the family of the address given (IPv4
/// otherwise), `SingleStack`; except that a headless Service without selector, whose
/// endpoints someone else writes, may hold both families and gets `RequireDualStack`.
fn ip_families(spec: &mut Map<String, Value>) {
    if let Some(ip) = str_of(spec, "clusterIP").filter(|ip| !ip.is_empty()) {
        let ip = ip.to_owned();
        default_value(spec, "clusterIPs", json!([ip]));
    }
    let first_ip = spec
        .get("clusterIPs")
        .and_then(|ips| ips.get(0))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let no_selector = spec
        .get("selector")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty);
    let any_family = first_ip == "None" && no_selector;
    let policy = if any_family {
        "RequireDualStack"
    } else {
        "SingleStack"
    };
    default_value(spec, "ipFamilyPolicy", json!(policy));
    let primary = if first_ip.contains(':') {
        "IPv6"
    } else {
        "IPv4"
    };
    default_value(spec, "ipFamilies", json!([primary]));
    let dual = matches!(
        str_of(spec, "ipFamilyPolicy"),
        Some("RequireDualStack" | "PreferDualStack")
    );
    if any_family
        && dual
        && let Some(families) = spec.get_mut("ipFamilies").and_then(Value::as_array_mut)
        && families.len() == 1
    {
        let other = if families[0].as_str() == Some("IPv6") {
            "IPv4"
        } else {
            "IPv6"
        };
        families.push(json!(other));
    }
}

/// `SetDefaults_Secret` (type Opaque), and what v1's conversion does with `stringData`:
/// each entry is written into `data`, base64-encoded, over any entry of the same key, and
/// `stringData` itself is never stored.
pub(super) fn secret(obj: &mut Map<String, Value>) {
    default_str(obj, "type", "Opaque");
    let Some(Value::Object(strings)) = obj.remove("stringData") else {
        return;
    };
    if strings.is_empty() {
        return;
    }
    if let Some(data) = child_or_insert(obj, "data") {
        for (key, value) in strings {
            let text = value.as_str().unwrap_or("");
            data.insert(key, Value::String(base64(text.as_bytes())));
        }
    }
}

/// Standard base64 with padding, as Go encodes `[]byte` in JSON.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let index = usize::try_from((n >> (18 - 6 * i)) & 63).unwrap_or(0);
                out.push(char::from(ALPHABET[index]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `SetDefaults_Namespace` (the `kubernetes.io/metadata.name` label), the `kubernetes`
/// finalizer the namespace strategy adds, and `SetDefaults_NamespaceStatus`.
pub(super) fn namespace(obj: &mut Map<String, Value>, all: bool) {
    let name = obj
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if !name.is_empty()
        && let Some(metadata) = child_or_insert(obj, "metadata")
        && let Some(labels) = child_or_insert(metadata, "labels")
    {
        labels.insert(
            "kubernetes.io/metadata.name".to_owned(),
            Value::String(name),
        );
    }
    if !all {
        return;
    }
    if let Some(spec) = child_or_insert(obj, "spec") {
        default_value(spec, "finalizers", json!(["kubernetes"]));
    }
    if let Some(status) = child_or_insert(obj, "status") {
        default_str(status, "phase", "Active");
    }
}

/// `SetDefaults_NodeStatus`: allocatable is capacity until the kubelet says otherwise.
pub(super) fn node(obj: &mut Map<String, Value>) {
    if let Some(status) = child(obj, "status")
        && is_nil(status, "allocatable")
        && let Some(capacity) = status.get("capacity").filter(|c| c.is_object()).cloned()
    {
        status.insert("allocatable".to_owned(), capacity);
    }
    if let Some(status) = child(obj, "status") {
        quantity::resource_list(status, "capacity");
        quantity::resource_list(status, "allocatable");
    }
}

/// The quota's resource lists are rounded and canonical.
pub(super) fn resource_quota(obj: &mut Map<String, Value>) {
    if let Some(spec) = child(obj, "spec") {
        quantity::resource_list(spec, "hard");
    }
    if let Some(status) = child(obj, "status") {
        quantity::resource_list(status, "hard");
        quantity::resource_list(status, "used");
    }
}

/// `SetDefaults_PersistentVolume` and its sources' defaults.
pub(super) fn persistent_volume(obj: &mut Map<String, Value>) {
    if let Some(spec) = child_or_insert(obj, "spec") {
        quantity::resource_list(spec, "capacity");
        default_str(spec, "persistentVolumeReclaimPolicy", "Retain");
        default_value(spec, "volumeMode", json!("Filesystem"));
        if let Some(host_path) = child(spec, "hostPath") {
            default_value(host_path, "type", json!(""));
        }
        if let Some(rbd) = child(spec, "rbd") {
            pod::rbd_source(rbd);
        }
        if let Some(iscsi) = child(spec, "iscsi") {
            pod::iscsi_source(iscsi);
        }
        if let Some(azure) = child(spec, "azureDisk") {
            pod::azure_disk_source(azure);
        }
        if let Some(scale_io) = child(spec, "scaleIO") {
            pod::scale_io_source(scale_io);
        }
    }
    if let Some(status) = child_or_insert(obj, "status") {
        default_str(status, "phase", "Pending");
    }
}

/// `SetDefaults_PersistentVolumeClaim` and `SetDefaults_PersistentVolumeClaimSpec`.
pub(super) fn persistent_volume_claim(obj: &mut Map<String, Value>) {
    if let Some(spec) = child_or_insert(obj, "spec") {
        pod::claim_spec(spec);
    }
    if let Some(status) = child_or_insert(obj, "status") {
        default_str(status, "phase", "Pending");
        quantity::resource_list(status, "capacity");
        quantity::resource_list(status, "allocatedResources");
    }
}

/// `SetDefaults_Endpoints`: ports are TCP unless said otherwise.
pub(super) fn endpoints(obj: &mut Map<String, Value>) {
    each_object(obj, "subsets", |subset| {
        each_object(subset, "ports", |port| default_str(port, "protocol", "TCP"));
    });
}

/// `SetDefaults_LimitRangeItem`: for containers, the default limit falls back to the max,
/// the default request to the default limit and then to the min.
pub(super) fn limit_range(obj: &mut Map<String, Value>) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    each_object(spec, "limits", |item| {
        if str_of(item, "type") != Some("Container") {
            return;
        }
        let max = resource_list(item, "max");
        let min = resource_list(item, "min");
        let Some(default) = child_or_insert(item, "default") else {
            return;
        };
        for (name, quantity) in max {
            default.entry(name).or_insert(quantity);
        }
        let default = default.clone();
        let Some(request) = child_or_insert(item, "defaultRequest") else {
            return;
        };
        for (name, quantity) in default.into_iter().chain(min) {
            request.entry(name).or_insert(quantity);
        }
        for key in [
            "max",
            "min",
            "default",
            "defaultRequest",
            "maxLimitRequestRatio",
        ] {
            quantity::resource_list(item, key);
        }
        // Go leaves empty maps out when it serialises; so do we.
        for key in ["default", "defaultRequest"] {
            if item
                .get(key)
                .and_then(Value::as_object)
                .is_some_and(Map::is_empty)
            {
                item.remove(key);
            }
        }
    });
}

fn resource_list(map: &Map<String, Value>, key: &str) -> Map<String, Value> {
    map.get(key)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}
