//! Defaults of the kinds outside core, apps and batch: autoscaling, discovery, networking,
//! RBAC, storage and admission registration.

use serde_json::{Map, Value, json};

use super::{child, child_or_insert, default_str, default_value, each_object, str_of};

/// The RBAC API group, which users and groups in subjects belong to.
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// `SetDefaults_HorizontalPodAutoscaler` (autoscaling/v2): one replica at least, 80% CPU
/// when no metric is given, and every unset scaling rule filled when `behavior` is given.
pub(super) fn horizontal_pod_autoscaler(obj: &mut Map<String, Value>) {
    // A v2 object never keeps what only v1 objects carry in annotations (upstream's v2
    // decoding drops them); v1 writes have turned theirs into fields already.
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        crate::convert::hpa::drop_round_trip_annotations(meta);
    }
    let Some(spec) = child_or_insert(obj, "spec") else {
        return;
    };
    default_value(spec, "minReplicas", json!(1));
    let no_metrics = spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if no_metrics && !matches!(spec.get("metrics"), Some(v) if !v.is_null() && !v.is_array()) {
        spec.insert(
            "metrics".to_owned(),
            json!([{
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80},
                },
            }]),
        );
    }
    if let Some(behavior) = child(spec, "behavior") {
        if let Some(up) = child_or_insert(behavior, "scaleUp") {
            default_value(up, "stabilizationWindowSeconds", json!(0));
            default_value(up, "selectPolicy", json!("Max"));
            default_value(
                up,
                "policies",
                json!([
                    {"type": "Pods", "value": 4, "periodSeconds": 15},
                    {"type": "Percent", "value": 100, "periodSeconds": 15},
                ]),
            );
        }
        if let Some(down) = child_or_insert(behavior, "scaleDown") {
            default_value(down, "stabilizationWindowSeconds", json!(300));
            default_value(down, "selectPolicy", json!("Max"));
            default_value(
                down,
                "policies",
                json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
            );
        }
    }
}

/// `SetDefaults_EndpointPort` (discovery/v1): an unnamed TCP port.
pub(super) fn endpoint_slice(obj: &mut Map<String, Value>) {
    each_object(obj, "ports", |port| {
        default_value(port, "name", json!(""));
        default_value(port, "protocol", json!("TCP"));
    });
}

/// `SetDefaults_NetworkPolicy`: TCP ports, and policy types from the rules given.
pub(super) fn network_policy(obj: &mut Map<String, Value>) {
    let Some(spec) = child_or_insert(obj, "spec") else {
        return;
    };
    for direction in ["ingress", "egress"] {
        each_object(spec, direction, |rule| {
            each_object(rule, "ports", |port| {
                default_value(port, "protocol", json!("TCP"));
            });
        });
    }
    let no_types = spec
        .get("policyTypes")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if no_types {
        let has_egress = spec
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty());
        let types = if has_egress {
            json!(["Ingress", "Egress"])
        } else {
            json!(["Ingress"])
        };
        spec.insert("policyTypes".to_owned(), types);
    }
}

/// `SetDefaults_IngressClass`: parameters are cluster-scoped unless said otherwise.
pub(super) fn ingress_class(obj: &mut Map<String, Value>) {
    if let Some(parameters) = child(obj, "spec").and_then(|s| child(s, "parameters")) {
        default_value(parameters, "scope", json!("Cluster"));
    }
}

/// `SetDefaults_RoleBinding` / `SetDefaults_ClusterRoleBinding` and `SetDefaults_Subject`.
pub(super) fn role_binding(obj: &mut Map<String, Value>) {
    if let Some(role_ref) = child_or_insert(obj, "roleRef") {
        default_str(role_ref, "apiGroup", RBAC_GROUP);
    }
    each_object(obj, "subjects", |subject| {
        if matches!(str_of(subject, "kind"), Some("User" | "Group")) {
            default_str(subject, "apiGroup", RBAC_GROUP);
        }
    });
}

/// `SetDefaults_StorageClass`.
pub(super) fn storage_class(obj: &mut Map<String, Value>) {
    default_value(obj, "reclaimPolicy", json!("Delete"));
    default_value(obj, "volumeBindingMode", json!("Immediate"));
}

/// `SetDefaults_CSIDriver`.
pub(super) fn csi_driver(obj: &mut Map<String, Value>) {
    let Some(spec) = child_or_insert(obj, "spec") else {
        return;
    };
    default_value(spec, "attachRequired", json!(true));
    default_value(spec, "podInfoOnMount", json!(false));
    default_value(spec, "storageCapacity", json!(false));
    default_value(spec, "fsGroupPolicy", json!("ReadWriteOnceWithFSType"));
    let no_modes = spec
        .get("volumeLifecycleModes")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if no_modes {
        spec.insert("volumeLifecycleModes".to_owned(), json!(["Persistent"]));
    }
    default_value(spec, "requiresRepublish", json!(false));
    default_value(spec, "seLinuxMount", json!(false));
}

/// `SetDefaults_ValidatingWebhook` / `SetDefaults_MutatingWebhook`, with their rules'
/// scope and their service's port.
pub(super) fn webhook_configuration(obj: &mut Map<String, Value>, mutating: bool) {
    each_object(obj, "webhooks", |webhook| {
        default_value(webhook, "failurePolicy", json!("Fail"));
        default_value(webhook, "matchPolicy", json!("Equivalent"));
        default_value(webhook, "namespaceSelector", json!({}));
        default_value(webhook, "objectSelector", json!({}));
        default_value(webhook, "timeoutSeconds", json!(10));
        if mutating {
            default_value(webhook, "reinvocationPolicy", json!("Never"));
        }
        each_object(webhook, "rules", |rule| {
            default_value(rule, "scope", json!("*"));
        });
        if let Some(service) = child(webhook, "clientConfig").and_then(|c| child(c, "service")) {
            default_value(service, "port", json!(443));
        }
    });
}

/// `SetDefaults_ValidatingAdmissionPolicySpec` and `SetDefaults_MatchResources`.
pub(super) fn validating_admission_policy(obj: &mut Map<String, Value>) {
    let Some(spec) = child_or_insert(obj, "spec") else {
        return;
    };
    default_value(spec, "failurePolicy", json!("Fail"));
    if let Some(constraints) = child(spec, "matchConstraints") {
        default_value(constraints, "matchPolicy", json!("Equivalent"));
        default_value(constraints, "namespaceSelector", json!({}));
        default_value(constraints, "objectSelector", json!({}));
        for rules in ["resourceRules", "excludeResourceRules"] {
            each_object(constraints, rules, |rule| {
                default_value(rule, "scope", json!("*"));
            });
        }
    }
}
