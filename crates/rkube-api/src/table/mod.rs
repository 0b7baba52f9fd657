//! The server-side Table output (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`) that
//! `kubectl get` prints: for each built-in kind, upstream's column definitions and the cells of
//! one object's row, matching `pkg/printers/internalversion` in kube-apiserver.
//!
//! Like upstream's server, the cells always include the `-o wide` columns (priority 1); kubectl
//! drops them unless asked. Kinds without an upstream printer get upstream's default table: the
//! name and the creation time.
//!
//! Everything is pure: the current time is passed in, and missing or mistyped fields give the
//! same cells upstream prints for zero values.

mod admission;
mod apps;
mod core;
pub(crate) mod desc;
mod event;
mod extra;
mod format;
mod misc;
mod pod;
mod quantity;
#[cfg(test)]
mod tests;

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use self::desc::{OBJ_CREATED, OBJ_NAME};

/// One column, as `metav1.TableColumnDefinition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// The column header as upstream spells it (kubectl upper-cases it), e.g. `Cluster-IP`.
    pub name: &'static str,
    /// The OpenAPI type of the cells: `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: &'static str,
    /// `name` for the column holding the object's name, else empty.
    pub format: &'static str,
    /// What the column shows.
    pub description: &'static str,
    /// 0 for columns always shown, 1 for those only `-o wide` shows.
    pub priority: i32,
}

/// A column shown by default.
const fn col(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 0,
    }
}

/// A column shown only with `-o wide`.
const fn wide(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 1,
    }
}

/// The NAME column.
const NAME: Column = Column {
    name: "Name",
    type_: "string",
    format: "name",
    description: OBJ_NAME,
    priority: 0,
};

/// The AGE column.
const AGE: Column = col("Age", "string", OBJ_CREATED);

/// The wide CONTAINERS column of workloads.
const CONTAINERS: Column = wide(
    "Containers",
    "string",
    "Names of each container in the template.",
);

/// The wide IMAGES column of workloads.
const IMAGES: Column = wide(
    "Images",
    "string",
    "Images referenced by each container in the template.",
);

/// Upstream's default table, for kinds without a printer (`rest.NewDefaultTableConvertor`).
const DEFAULT_COLUMNS: &[Column] = &[NAME, col("Created At", "date", OBJ_CREATED)];

/// Builds one row's cells from the object and the current time.
type Printer = fn(&Value, Timestamp) -> Vec<Value>;

/// Every kind with an upstream printer: group, kind, columns, cells.
const PRINTERS: &[(&str, &str, &[Column], Printer)] = &[
    ("", "ConfigMap", core::CONFIG_MAP, core::config_map),
    ("", "Endpoints", core::ENDPOINTS, core::endpoints),
    ("", "Event", event::EVENT, event::event),
    (
        "events.k8s.io",
        "Event",
        event::EVENT,
        event::events_v1_event,
    ),
    ("", "Namespace", core::NAMESPACE, core::namespace),
    ("", "Node", core::NODE, core::node),
    (
        "",
        "PersistentVolume",
        core::PERSISTENT_VOLUME,
        core::persistent_volume,
    ),
    (
        "",
        "PersistentVolumeClaim",
        core::PERSISTENT_VOLUME_CLAIM,
        core::persistent_volume_claim,
    ),
    ("", "Pod", pod::POD, pod::pod),
    ("", "PodTemplate", pod::POD_TEMPLATE, pod::pod_template),
    (
        "",
        "ReplicationController",
        apps::REPLICATION_CONTROLLER,
        apps::replication_controller,
    ),
    (
        "",
        "ResourceQuota",
        core::RESOURCE_QUOTA,
        core::resource_quota,
    ),
    ("", "Secret", core::SECRET, core::secret),
    ("", "Service", core::SERVICE, core::service),
    (
        "",
        "ServiceAccount",
        core::SERVICE_ACCOUNT,
        core::service_account,
    ),
    (
        "apps",
        "ControllerRevision",
        apps::CONTROLLER_REVISION,
        apps::controller_revision,
    ),
    ("apps", "DaemonSet", apps::DAEMON_SET, apps::daemon_set),
    ("apps", "Deployment", apps::DEPLOYMENT, apps::deployment),
    ("apps", "ReplicaSet", apps::REPLICA_SET, apps::replica_set),
    (
        "apps",
        "StatefulSet",
        apps::STATEFUL_SET,
        apps::stateful_set,
    ),
    (
        "autoscaling",
        "HorizontalPodAutoscaler",
        apps::HPA,
        apps::hpa,
    ),
    ("autoscaling", "Scale", apps::SCALE, apps::scale),
    ("batch", "CronJob", apps::CRON_JOB, apps::cron_job),
    ("batch", "Job", apps::JOB, apps::job),
    ("policy", "PodDisruptionBudget", apps::PDB, apps::pdb),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
        admission::WEBHOOK_CONFIGURATION,
        admission::webhook_configuration,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
        admission::WEBHOOK_CONFIGURATION,
        admission::webhook_configuration,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicy",
        admission::VALIDATING_ADMISSION_POLICY,
        admission::validating_admission_policy,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
        admission::ADMISSION_POLICY_BINDING,
        admission::admission_policy_binding,
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingAdmissionPolicy",
        admission::MUTATING_ADMISSION_POLICY,
        admission::mutating_admission_policy,
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingAdmissionPolicyBinding",
        admission::ADMISSION_POLICY_BINDING,
        admission::admission_policy_binding,
    ),
    (
        "certificates.k8s.io",
        "CertificateSigningRequest",
        misc::CSR,
        misc::csr,
    ),
    ("coordination.k8s.io", "Lease", misc::LEASE, misc::lease),
    (
        "apiregistration.k8s.io",
        "APIService",
        misc::API_SERVICE,
        misc::api_service,
    ),
    (
        "discovery.k8s.io",
        "EndpointSlice",
        misc::ENDPOINT_SLICE,
        misc::endpoint_slice,
    ),
    ("networking.k8s.io", "Ingress", misc::INGRESS, misc::ingress),
    (
        "networking.k8s.io",
        "IngressClass",
        misc::INGRESS_CLASS,
        misc::ingress_class,
    ),
    (
        "networking.k8s.io",
        "NetworkPolicy",
        misc::NETWORK_POLICY,
        misc::network_policy,
    ),
    (
        "rbac.authorization.k8s.io",
        "RoleBinding",
        misc::ROLE_BINDING,
        misc::role_binding,
    ),
    (
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        misc::CLUSTER_ROLE_BINDING,
        misc::role_binding,
    ),
    (
        "node.k8s.io",
        "RuntimeClass",
        misc::RUNTIME_CLASS,
        misc::runtime_class,
    ),
    (
        "scheduling.k8s.io",
        "PriorityClass",
        misc::PRIORITY_CLASS,
        misc::priority_class,
    ),
    (
        "storage.k8s.io",
        "CSIDriver",
        misc::CSI_DRIVER,
        misc::csi_driver,
    ),
    ("storage.k8s.io", "CSINode", misc::CSI_NODE, misc::csi_node),
    (
        "storage.k8s.io",
        "StorageClass",
        misc::STORAGE_CLASS,
        misc::storage_class,
    ),
    (
        "storage.k8s.io",
        "VolumeAttachment",
        misc::VOLUME_ATTACHMENT,
        misc::volume_attachment,
    ),
    // Printed upstream; some (DRA, storage versions, trust bundles) are not served by rkube.
    (
        "",
        "ComponentStatus",
        extra::COMPONENT_STATUS,
        extra::component_status,
    ),
    (
        "certificates.k8s.io",
        "ClusterTrustBundle",
        extra::CLUSTER_TRUST_BUNDLE,
        extra::cluster_trust_bundle,
    ),
    (
        "coordination.k8s.io",
        "LeaseCandidate",
        extra::LEASE_CANDIDATE,
        extra::lease_candidate,
    ),
    (
        "flowcontrol.apiserver.k8s.io",
        "FlowSchema",
        extra::FLOW_SCHEMA,
        extra::flow_schema,
    ),
    (
        "flowcontrol.apiserver.k8s.io",
        "PriorityLevelConfiguration",
        extra::PRIORITY_LEVEL,
        extra::priority_level,
    ),
    (
        "internal.apiserver.k8s.io",
        "StorageVersion",
        extra::STORAGE_VERSION,
        extra::storage_version,
    ),
    (
        "networking.k8s.io",
        "IPAddress",
        extra::IP_ADDRESS,
        extra::ip_address,
    ),
    (
        "networking.k8s.io",
        "ServiceCIDR",
        extra::SERVICE_CIDR,
        extra::service_cidr,
    ),
    (
        "node.k8s.io",
        "RuntimeClass",
        extra::RUNTIME_CLASS,
        extra::runtime_class,
    ),
    (
        "resource.k8s.io",
        "DeviceClass",
        extra::NAME_AND_AGE,
        extra::name_and_age,
    ),
    (
        "resource.k8s.io",
        "ResourceClaim",
        extra::RESOURCE_CLAIM,
        extra::resource_claim,
    ),
    (
        "resource.k8s.io",
        "ResourceClaimTemplate",
        extra::NAME_AND_AGE,
        extra::name_and_age,
    ),
    (
        "resource.k8s.io",
        "ResourceSlice",
        extra::RESOURCE_SLICE,
        extra::resource_slice,
    ),
    (
        "storage.k8s.io",
        "CSIStorageCapacity",
        extra::CSI_STORAGE_CAPACITY,
        extra::csi_storage_capacity,
    ),
    (
        "storage.k8s.io",
        "VolumeAttributesClass",
        extra::VOLUME_ATTRIBUTES_CLASS,
        extra::volume_attributes_class,
    ),
    (
        "storagemigration.k8s.io",
        "StorageVersionMigration",
        extra::STORAGE_VERSION_MIGRATION,
        extra::storage_version_migration,
    ),
];

fn printer(group: &str, kind: &str) -> Option<(&'static [Column], Printer)> {
    PRINTERS
        .iter()
        .find(|(g, k, _, _)| *g == group && *k == kind)
        .map(|(_, _, columns, print)| (*columns, *print))
}

/// The columns upstream shows for this kind (group `""` is the core group), `-o wide` columns
/// included; kinds without an upstream printer get the default table: Name and Created At.
pub fn columns(group: &str, kind: &str) -> &'static [Column] {
    printer(group, kind).map_or(DEFAULT_COLUMNS, |(columns, _)| columns)
}

/// The cells of one row for `object` (a full JSON object of this kind), in the order of
/// [`columns`], as JSON strings, integers and booleans exactly as upstream's server sends them.
/// Ages are measured up to `now`.
pub fn cells(group: &str, kind: &str, object: &Value, now: Timestamp) -> Vec<Value> {
    match printer(group, kind) {
        Some((_, print)) => print(object, now),
        None => default_cells(object),
    }
}

/// The default table's row: the name and the creation time in RFC 3339, UTC, whole seconds
/// (Go's zero time when unset, as upstream formats it).
fn default_cells(object: &Value) -> Vec<Value> {
    let created = format::time(format::text(object, &["metadata", "creationTimestamp"]))
        .map_or_else(
            || "0001-01-01T00:00:00Z".to_owned(),
            |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        );
    vec![format::name(object), Value::from(created)]
}

/// Upstream's human duration for ages (`HumanDuration` in apimachinery): `5s`, `3m20s`, `10m`,
/// `5h`, `3d5h`, `2y`... with about two significant figures.
pub fn human_duration(d: Duration) -> String {
    let seconds = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    format::human(SignedDuration::from_secs(seconds))
}
