//! Defaulting: what kube-apiserver fills in after decoding an object and before validating and
//! storing it, so that `kubectl get -o yaml` shows the same fields upstream would.
//!
//! The work is done on JSON, field by field, following upstream's `SetDefaults_*` functions
//! (`pkg/apis/*/v1/defaults.go`) and the generated walk that calls them
//! (`zz_generated.defaults.go`). A few things upstream sets elsewhere on every default
//! cluster are here too, and say so where they are: the Priority, ServiceAccount and
//! DefaultTolerationSeconds admission plugins for Pods, the namespace finalizer and the
//! Job selector.
//!
//! Fields of the wrong type are left alone: defaulting never destroys what a client sent,
//! and never panics.

mod core;
mod others;
mod pod;
mod quantity;
mod workloads;

pub use pod::qos_class;

use serde_json::{Map, Value};

/// Applies upstream's defaults for this kind (group "" = core) to a JSON object in place.
///
/// Kinds upstream does not default, and values that are not JSON objects, are left as they
/// are. Running it twice gives the same result as running it once.
pub fn apply_defaults(group: &str, kind: &str, object: &mut Value) {
    defaults(group, kind, object, true);
}

/// Only what upstream's scheme defaults when it decodes a request, before it records the
/// writer's fields in `managedFields`: [`apply_defaults`] without what admission plugins
/// and create strategies add (a Pod's priority, service account, default tolerations and
/// status; a Namespace's finalizer; a Job's generated selector).
pub fn scheme_defaults(group: &str, kind: &str, object: &mut Value) {
    defaults(group, kind, object, false);
}

/// [`apply_defaults`] for an object [`scheme_defaults`] has already been through (and that
/// admission may have added to since): the same result, without the scheme's walk done
/// twice where the kind allows it.
pub fn admission_defaults(group: &str, kind: &str, object: &mut Value) {
    match (group, kind, object.as_object_mut()) {
        ("", "Pod", Some(obj)) => pod::admission(obj),
        _ => apply_defaults(group, kind, object),
    }
}

fn defaults(group: &str, kind: &str, object: &mut Value, all: bool) {
    let Some(obj) = object.as_object_mut() else {
        return;
    };
    match (group, kind) {
        ("", "Pod") => pod::pod(obj, all),
        ("", "PodTemplate") => {
            if let Some(template) = child_or_insert(obj, "template") {
                pod::template(template);
            }
        }
        ("", "ReplicationController") => workloads::replication_controller(obj),
        ("", "Service") => core::service(obj),
        ("", "Secret") => core::secret(obj),
        ("", "Namespace") => core::namespace(obj, all),
        ("", "Node") => core::node(obj),
        ("", "PersistentVolume") => core::persistent_volume(obj),
        ("", "PersistentVolumeClaim") => core::persistent_volume_claim(obj),
        ("", "Endpoints") => core::endpoints(obj),
        ("", "LimitRange") => core::limit_range(obj),
        ("", "ResourceQuota") => core::resource_quota(obj),
        ("apps", "Deployment") => workloads::deployment(obj),
        ("apps", "ReplicaSet") => workloads::replica_set(obj),
        ("apps", "StatefulSet") => workloads::stateful_set(obj),
        ("apps", "DaemonSet") => workloads::daemon_set(obj),
        ("batch", "Job") => workloads::job(obj, all),
        ("batch", "CronJob") => workloads::cron_job(obj),
        ("autoscaling", "HorizontalPodAutoscaler") => others::horizontal_pod_autoscaler(obj),
        ("discovery.k8s.io", "EndpointSlice") => others::endpoint_slice(obj),
        ("apiregistration.k8s.io", "APIService") => {
            // A service reference's port defaults to 443.
            if let Some(service) = obj
                .get_mut("spec")
                .and_then(|s| s.get_mut("service"))
                .and_then(Value::as_object_mut)
            {
                service.entry("port").or_insert(Value::from(443));
            }
        }
        ("networking.k8s.io", "NetworkPolicy") => others::network_policy(obj),
        ("networking.k8s.io", "IngressClass") => others::ingress_class(obj),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            others::role_binding(obj)
        }
        ("scheduling.k8s.io", "PriorityClass") => {
            default_str(obj, "preemptionPolicy", "PreemptLowerPriority")
        }
        ("storage.k8s.io", "StorageClass") => others::storage_class(obj),
        ("storage.k8s.io", "CSIDriver") => others::csi_driver(obj),
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration",
        ) => others::webhook_configuration(obj, kind == "MutatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => {
            others::validating_admission_policy(obj)
        }
        _ => {}
    }
}

/// Whether a field counts as unset for a Go pointer: absent or null.
fn is_nil(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key).is_none_or(Value::is_null)
}

/// Sets a pointer field (`*T` upstream) when it is absent or null.
fn default_value(map: &mut Map<String, Value>, key: &str, value: Value) {
    if is_nil(map, key) {
        map.insert(key.to_owned(), value);
    }
}

/// Sets a plain string field when it is absent, null or empty: upstream tests `== ""`.
fn default_str(map: &mut Map<String, Value>, key: &str, value: &str) {
    let unset = match map.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    };
    if unset {
        map.insert(key.to_owned(), Value::String(value.to_owned()));
    }
}

/// Sets a plain integer field when it is absent, null or zero: upstream tests `== 0`.
fn default_nonzero(map: &mut Map<String, Value>, key: &str, value: i64) {
    let unset = match map.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(_) => false,
    };
    if unset {
        map.insert(key.to_owned(), Value::from(value));
    }
}

/// The object at `key` if there is one.
fn child<'a>(map: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    map.get_mut(key).and_then(Value::as_object_mut)
}

/// The object at `key`, created empty when absent or null; `None` when it has another type.
fn child_or_insert<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    if is_nil(map, key) {
        map.insert(key.to_owned(), Value::Object(Map::new()));
    }
    map.get_mut(key).and_then(Value::as_object_mut)
}

/// Calls `f` on every object in the array at `key`.
fn each_object(
    map: &mut Map<String, Value>,
    key: &str,
    mut f: impl FnMut(&mut Map<String, Value>),
) {
    if let Some(items) = map.get_mut(key).and_then(Value::as_array_mut) {
        for item in items.iter_mut().filter_map(Value::as_object_mut) {
            f(item);
        }
    }
}

/// A string field's value, if it is a string.
fn str_of<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str)
}

#[cfg(test)]
mod tests;
