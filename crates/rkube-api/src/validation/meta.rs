//! `metadata`: name rules per kind, generateName, namespace, labels, annotations, owner
//! references and finalizers on create, and what may not change on update.

use serde_json::Value;

use super::field::{self, IMMUTABLE, Path, get, int_at, list_at, str_at};
use super::names::{is_dns1035_label, is_dns1123_label, is_dns1123_subdomain};
use crate::error::FieldError;

/// How a kind's names are checked (upstream's `ValidateNameFunc`s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NameRule {
    /// `NameIsDNSSubdomain`: most kinds.
    Subdomain,
    /// `NameIsDNSLabel`: namespaces, stateful sets.
    Label,
    /// `NameIsDNS1035Label`: services, whose names become DNS names and env variables.
    Dns1035Label,
    /// `IsValidPathSegmentName`: RBAC kinds, whose names may hold ':' (`system:admin`).
    PathSegment,
}

/// `IsValidPathSegmentName`.
fn path_segment_errors(name: &str) -> Vec<String> {
    let mut errors = Vec::new();
    for bad in [".", ".."] {
        if name == bad {
            errors.push(format!("may not be '{bad}'"));
        }
    }
    for bad in ["/", "%"] {
        if name.contains(bad) {
            errors.push(format!("may not contain '{bad}'"));
        }
    }
    errors
}

impl NameRule {
    /// The problems with `name`; a generateName `prefix` may end in '-'.
    pub(super) fn check(self, name: &str, prefix: bool) -> Vec<String> {
        // Upstream masks a prefix's trailing dash so that the prefix is judged as the start
        // of a name, not as a whole one.
        let masked;
        let name = if prefix && self != Self::PathSegment && name.len() > 1 && name.ends_with('-') {
            masked = format!("{}a", &name[..name.len() - 1]);
            masked.as_str()
        } else {
            name
        };
        match self {
            Self::Subdomain => is_dns1123_subdomain(name),
            Self::Label => is_dns1123_label(name),
            Self::Dns1035Label => is_dns1035_label(name),
            Self::PathSegment => path_segment_errors(name),
        }
    }
}

/// `ValidateObjectMeta`: the object's metadata on create.
pub(super) fn validate_create(
    object: &Value,
    namespaced: bool,
    rule: NameRule,
    errs: &mut Vec<FieldError>,
) {
    let path = Path::new("metadata");
    let meta = get(object, "metadata").unwrap_or(&Value::Null);
    let generate_name = str_at(meta, "generateName");
    if !generate_name.is_empty() {
        for msg in rule.check(generate_name, true) {
            errs.push(FieldError::invalid(
                path.child("generateName"),
                generate_name,
                &msg,
            ));
        }
    }
    let name = str_at(meta, "name");
    if name.is_empty() {
        errs.push(FieldError::required(
            path.child("name"),
            "name or generateName is required",
        ));
    } else {
        for msg in rule.check(name, false) {
            errs.push(FieldError::invalid(path.child("name"), name, &msg));
        }
    }
    let namespace = str_at(meta, "namespace");
    if namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required(path.child("namespace"), ""));
        } else {
            for msg in is_dns1123_label(namespace) {
                errs.push(FieldError::invalid(
                    path.child("namespace"),
                    namespace,
                    &msg,
                ));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(
            path.child("namespace"),
            "not allowed on this type",
        ));
    }
    field::nonnegative(int_at(meta, "generation"), &path.child("generation"), errs);
    common(meta, &path, errs);
}

/// The checks create and update share.
fn common(meta: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    field::labels(get(meta, "labels"), &path.child("labels"), errs);
    field::annotations(get(meta, "annotations"), &path.child("annotations"), errs);
    owner_references(meta, &path.child("ownerReferences"), errs);
    finalizers(meta, &path.child("finalizers"), errs);
}

fn owner_references(meta: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let mut first_controller: Option<String> = None;
    let refs = list_at(meta, "ownerReferences");
    for owner in refs {
        let api_version = str_at(owner, "apiVersion");
        let version = api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() {
            errs.push(FieldError::invalid(
                path.child("apiVersion"),
                api_version,
                "version must not be empty",
            ));
        }
        for key in ["kind", "name", "uid"] {
            let value = str_at(owner, key);
            if value.is_empty() {
                errs.push(FieldError::invalid(
                    path.child(key),
                    value,
                    "must not be empty",
                ));
            }
        }
        if api_version == "v1" && str_at(owner, "kind") == "Event" {
            errs.push(FieldError::invalid(
                path,
                owner.clone(),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if field::bool_at(owner, "controller") == Some(true) {
            let current = format!("{}/{}", str_at(owner, "kind"), str_at(owner, "name"));
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid(
                    path,
                    Value::Array(refs.to_vec()),
                    &format!(
                        "Only one reference can have Controller set to true. Found \"true\" in \
                         references for {first} and {current}"
                    ),
                )),
                None => first_controller = Some(current),
            }
        }
    }
}

fn finalizers(meta: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let names: Vec<&str> = list_at(meta, "finalizers")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for name in &names {
        super::core::finalizer_name(name, path, errs);
    }
    if names.contains(&"orphan") && names.contains(&"foregroundDeletion") {
        errs.push(FieldError::invalid(
            path,
            Value::from(names.clone()),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
}

/// `ValidateObjectMetaUpdate`: identity and timestamps may not change, a resource version
/// is required, finalizers may not be added while deleting.
///
/// Upstream fills an unconditional update's resource version from the stored object before
/// validating; the caller does the same.
pub(super) fn validate_update(object: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let path = Path::new("metadata");
    let meta = get(object, "metadata").unwrap_or(&Value::Null);
    let old_meta = get(old, "metadata").unwrap_or(&Value::Null);
    if get(old_meta, "deletionTimestamp").is_some() {
        let old_finalizers = list_at(old_meta, "finalizers");
        let mut extra: Vec<&str> = list_at(meta, "finalizers")
            .iter()
            .filter(|f| !old_finalizers.contains(f))
            .filter_map(Value::as_str)
            .collect();
        extra.sort_unstable();
        extra.dedup();
        if !extra.is_empty() {
            let quoted: Vec<String> = extra.iter().map(|f| format!("{f:?}")).collect();
            errs.push(FieldError::forbidden(
                path.child("finalizers"),
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new \
                     finalizers []string{{{}}}",
                    quoted.join(", ")
                ),
            ));
        }
    }
    let resource_version = str_at(meta, "resourceVersion");
    if resource_version.is_empty() {
        errs.push(FieldError::invalid(
            path.child("resourceVersion"),
            resource_version,
            "must be specified for an update",
        ));
    }
    let generation = int_at(meta, "generation").unwrap_or(0);
    if generation < int_at(old_meta, "generation").unwrap_or(0) {
        errs.push(FieldError::invalid(
            path.child("generation"),
            generation,
            "must not be decremented",
        ));
    }
    for key in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        let new_value = get(meta, key).filter(|v| v.as_str() != Some(""));
        let old_value = get(old_meta, key).filter(|v| v.as_str() != Some(""));
        if new_value != old_value {
            errs.push(FieldError::invalid(
                path.child(key),
                new_value.cloned().unwrap_or(Value::from("")),
                IMMUTABLE,
            ));
        }
    }
    common(meta, &path, errs);
}
