//! Pod and pod template defaults: `SetDefaults_Pod`, `SetDefaults_PodSpec` and everything the
//! generated walk reaches inside a pod spec (volumes, containers, probes, env).

use serde_json::{Map, Value, json};

use super::quantity;
use super::{
    child, child_or_insert, default_nonzero, default_str, default_value, each_object, is_nil,
    str_of,
};

/// The container lists of a pod spec; all get the same container defaults.
const CONTAINER_LISTS: [&str; 3] = ["initContainers", "containers", "ephemeralContainers"];

/// Priorities of the two built-in priority classes, which need no lookup.
const SYSTEM_PRIORITIES: [(&str, i64); 2] = [
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

/// A Pod: its spec as in any template, plus what only materialises on Pods (with `all`, also
/// what admission and the create strategy add).
pub(super) fn pod(obj: &mut Map<String, Value>, all: bool) {
    let mirror = is_mirror(obj);
    let Some(spec) = child_or_insert(obj, "spec") else {
        return;
    };
    // Upstream defaults requests to limits on Pods only, not in templates, so that a
    // template's LimitRange can still apply.
    for list in ["containers", "initContainers"] {
        each_object(spec, list, requests_from_limits);
    }
    default_value(spec, "enableServiceLinks", Value::Bool(true));
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        for list in ["containers", "initContainers"] {
            each_object(spec, list, |container| {
                each_object(container, "ports", |port| {
                    if let Some(container_port) = port.get("containerPort").cloned() {
                        default_nonzero_with(port, "hostPort", container_port);
                    }
                });
            });
        }
    }
    if all {
        // The scheme mirrors a deprecated `serviceAccount` before admission defaults the name.
        mirror_service_account(spec);
        admission_defaults(spec, mirror);
    }
    pod_spec(spec);
    if all {
        status(obj);
    }
}

/// What `pod(obj, true)` adds to a Pod that `pod(obj, false)` has already been through,
/// without walking the spec again: admission's fields, the service account mirrored, an
/// overhead set since (by a RuntimeClass) made canonical, and the status.
pub(super) fn admission(obj: &mut Map<String, Value>) {
    let mirror = is_mirror(obj);
    let Some(spec) = child_or_insert(obj, "spec") else {
        return;
    };
    admission_defaults(spec, mirror);
    mirror_service_account(spec);
    quantity::resource_list(spec, "overhead");
    status(obj);
}

/// The create strategy's phase and QoS class.
fn status(obj: &mut Map<String, Value>) {
    // Create sets the class already; it is worked out only where it is missing.
    let missing = obj
        .get("status")
        .and_then(|s| s.get("qosClass"))
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    let qos = if missing {
        qos_class(obj.get("spec").unwrap_or(&Value::Null))
    } else {
        ""
    };
    if let Some(status) = child_or_insert(obj, "status") {
        default_str(status, "phase", "Pending");
        default_str(status, "qosClass", qos);
    }
}

/// The QoS class the Pod strategy records on create (`GetPodQOS`) for a pod's spec:
/// BestEffort without any CPU or memory request or limit, Guaranteed when every container
/// limits both and the pod's requests equal its limits, Burstable otherwise. Quantities
/// are compared by value (`1` equals `1000m`); zero amounts count as absent; a container's
/// missing request is its limit, as defaulting makes it.
pub fn qos_class(spec: &Value) -> &'static str {
    const RESOURCES: [&str; 2] = ["cpu", "memory"];
    // Sums over the containers, by resource (cpu, memory); `None` when none names it.
    let (mut requests, mut limits) = ([None::<f64>; 2], [None::<f64>; 2]);
    let mut guaranteed = true;
    let containers = ["containers", "initContainers"]
        .into_iter()
        .filter_map(|list| spec.get(list).and_then(Value::as_array))
        .flatten();
    for container in containers {
        let list = |kind: &str| {
            container
                .get("resources")
                .and_then(|r| r.get(kind))
                .and_then(Value::as_object)
        };
        let (requested, limited) = (list("requests"), list("limits"));
        let positive = |q: Option<&Value>| {
            q.and_then(Value::as_str)
                .and_then(quantity::value)
                .filter(|a| *a > 0.0)
        };
        let mut limits_both = true;
        for (i, name) in RESOURCES.iter().enumerate() {
            let limit = limited.and_then(|l| l.get(*name));
            // A request not given is its limit, as defaulting makes it; so the class is the
            // same before and after defaults.
            let request = requested.and_then(|r| r.get(*name)).or(limit);
            if let Some(amount) = positive(request) {
                *requests[i].get_or_insert(0.0) += amount;
            }
            match positive(limit) {
                Some(amount) => *limits[i].get_or_insert(0.0) += amount,
                None => limits_both = false,
            }
        }
        guaranteed &= limits_both;
    }
    if requests.iter().chain(&limits).all(Option::is_none) {
        return "BestEffort";
    }
    let equal = requests.iter().zip(&limits).all(|pair| match pair {
        (Some(req), Some(lim)) => (lim - req).abs() <= f64::EPSILON * lim.abs().max(1.0),
        (None, None) => true,
        _ => false,
    });
    if guaranteed && equal {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// A pod template (`spec.template` of workloads, `template` of a PodTemplate).
pub(super) fn template(template: &mut Map<String, Value>) {
    if let Some(spec) = child_or_insert(template, "spec") {
        pod_spec(spec);
    }
}

/// Whether a Pod is a kubelet's mirror of a static pod, which upstream's ServiceAccount
/// admission leaves without an account.
fn is_mirror(obj: &Map<String, Value>) -> bool {
    obj.get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get("kubernetes.io/config.mirror"))
        .is_some()
}

/// What the default admission plugins add to every new Pod: Priority (priority and
/// preemptionPolicy), ServiceAccount (serviceAccountName, but not on mirror pods) and
/// DefaultTolerationSeconds (tolerate not-ready and unreachable nodes for five minutes).
fn admission_defaults(spec: &mut Map<String, Value>, mirror: bool) {
    let class = str_of(spec, "priorityClassName").unwrap_or("");
    let priority = if class.is_empty() {
        Some(0)
    } else {
        SYSTEM_PRIORITIES
            .iter()
            .find(|(name, _)| *name == class)
            .map(|(_, p)| *p)
    };
    // A user-defined class needs a lookup the caller does; leave both fields to it.
    if let Some(priority) = priority {
        default_value(spec, "priority", Value::from(priority));
        default_str(spec, "preemptionPolicy", "PreemptLowerPriority");
    }
    if !mirror {
        default_str(spec, "serviceAccountName", "default");
    }
    if is_nil(spec, "tolerations") {
        spec.insert("tolerations".to_owned(), Value::Array(Vec::new()));
    }
    if let Some(tolerations) = spec.get_mut("tolerations").and_then(Value::as_array_mut) {
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            let present = tolerations.iter().any(|t| {
                let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
                let tkey = t.get("key").and_then(Value::as_str).unwrap_or("");
                (effect.is_empty() || effect == "NoExecute") && (tkey == key || tkey.is_empty())
            });
            if !present {
                tolerations.push(json!({
                    "effect": "NoExecute",
                    "key": key,
                    "operator": "Exists",
                    "tolerationSeconds": 300,
                }));
            }
        }
    }
}

/// Sets `key` to `value` when it is absent, null or zero.
fn default_nonzero_with(map: &mut Map<String, Value>, key: &str, value: Value) {
    let unset = match map.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(_) => false,
    };
    if unset {
        map.insert(key.to_owned(), value);
    }
}

/// Copies each limit into requests where no request for that resource is given.
fn requests_from_limits(container: &mut Map<String, Value>) {
    let Some(resources) = child(container, "resources") else {
        return;
    };
    let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    if let Some(requests) = child_or_insert(resources, "requests") {
        for (name, quantity) in limits {
            requests.entry(name).or_insert(quantity);
        }
    }
}

/// `SetDefaults_PodSpec` and the walk below it, for Pods and templates alike.
pub(super) fn pod_spec(spec: &mut Map<String, Value>) {
    default_str(spec, "dnsPolicy", "ClusterFirst");
    default_str(spec, "restartPolicy", "Always");
    default_value(spec, "securityContext", json!({}));
    default_value(spec, "terminationGracePeriodSeconds", json!(30));
    default_str(spec, "schedulerName", "default-scheduler");
    mirror_service_account(spec);
    each_object(spec, "volumes", volume);
    for list in CONTAINER_LISTS {
        each_object(spec, list, container);
    }
    quantity::resource_list(spec, "overhead");
}

/// v1 keeps the deprecated `serviceAccount` as a mirror of `serviceAccountName`.
fn mirror_service_account(spec: &mut Map<String, Value>) {
    if let Some(old) = str_of(spec, "serviceAccount").map(str::to_owned) {
        default_str(spec, "serviceAccountName", &old);
    }
    if let Some(name) = str_of(spec, "serviceAccountName").filter(|n| !n.is_empty()) {
        let name = name.to_owned();
        spec.insert("serviceAccount".to_owned(), Value::String(name));
    }
}

/// `SetDefaults_Volume` and the per-source defaults.
fn volume(volume: &mut Map<String, Value>) {
    if volume.iter().all(|(k, v)| k == "name" || v.is_null()) {
        volume.insert("emptyDir".to_owned(), json!({}));
    }
    if let Some(host_path) = child(volume, "hostPath") {
        default_value(host_path, "type", json!(""));
    }
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(source) = child(volume, source) {
            default_value(source, "defaultMode", json!(420));
        }
    }
    if let Some(downward) = child(volume, "downwardAPI") {
        each_object(downward, "items", downward_item);
    }
    if let Some(projected) = child(volume, "projected") {
        each_object(projected, "sources", |source| {
            if let Some(downward) = child(source, "downwardAPI") {
                each_object(downward, "items", downward_item);
            }
            if let Some(token) = child(source, "serviceAccountToken") {
                default_value(token, "expirationSeconds", json!(3600));
            }
        });
    }
    if let Some(iscsi) = child(volume, "iscsi") {
        iscsi_source(iscsi);
    }
    if let Some(rbd) = child(volume, "rbd") {
        rbd_source(rbd);
    }
    if let Some(azure) = child(volume, "azureDisk") {
        azure_disk_source(azure);
    }
    if let Some(scale_io) = child(volume, "scaleIO") {
        scale_io_source(scale_io);
    }
    if let Some(template) = child(volume, "ephemeral").and_then(|e| child(e, "volumeClaimTemplate"))
        && let Some(spec) = child(template, "spec")
    {
        claim_spec(spec);
    }
    if let Some(empty_dir) = child(volume, "emptyDir")
        && let Some(limit) = str_of(empty_dir, "sizeLimit").map(quantity::canonical)
    {
        empty_dir.insert("sizeLimit".to_owned(), Value::String(limit));
    }
}

/// `SetDefaults_PersistentVolumeClaimSpec` with its resource lists, for claims and claim
/// templates alike.
pub(super) fn claim_spec(spec: &mut Map<String, Value>) {
    default_value(spec, "volumeMode", json!("Filesystem"));
    if let Some(resources) = child(spec, "resources") {
        quantity::resource_list(resources, "limits");
        quantity::resource_list(resources, "requests");
    }
}

/// `SetDefaults_ISCSIVolumeSource`.
pub(super) fn iscsi_source(iscsi: &mut Map<String, Value>) {
    default_str(iscsi, "iscsiInterface", "default");
}

/// `SetDefaults_RBDVolumeSource`.
pub(super) fn rbd_source(rbd: &mut Map<String, Value>) {
    default_str(rbd, "pool", "rbd");
    default_str(rbd, "user", "admin");
    default_str(rbd, "keyring", "/etc/ceph/keyring");
}

/// `SetDefaults_AzureDiskVolumeSource`.
pub(super) fn azure_disk_source(azure: &mut Map<String, Value>) {
    default_value(azure, "cachingMode", json!("ReadWrite"));
    default_value(azure, "fsType", json!("ext4"));
    default_value(azure, "readOnly", json!(false));
    default_value(azure, "kind", json!("Shared"));
}

/// `SetDefaults_ScaleIOVolumeSource`.
pub(super) fn scale_io_source(scale_io: &mut Map<String, Value>) {
    default_str(scale_io, "storageMode", "ThinProvisioned");
    default_str(scale_io, "fsType", "xfs");
}

fn downward_item(item: &mut Map<String, Value>) {
    if let Some(field_ref) = child(item, "fieldRef") {
        default_str(field_ref, "apiVersion", "v1");
    }
}

/// `SetDefaults_Container` with its ports, env, probes and lifecycle hooks.
fn container(container: &mut Map<String, Value>) {
    let policy = pull_policy_for(str_of(container, "image").unwrap_or(""));
    default_str(container, "imagePullPolicy", policy);
    default_str(container, "terminationMessagePath", "/dev/termination-log");
    default_str(container, "terminationMessagePolicy", "File");
    // A struct, not a pointer, upstream: it is always written, if only as `{}`.
    default_value(container, "resources", json!({}));
    if let Some(resources) = child(container, "resources") {
        quantity::resource_list(resources, "limits");
        quantity::resource_list(resources, "requests");
    }
    each_object(container, "ports", |port| {
        default_str(port, "protocol", "TCP");
    });
    each_object(container, "env", |env| {
        if let Some(field_ref) = child(env, "valueFrom").and_then(|v| child(v, "fieldRef")) {
            default_str(field_ref, "apiVersion", "v1");
        }
    });
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(probe) = child(container, probe) {
            default_nonzero(probe, "timeoutSeconds", 1);
            default_nonzero(probe, "periodSeconds", 10);
            default_nonzero(probe, "successThreshold", 1);
            default_nonzero(probe, "failureThreshold", 3);
            handler(probe);
        }
    }
    if let Some(lifecycle) = child(container, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(hook) = child(lifecycle, hook) {
                handler(hook);
            }
        }
    }
}

/// The defaults of a probe's or hook's action.
fn handler(handler: &mut Map<String, Value>) {
    if let Some(http) = child(handler, "httpGet") {
        default_str(http, "path", "/");
        default_str(http, "scheme", "HTTP");
    }
    if let Some(grpc) = child(handler, "grpc") {
        default_value(grpc, "service", json!(""));
    }
}

/// `Always` for an image tagged `latest` or not tagged (and not pinned by digest),
/// `IfNotPresent` otherwise, as upstream decides from the parsed reference.
pub(super) fn pull_policy_for(image: &str) -> &'static str {
    if image.is_empty() {
        // Upstream's parse fails and it falls back to IfNotPresent.
        return "IfNotPresent";
    }
    if image.contains('@') {
        let name = image.split('@').next().unwrap_or("");
        return if tag_of(name) == Some("latest") {
            "Always"
        } else {
            "IfNotPresent"
        };
    }
    match tag_of(image) {
        None | Some("latest") => "Always",
        Some(_) => "IfNotPresent",
    }
}

/// The tag of a reference without digest: what follows the last ':' after the last '/'
/// (a ':' before it belongs to a registry's port).
fn tag_of(name: &str) -> Option<&str> {
    let last = name.rsplit('/').next().unwrap_or(name);
    last.rsplit_once(':').map(|(_, tag)| tag)
}
