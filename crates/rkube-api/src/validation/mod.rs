//! Validation of objects before they are stored, with upstream's field errors.
//!
//! [`validate`] is what kube-apiserver's registry strategies do in `Validate` and
//! `ValidateUpdate`: `metadata` by the kind's name rule, then the kind's own checks
//! (`pkg/apis/*/validation`), reported with the same paths and messages, so that a bad
//! object gets the same 422 from rkube as from upstream. It expects a defaulted object
//! ([`crate::defaults::apply_defaults`]), as upstream validates after defaulting.

mod affinity;
mod apiservice;
mod apps;
mod batch;
mod core;
mod cron;
mod discovery;
mod field;
mod meta;
pub mod names;
mod others;
mod pod;
mod quantity;
mod rbac;
mod security;
mod service;
mod volumes;

use serde_json::Value;

use self::meta::NameRule;
use crate::error::FieldError;
use crate::registry;

/// The name rule of a kind, as its upstream validation picks it.
fn name_rule(group: &str, kind: &str) -> NameRule {
    match (group, kind) {
        ("", "Namespace") | ("apps", "StatefulSet") => NameRule::Label,
        ("", "Service") => NameRule::Dns1035Label,
        (
            "rbac.authorization.k8s.io",
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding",
        )
        | ("apiregistration.k8s.io", "APIService") => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    }
}

/// Validates an object for create (old = None) or update (old = Some(previous stored
/// object)), returning upstream's field errors (empty = valid).
///
/// Kinds the registry does not serve, and the review kinds that are never stored, get no
/// checks. As in upstream, the caller has already done what comes before validation: set
/// `metadata.namespace` from the URL, generated a name from `generateName`, given a new Job
/// its `uid` (its selector is checked against it), and on update copied what upstream
/// carries over from the stored object (an unconditional update's `resourceVersion`, a
/// Service's allocated `clusterIPs`).
pub fn validate(group: &str, kind: &str, object: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(resource) = registry::all().by_kind(group, kind) else {
        return errs;
    };
    if !resource.is_stored() {
        return errs;
    }
    match old {
        None => meta::validate_create(
            object,
            resource.namespaced,
            name_rule(group, kind),
            &mut errs,
        ),
        Some(old) => meta::validate_update(object, old, &mut errs),
    }
    kind_checks(group, kind, object, old, &mut errs);
    errs
}

/// The checks of each kind, on create and (with `old`) on update.
fn kind_checks(
    group: &str,
    kind: &str,
    object: &Value,
    old: Option<&Value>,
    errs: &mut Vec<FieldError>,
) {
    match (group, kind) {
        ("", "Pod") => match old {
            None => pod::validate_pod(object, errs),
            Some(old) => pod::validate_pod_update(object, old, errs),
        },
        ("", "PodTemplate") => {
            pod::template(
                field::get(object, "template"),
                &field::Path::new("template"),
                errs,
            );
        }
        ("", "ReplicationController") => apps::replication_controller(object, errs),
        ("", "Service") => {
            service::service(object, errs);
            if let Some(old) = old {
                service::service_update(object, old, errs);
            }
        }
        ("", "ConfigMap") => {
            core::config_map(object, errs);
            if let Some(old) = old {
                core::config_map_update(object, old, errs);
            }
        }
        ("", "Secret") => {
            core::secret(object, errs);
            if let Some(old) = old {
                core::secret_update(object, old, errs);
            }
        }
        ("", "Namespace") => core::namespace(object, errs),
        ("", "Node") => {
            core::node(object, errs);
            if let Some(old) = old {
                core::node_update(object, old, errs);
            }
        }
        ("", "PersistentVolume") => {
            core::persistent_volume(object, errs);
            if let Some(old) = old {
                core::persistent_volume_update(object, old, errs);
            }
        }
        ("", "PersistentVolumeClaim") => {
            let spec = field::get(object, "spec").unwrap_or(&Value::Null);
            core::claim_spec(spec, &field::Path::new("spec"), errs);
            if let Some(old) = old {
                core::claim_update(object, old, errs);
            }
        }
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") => {
            match kind {
                "Deployment" => apps::deployment(object, errs),
                "ReplicaSet" => apps::replica_set(object, errs),
                _ => apps::daemon_set(object, errs),
            }
            if let Some(old) = old {
                apps::selector_immutable(object, old, errs);
            }
        }
        ("apps", "StatefulSet") => {
            apps::stateful_set(object, errs);
            if let Some(old) = old {
                apps::stateful_set_update(object, old, errs);
            }
        }
        ("apps", "ControllerRevision") => apps::controller_revision(object, old, errs),
        ("batch", "Job") => {
            batch::job(object, old.is_none(), errs);
            if let Some(old) = old {
                batch::job_update(object, old, errs);
            }
        }
        ("batch", "CronJob") => batch::cron_job(object, errs),
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => {
            rbac::role(object, kind == "Role", errs);
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            rbac::binding(object, kind == "RoleBinding", errs);
            if let Some(old) = old {
                rbac::binding_update(object, old, errs);
            }
        }
        ("discovery.k8s.io", "EndpointSlice") => discovery::endpoint_slice(object, old, errs),
        ("apiregistration.k8s.io", "APIService") => apiservice::api_service(object, errs),
        _ => others::validate(group, kind, object, old, errs),
    }
}

#[cfg(test)]
mod tests;
