//! The smaller API groups: networking, discovery, storage, RBAC, certificates, coordination
//! and scheduling.

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use super::core::load_balancer_ingress;
use super::desc::*;
use super::format::{
    age, at, count_cell, flag, format_label_selector, has, human, int, list, list_with_more, name,
    opt_bool, opt_int, opt_text, text,
};
use super::{AGE, Column, NAME, col, wide};

/// `kubectl get certificatesigningrequests`.
pub(super) const CSR: &[Column] = &[
    NAME,
    AGE,
    col("SignerName", "string", CSR_SIGNER),
    col("Requestor", "string", CSR_REQUEST),
    col("RequestedDuration", "string", CSR_EXPIRATION),
    col("Condition", "string", CSR_CONDITIONS),
];

/// One signing request's row. CONDITION is `Denied`, `Approved` or `Pending`, then `,Failed`
/// and `,Issued` when they apply.
pub(super) fn csr(csr: &Value, now: Timestamp) -> Vec<Value> {
    let conditions = list(csr, &["status", "conditions"]);
    let has_condition = |type_: &str| conditions.iter().any(|c| text(c, &["type"]) == type_);
    let mut condition = if has_condition("Denied") {
        "Denied".to_owned()
    } else if has_condition("Approved") {
        "Approved".to_owned()
    } else {
        "Pending".to_owned()
    };
    if has_condition("Failed") {
        condition.push_str(",Failed");
    }
    if !text(csr, &["status", "certificate"]).is_empty() {
        condition.push_str(",Issued");
    }
    let signer = text(csr, &["spec", "signerName"]);
    let requested = opt_int(csr, &["spec", "expirationSeconds"]).map_or_else(
        || "<none>".to_owned(),
        |seconds| human(SignedDuration::from_secs(seconds)),
    );
    vec![
        name(csr),
        age(csr, now),
        Value::from(if signer.is_empty() { "<none>" } else { signer }),
        Value::from(text(csr, &["spec", "username"])),
        Value::from(requested),
        Value::from(condition),
    ]
}

/// `kubectl get leases`.
pub(super) const LEASE: &[Column] = &[NAME, col("Holder", "string", LEASE_HOLDER), AGE];

/// One lease's row.
pub(super) fn lease(lease: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(lease),
        Value::from(text(lease, &["spec", "holderIdentity"])),
        age(lease, now),
    ]
}

/// `kubectl get apiservices`.
pub(super) const API_SERVICE: &[Column] = &[
    NAME,
    col(
        "Service",
        "string",
        "The reference to the service that hosts this API endpoint.",
    ),
    col("Available", "string", "Whether this service is available."),
    AGE,
];

/// One APIService's row: its service (`Local` without one) and its Available condition
/// (`False (reason)` when it is not true and has a reason).
pub(super) fn api_service(service: &Value, now: Timestamp) -> Vec<Value> {
    let target = match opt_text(service, &["spec", "service", "name"]) {
        Some(name) => format!(
            "{}/{name}",
            text(service, &["spec", "service", "namespace"])
        ),
        None => "Local".to_owned(),
    };
    let available = list(service, &["status", "conditions"])
        .iter()
        .find(|c| text(c, &["type"]) == "Available")
        .map(|c| {
            let status = text(c, &["status"]);
            match opt_text(c, &["reason"]) {
                Some(reason) if status != "True" && !reason.is_empty() => {
                    format!("{status} ({reason})")
                }
                _ => status.to_owned(),
            }
        })
        .unwrap_or_else(|| "Unknown".to_owned());
    vec![
        name(service),
        Value::from(target),
        Value::from(available),
        age(service, now),
    ]
}

/// `kubectl get endpointslices`.
pub(super) const ENDPOINT_SLICE: &[Column] = &[
    NAME,
    col("AddressType", "string", EPS_ADDRESS_TYPE),
    col("Ports", "string", EPS_PORTS),
    col("Endpoints", "string", EPS_ENDPOINTS),
    AGE,
];

/// One endpoint slice's row: the first three ports and addresses, then `+ N more...`.
pub(super) fn endpoint_slice(slice: &Value, now: Timestamp) -> Vec<Value> {
    let ports: Vec<String> = list(slice, &["ports"])
        .iter()
        .map(|p| match (opt_int(p, &["port"]), opt_text(p, &["name"])) {
            (Some(port), _) => port.to_string(),
            (None, Some(port_name)) => port_name.to_owned(),
            (None, None) => "*".to_owned(),
        })
        .collect();
    let addresses: Vec<String> = list(slice, &["endpoints"])
        .iter()
        .flat_map(|e| list(e, &["addresses"]))
        .map(|a| a.as_str().unwrap_or("").to_owned())
        .collect();
    vec![
        name(slice),
        Value::from(text(slice, &["addressType"])),
        Value::from(list_with_more(&ports, ports.len(), 3)),
        Value::from(list_with_more(&addresses, addresses.len(), 3)),
        age(slice, now),
    ]
}

/// `kubectl get ingresses`.
pub(super) const INGRESS: &[Column] = &[
    NAME,
    col(
        "Class",
        "string",
        "The name of the IngressClass resource that should be used for additional configuration",
    ),
    col(
        "Hosts",
        "string",
        "Hosts that incoming requests are matched against before the ingress rule",
    ),
    col(
        "Address",
        "string",
        "Address is a list containing ingress points for the load-balancer",
    ),
    col("Ports", "string", "Ports of TLS configurations that open"),
    AGE,
];

/// The HOSTS cell: the first three rules' hosts (rules without one are skipped), `*` when none.
fn ingress_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == MAX {
            more = true;
        }
        let host = text(rule, &["host"]);
        if !more && !host.is_empty() {
            hosts.push(host);
        }
    }
    if hosts.is_empty() {
        return "*".to_owned();
    }
    if more {
        format!("{} + {} more...", hosts.join(","), rules.len() - MAX)
    } else {
        hosts.join(",")
    }
}

/// One ingress's row.
pub(super) fn ingress(ingress: &Value, now: Timestamp) -> Vec<Value> {
    let ports = if list(ingress, &["spec", "tls"]).is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(ingress),
        Value::from(opt_text(ingress, &["spec", "ingressClassName"]).unwrap_or("<none>")),
        Value::from(ingress_hosts(list(ingress, &["spec", "rules"]))),
        Value::from(
            at(ingress, &["status", "loadBalancer"])
                .map(load_balancer_ingress)
                .unwrap_or_default(),
        ),
        Value::from(ports),
        age(ingress, now),
    ]
}

/// `kubectl get ingressclasses`.
pub(super) const INGRESS_CLASS: &[Column] = &[
    NAME,
    col(
        "Controller",
        "string",
        "Controller that is responsible for handling this class",
    ),
    col(
        "Parameters",
        "string",
        "A reference to a resource with additional parameters",
    ),
    AGE,
];

/// One ingress class's row: PARAMETERS is `Kind[.apiGroup]/name`.
pub(super) fn ingress_class(class: &Value, now: Timestamp) -> Vec<Value> {
    let parameters = at(class, &["spec", "parameters"]).map_or_else(
        || "<none>".to_owned(),
        |p| {
            let kind = match opt_text(p, &["apiGroup"]) {
                Some(group) => format!("{}.{group}", text(p, &["kind"])),
                None => text(p, &["kind"]).to_owned(),
            };
            format!("{kind}/{}", text(p, &["name"]))
        },
    );
    vec![
        name(class),
        Value::from(text(class, &["spec", "controller"])),
        Value::from(parameters),
        age(class, now),
    ]
}

/// `kubectl get networkpolicies`.
pub(super) const NETWORK_POLICY: &[Column] =
    &[NAME, col("Pod-Selector", "string", NETPOL_SELECTOR), AGE];

/// One network policy's row.
pub(super) fn network_policy(policy: &Value, now: Timestamp) -> Vec<Value> {
    // The pod selector is not a pointer upstream: an absent one is the empty selector.
    let selector = at(policy, &["spec", "podSelector"]).unwrap_or(&Value::Null);
    vec![
        name(policy),
        Value::from(format_label_selector(Some(selector))),
        age(policy, now),
    ]
}

/// `kubectl get rolebindings`.
pub(super) const ROLE_BINDING: &[Column] = &[
    NAME,
    col("Role", "string", RB_ROLE_REF),
    AGE,
    wide("Users", "string", "Users in the roleBinding"),
    wide("Groups", "string", "Groups in the roleBinding"),
    wide(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the roleBinding",
    ),
];

/// `kubectl get clusterrolebindings`.
pub(super) const CLUSTER_ROLE_BINDING: &[Column] = &[
    NAME,
    col("Role", "string", CRB_ROLE_REF),
    AGE,
    wide("Users", "string", "Users in the clusterRoleBinding"),
    wide("Groups", "string", "Groups in the clusterRoleBinding"),
    wide(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the clusterRoleBinding",
    ),
];

/// One role binding's or cluster role binding's row.
pub(super) fn role_binding(binding: &Value, now: Timestamp) -> Vec<Value> {
    let mut users: Vec<&str> = Vec::new();
    let mut groups: Vec<&str> = Vec::new();
    let mut service_accounts: Vec<String> = Vec::new();
    for subject in list(binding, &["subjects"]) {
        let subject_name = text(subject, &["name"]);
        match text(subject, &["kind"]) {
            "User" => users.push(subject_name),
            "Group" => groups.push(subject_name),
            "ServiceAccount" => {
                service_accounts.push(format!("{}/{subject_name}", text(subject, &["namespace"])))
            }
            _ => {}
        }
    }
    vec![
        name(binding),
        Value::from(format!(
            "{}/{}",
            text(binding, &["roleRef", "kind"]),
            text(binding, &["roleRef", "name"])
        )),
        age(binding, now),
        Value::from(users.join(", ")),
        Value::from(groups.join(", ")),
        Value::from(service_accounts.join(", ")),
    ]
}

/// `kubectl get priorityclasses`.
pub(super) const PRIORITY_CLASS: &[Column] = &[
    NAME,
    col("Value", "integer", PC_VALUE),
    col("Global-Default", "boolean", PC_DEFAULT),
    AGE,
    // Upstream declares this column for all outputs but fills it only in wide ones; the server
    // always prints wide, so kubectl shows it either way.
    col("PreemptionPolicy", "string", PC_PREEMPTION),
];

/// One priority class's row.
pub(super) fn priority_class(class: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(class),
        Value::from(int(class, &["value"])),
        Value::from(flag(class, &["globalDefault"])),
        age(class, now),
        Value::from(text(class, &["preemptionPolicy"])),
    ]
}

/// `kubectl get runtimeclasses`.
pub(super) const RUNTIME_CLASS: &[Column] =
    &[NAME, col("Handler", "string", "RuntimeClass Handler"), AGE];

/// One runtime class's row.
pub(super) fn runtime_class(class: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(class),
        Value::from(text(class, &["handler"])),
        age(class, now),
    ]
}

/// `kubectl get csidrivers`.
pub(super) const CSI_DRIVER: &[Column] = &[
    NAME,
    col("AttachRequired", "boolean", CSI_ATTACH),
    col("PodInfoOnMount", "boolean", CSI_POD_INFO),
    col("StorageCapacity", "boolean", CSI_CAPACITY),
    col("TokenRequests", "string", CSI_TOKENS),
    col("RequiresRepublish", "boolean", CSI_REPUBLISH),
    col("Modes", "string", CSI_MODES),
    AGE,
];

/// One CSI driver's row, with upstream's defaults for unset flags.
pub(super) fn csi_driver(driver: &Value, now: Timestamp) -> Vec<Value> {
    let tokens = if has(driver, &["spec", "tokenRequests"]) {
        list(driver, &["spec", "tokenRequests"])
            .iter()
            .map(|t| text(t, &["audience"]))
            .collect::<Vec<_>>()
            .join(",")
    } else {
        "<unset>".to_owned()
    };
    let modes: Vec<&str> = list(driver, &["spec", "volumeLifecycleModes"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let modes = if modes.is_empty() {
        "<none>".to_owned()
    } else {
        modes.join(",")
    };
    vec![
        name(driver),
        Value::from(opt_bool(driver, &["spec", "attachRequired"]).unwrap_or(true)),
        Value::from(flag(driver, &["spec", "podInfoOnMount"])),
        Value::from(flag(driver, &["spec", "storageCapacity"])),
        Value::from(tokens),
        Value::from(flag(driver, &["spec", "requiresRepublish"])),
        Value::from(modes),
        age(driver, now),
    ]
}

/// `kubectl get csinodes`.
pub(super) const CSI_NODE: &[Column] = &[
    NAME,
    col(
        "Drivers",
        "integer",
        "Drivers indicates the number of CSI drivers registered on the node",
    ),
    AGE,
];

/// One CSI node's row.
pub(super) fn csi_node(node: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(node),
        count_cell(list(node, &["spec", "drivers"]).len()),
        age(node, now),
    ]
}

/// `kubectl get storageclasses`.
pub(super) const STORAGE_CLASS: &[Column] = &[
    NAME,
    col("Provisioner", "string", SC_PROVISIONER),
    col("ReclaimPolicy", "string", SC_RECLAIM),
    col("VolumeBindingMode", "string", SC_BINDING),
    col("AllowVolumeExpansion", "string", SC_EXPANSION),
    AGE,
];

/// One storage class's row; the default class's name gets ` (default)`.
pub(super) fn storage_class(class: &Value, now: Timestamp) -> Vec<Value> {
    let annotation = |key: &str| text(class, &["metadata", "annotations", key]) == "true";
    let is_default = annotation("storageclass.kubernetes.io/is-default-class")
        || annotation("storageclass.beta.kubernetes.io/is-default-class");
    let mut class_name = text(class, &["metadata", "name"]).to_owned();
    if is_default {
        class_name.push_str(" (default)");
    }
    vec![
        Value::from(class_name),
        Value::from(text(class, &["provisioner"])),
        Value::from(opt_text(class, &["reclaimPolicy"]).unwrap_or("Delete")),
        Value::from(opt_text(class, &["volumeBindingMode"]).unwrap_or("Immediate")),
        Value::from(flag(class, &["allowVolumeExpansion"])),
        age(class, now),
    ]
}

/// `kubectl get volumeattachments`.
pub(super) const VOLUME_ATTACHMENT: &[Column] = &[
    NAME,
    Column {
        name: "Attacher",
        type_: "string",
        format: "name",
        description: VA_ATTACHER,
        priority: 0,
    },
    col("PV", "string", VA_PV),
    col("Node", "string", VA_NODE),
    col("Attached", "boolean", VA_ATTACHED),
    AGE,
];

/// One volume attachment's row.
pub(super) fn volume_attachment(attachment: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(attachment),
        Value::from(text(attachment, &["spec", "attacher"])),
        Value::from(text(
            attachment,
            &["spec", "source", "persistentVolumeName"],
        )),
        Value::from(text(attachment, &["spec", "nodeName"])),
        Value::from(flag(attachment, &["status", "attached"])),
        age(attachment, now),
    ]
}
