//! The zero values of upstream's Go structs, which its comparisons see and stored JSON may
//! leave out.

use serde_json::{Value, json};

/// `value` with the fields of `zero` it lacks filled in (maps merged, nothing replaced).
pub(super) fn with_zero_values(value: &Value, zero: &Value) -> Value {
    match (value, zero) {
        (Value::Object(map), Value::Object(zero)) => {
            let mut out = map.clone();
            for (key, z) in zero {
                let filled = match map.get(key) {
                    Some(v) => with_zero_values(v, z),
                    None => z.clone(),
                };
                out.insert(key.clone(), filled);
            }
            Value::Object(out)
        }
        _ => value.clone(),
    }
}

/// What upstream's Go structs always carry: non-pointer struct fields serialize as `{}` and
/// un-omitted lists as `null`. Objects are compared with these filled in (a create against
/// this alone, as upstream compares with the kind's empty struct), so that a write does not
/// own `spec`, `status`, a pod template or the containers list wholesale (no `.` entry)
/// whether or not the stored JSON spells them out.
pub(super) fn zero_value(group: &str, kind: &str) -> Value {
    let template = json!({"metadata": {}, "spec": {"containers": null}});
    match (group, kind) {
        ("apps", "Deployment") => json!({
            "metadata": {},
            "spec": {"template": template, "strategy": {}},
            "status": {},
        }),
        ("apps", "DaemonSet" | "StatefulSet") => json!({
            "metadata": {},
            "spec": {"template": template, "updateStrategy": {}},
            "status": {},
        }),
        ("apps", "ReplicaSet") | ("batch", "Job") => json!({
            "metadata": {},
            "spec": {"template": template},
            "status": {},
        }),
        ("batch", "CronJob") => json!({
            "metadata": {},
            "spec": {"jobTemplate": {"metadata": {}, "spec": {"template": template}}},
            "status": {},
        }),
        ("", "PodTemplate") => json!({"metadata": {}, "template": template}),
        ("", "ConfigMap" | "Secret" | "ServiceAccount" | "Endpoints" | "Event")
        | ("events.k8s.io", _) => json!({"metadata": {}}),
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => {
            json!({"metadata": {}, "rules": null})
        }
        ("rbac.authorization.k8s.io", _) => json!({"metadata": {}, "roleRef": {}}),
        ("coordination.k8s.io", "Lease") => json!({"metadata": {}, "spec": {}}),
        ("", "Service") | ("networking.k8s.io", "Ingress") => {
            json!({"metadata": {}, "spec": {}, "status": {"loadBalancer": {}}})
        }
        ("", "PersistentVolumeClaim") => {
            json!({"metadata": {}, "spec": {"resources": {}}, "status": {}})
        }
        ("", "Node") => json!({
            "metadata": {},
            "spec": {},
            "status": {"daemonEndpoints": {"kubeletEndpoint": {}}, "nodeInfo": {}},
        }),
        ("autoscaling", "HorizontalPodAutoscaler") => {
            json!({"metadata": {}, "spec": {"scaleTargetRef": {}}, "status": {}})
        }
        ("", "Pod") => json!({"metadata": {}, "spec": {"containers": null}, "status": {}}),
        // Custom resources are unstructured upstream: their empty object is `{}`, so a
        // create owns `spec` itself (`f:spec: {".": {}, …}`).
        _ if crate::registry::all().by_kind(group, kind).is_some() => {
            json!({"metadata": {}, "spec": {}, "status": {}})
        }
        _ => json!({}),
    }
}
