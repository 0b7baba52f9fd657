//! Kinds upstream prints that rkube's registry does not serve (yet): flow control, DRA,
//! runtime classes, service CIDRs and the like. Kept so the table is right the day they are
//! served.

use jiff::Timestamp;
use serde_json::Value;

use super::desc::*;
use super::format::{age, at, has, int, list, list_with_more, name, opt_text, text};
use super::{AGE, Column, NAME, col};

/// `kubectl get runtimeclasses`.
pub(super) const RUNTIME_CLASS: &[Column] = &[
    NAME,
    // Upstream looks this description up on the wrong type and finds nothing.
    col("Handler", "string", ""),
    AGE,
];

/// One runtime class's row.
pub(super) fn runtime_class(class: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(class),
        Value::from(text(class, &["handler"])),
        age(class, now),
    ]
}

/// `kubectl get flowschemas`.
pub(super) const FLOW_SCHEMA: &[Column] = &[
    NAME,
    col("PriorityLevel", "string", FS_PRIORITY_LEVEL),
    col("MatchingPrecedence", "string", FS_PRECEDENCE),
    col("DistinguisherMethod", "string", FS_DISTINGUISHER),
    AGE,
    col(
        "MissingPL",
        "string",
        "references a broken or non-existent PriorityLevelConfiguration",
    ),
];

/// One flow schema's row: MISSINGPL is the status of its `Dangling` condition, `?` if none.
pub(super) fn flow_schema(schema: &Value, now: Timestamp) -> Vec<Value> {
    let dangling = list(schema, &["status", "conditions"])
        .iter()
        .find(|c| text(c, &["type"]) == "Dangling")
        .map_or("?", |c| text(c, &["status"]));
    let distinguisher = if has(schema, &["spec", "distinguisherMethod"]) {
        text(schema, &["spec", "distinguisherMethod", "type"])
    } else {
        "<none>"
    };
    vec![
        name(schema),
        Value::from(text(
            schema,
            &["spec", "priorityLevelConfiguration", "name"],
        )),
        Value::from(int(schema, &["spec", "matchingPrecedence"])),
        Value::from(distinguisher),
        age(schema, now),
        Value::from(dangling),
    ]
}

/// `kubectl get prioritylevelconfigurations`.
pub(super) const PRIORITY_LEVEL: &[Column] = &[
    NAME,
    col("Type", "string", PL_TYPE),
    col("NominalConcurrencyShares", "string", PL_SHARES),
    col("Queues", "string", PL_QUEUES),
    col("HandSize", "string", PL_HAND_SIZE),
    col("QueueLengthLimit", "string", PL_QUEUE_LENGTH),
    AGE,
];

/// One priority level's row: the numbers only for limited levels, queuing ones for queuing.
pub(super) fn priority_level(level: &Value, now: Timestamp) -> Vec<Value> {
    let none = || Value::from("<none>");
    let (mut shares, mut queues, mut hand_size, mut queue_length) =
        (none(), none(), none(), none());
    if let Some(limited) = at(level, &["spec", "limited"]) {
        shares = Value::from(int(limited, &["nominalConcurrencyShares"]));
        if let Some(queuing) = at(limited, &["limitResponse", "queuing"]) {
            queues = Value::from(int(queuing, &["queues"]));
            hand_size = Value::from(int(queuing, &["handSize"]));
            queue_length = Value::from(int(queuing, &["queueLengthLimit"]));
        }
    }
    vec![
        name(level),
        Value::from(text(level, &["spec", "type"])),
        shares,
        queues,
        hand_size,
        queue_length,
        age(level, now),
    ]
}

/// `kubectl get servicecidrs`.
pub(super) const SERVICE_CIDR: &[Column] = &[NAME, col("CIDRs", "string", SCIDR_CIDRS), AGE];

/// One service CIDR's row.
pub(super) fn service_cidr(cidr: &Value, now: Timestamp) -> Vec<Value> {
    let cidrs: Vec<&str> = list(cidr, &["spec", "cidrs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    vec![name(cidr), Value::from(cidrs.join(",")), age(cidr, now)]
}

/// `kubectl get ipaddresses`.
pub(super) const IP_ADDRESS: &[Column] = &[NAME, col("ParentRef", "string", IPADDR_PARENT)];

/// One IP address's row: PARENTREF is `resource.group[/namespace]/name`. Upstream sends the age
/// too, as a third cell without a column; so does this.
pub(super) fn ip_address(address: &Value, now: Timestamp) -> Vec<Value> {
    let parent = at(address, &["spec", "parentRef"]).map_or_else(
        || "<none>".to_owned(),
        |p| {
            let group = text(p, &["group"]);
            let resource = text(p, &["resource"]);
            let mut parent = if group.is_empty() {
                resource.to_lowercase()
            } else {
                format!("{resource}.{group}").to_lowercase()
            };
            let namespace = text(p, &["namespace"]);
            if !namespace.is_empty() {
                parent.push('/');
                parent.push_str(namespace);
            }
            parent.push('/');
            parent.push_str(text(p, &["name"]));
            parent
        },
    );
    vec![name(address), Value::from(parent), age(address, now)]
}

/// `kubectl get csistoragecapacities`.
pub(super) const CSI_STORAGE_CAPACITY: &[Column] = &[
    NAME,
    col("StorageClassName", "string", CSC_CLASS),
    col("Capacity", "string", CSC_CAPACITY),
];

/// One storage capacity's row.
pub(super) fn csi_storage_capacity(capacity: &Value, _now: Timestamp) -> Vec<Value> {
    let amount = at(capacity, &["capacity"]).map_or_else(
        || "<unset>".to_owned(),
        |q| super::format::quantity(Some(q)),
    );
    vec![
        name(capacity),
        Value::from(text(capacity, &["storageClassName"])),
        Value::from(amount),
    ]
}

/// `kubectl get volumeattributesclasses`.
pub(super) const VOLUME_ATTRIBUTES_CLASS: &[Column] =
    &[NAME, col("DriverName", "string", VAC_DRIVER), AGE];

/// One volume attributes class's row; the default class's name gets ` (default)`.
pub(super) fn volume_attributes_class(class: &Value, now: Timestamp) -> Vec<Value> {
    let mut class_name = text(class, &["metadata", "name"]).to_owned();
    let default_annotation = [
        "metadata",
        "annotations",
        "volumeattributesclass.alpha.kubernetes.io/is-default-class",
    ];
    if text(class, &default_annotation) == "true" {
        class_name.push_str(" (default)");
    }
    vec![
        Value::from(class_name),
        Value::from(text(class, &["driverName"])),
        age(class, now),
    ]
}

/// `kubectl get leasecandidates`.
pub(super) const LEASE_CANDIDATE: &[Column] = &[
    NAME,
    col("LeaseName", "string", LC_LEASE),
    // Upstream looks these descriptions up on the wrong type and finds nothing.
    col("BinaryVersion", "string", ""),
    col("EmulationVersion", "string", ""),
    AGE,
];

/// One lease candidate's row.
pub(super) fn lease_candidate(candidate: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(candidate),
        Value::from(text(candidate, &["spec", "leaseName"])),
        Value::from(text(candidate, &["spec", "binaryVersion"])),
        Value::from(text(candidate, &["spec", "emulationVersion"])),
        age(candidate, now),
    ]
}

/// `kubectl get clustertrustbundles`.
pub(super) const CLUSTER_TRUST_BUNDLE: &[Column] = &[NAME, col("SignerName", "string", CTB_SIGNER)];

/// One trust bundle's row.
pub(super) fn cluster_trust_bundle(bundle: &Value, _now: Timestamp) -> Vec<Value> {
    let signer = text(bundle, &["spec", "signerName"]);
    vec![
        name(bundle),
        Value::from(if signer.is_empty() { "<none>" } else { signer }),
    ]
}

/// Kinds whose table is just the name and the age.
pub(super) const NAME_AND_AGE: &[Column] = &[NAME, AGE];

/// A row of the name and the age.
pub(super) fn name_and_age(object: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(object), age(object, now)]
}

/// `kubectl get resourceclaims`.
pub(super) const RESOURCE_CLAIM: &[Column] = &[
    NAME,
    col(
        "State",
        "string",
        "A summary of the current state (allocated, pending, reserved, etc.).",
    ),
    AGE,
];

/// One resource claim's row: STATE lists `deleted`, `pending`, `allocated`, `reserved`.
pub(super) fn resource_claim(claim: &Value, now: Timestamp) -> Vec<Value> {
    let deleted = has(claim, &["metadata", "deletionTimestamp"]);
    let mut states: Vec<&str> = Vec::new();
    if deleted {
        states.push("deleted");
    }
    if has(claim, &["status", "allocation"]) {
        states.push("allocated");
        if !list(claim, &["status", "reservedFor"]).is_empty() {
            states.push("reserved");
        }
    } else if !deleted {
        states.push("pending");
    }
    vec![name(claim), Value::from(states.join(",")), age(claim, now)]
}

/// `kubectl get resourceslices`.
pub(super) const RESOURCE_SLICE: &[Column] = &[
    NAME,
    col("Node", "string", RSLICE_NODE),
    col("Driver", "string", RSLICE_DRIVER),
    col("Pool", "string", RPOOL_NAME),
    AGE,
];

/// One resource slice's row.
pub(super) fn resource_slice(slice: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(slice),
        Value::from(text(slice, &["spec", "nodeName"])),
        Value::from(text(slice, &["spec", "driver"])),
        Value::from(text(slice, &["spec", "pool", "name"])),
        age(slice, now),
    ]
}

/// `kubectl get storageversions`.
pub(super) const STORAGE_VERSION: &[Column] = &[
    NAME,
    col("CommonEncodingVersion", "string", SV_COMMON),
    col("StorageVersions", "string", SV_VERSIONS),
    AGE,
];

/// One storage version's row: the first three `apiServerID=encodingVersion` pairs.
pub(super) fn storage_version(version: &Value, now: Timestamp) -> Vec<Value> {
    let versions: Vec<String> = list(version, &["status", "storageVersions"])
        .iter()
        .map(|v| {
            format!(
                "{}={}",
                text(v, &["apiServerID"]),
                text(v, &["encodingVersion"])
            )
        })
        .collect();
    vec![
        name(version),
        Value::from(opt_text(version, &["status", "commonEncodingVersion"]).unwrap_or("<unset>")),
        Value::from(list_with_more(&versions, versions.len(), 3)),
        age(version, now),
    ]
}

/// `kubectl get storageversionmigrations`.
pub(super) const STORAGE_VERSION_MIGRATION: &[Column] = &[
    // Upstream leaves the name format off this one column.
    col("Name", "string", OBJ_NAME),
    col("Resource", "string", "Fully qualified resource to migrate"),
];

/// One migration's row: RESOURCE is `resource.version.group`.
pub(super) fn storage_version_migration(migration: &Value, _now: Timestamp) -> Vec<Value> {
    let field = |f: &str| text(migration, &["spec", "resource", f]);
    vec![
        name(migration),
        Value::from(format!(
            "{}.{}.{}",
            field("resource"),
            field("version"),
            field("group")
        )),
    ]
}

/// `kubectl get componentstatuses`.
pub(super) const COMPONENT_STATUS: &[Column] = &[
    NAME,
    col("Status", "string", "Status of the component conditions"),
    col("Message", "string", "Message of the component conditions"),
    col("Error", "string", "Error of the component conditions"),
];

/// One component's row, from its first `Healthy` condition.
pub(super) fn component_status(component: &Value, _now: Timestamp) -> Vec<Value> {
    let healthy = list(component, &["conditions"])
        .iter()
        .find(|c| text(c, &["type"]) == "Healthy");
    let (status, message, error) = match healthy {
        Some(c) => (
            if text(c, &["status"]) == "True" {
                "Healthy"
            } else {
                "Unhealthy"
            },
            text(c, &["message"]),
            text(c, &["error"]),
        ),
        None => ("Unknown", "", ""),
    };
    vec![
        name(component),
        Value::from(status),
        Value::from(message),
        Value::from(error),
    ]
}
