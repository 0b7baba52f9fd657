//! RBAC: roles' rules and bindings' role references and subjects.

use serde_json::{Value, json};

use super::field::{Path, get, list_at, str_at};
use super::meta::NameRule;
use super::names::is_dns1123_subdomain;
use crate::error::FieldError;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// `ValidateRole` / `ValidateClusterRole`: each rule names verbs, and either resources (with
/// their groups) or, cluster-wide only, non-resource URLs.
pub(super) fn role(object: &Value, namespaced: bool, errs: &mut Vec<FieldError>) {
    let path = Path::new("rules");
    for (i, rule) in list_at(object, "rules").iter().enumerate() {
        let p = path.index(i);
        if list_at(rule, "verbs").is_empty() {
            errs.push(FieldError::required(
                p.child("verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = list_at(rule, "nonResourceURLs");
        if !urls.is_empty() {
            let urls_value = Value::Array(urls.to_vec());
            if namespaced {
                errs.push(FieldError::invalid(
                    p.child("nonResourceURLs"),
                    urls_value.clone(),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            let has_resources = ["apiGroups", "resources", "resourceNames"]
                .iter()
                .any(|k| !list_at(rule, k).is_empty());
            if has_resources {
                errs.push(FieldError::invalid(
                    p.child("nonResourceURLs"),
                    urls_value,
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if list_at(rule, "apiGroups").is_empty() {
            errs.push(FieldError::required(
                p.child("apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if list_at(rule, "resources").is_empty() {
            errs.push(FieldError::required(
                p.child("resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
}

/// `ValidateRoleBinding` / `ValidateClusterRoleBinding`.
pub(super) fn binding(object: &Value, namespaced: bool, errs: &mut Vec<FieldError>) {
    let role_ref = get(object, "roleRef").unwrap_or(&Value::Null);
    let rp = Path::new("roleRef");
    let group = str_at(role_ref, "apiGroup");
    if group != RBAC_GROUP {
        errs.push(FieldError::not_supported(
            rp.child("apiGroup"),
            group,
            &[RBAC_GROUP],
        ));
    }
    let kind = str_at(role_ref, "kind");
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&kind) {
        errs.push(FieldError::not_supported(rp.child("kind"), kind, kinds));
    }
    let name = str_at(role_ref, "name");
    if name.is_empty() {
        errs.push(FieldError::required(rp.child("name"), ""));
    } else {
        for msg in NameRule::PathSegment.check(name, false) {
            errs.push(FieldError::invalid(rp.child("name"), name, &msg));
        }
    }
    let path = Path::new("subjects");
    for (i, subject) in list_at(object, "subjects").iter().enumerate() {
        self::subject(subject, namespaced, &path.index(i), errs);
    }
}

/// `ValidateRoleBindingSubject`.
fn subject(subject: &Value, namespaced: bool, p: &Path, errs: &mut Vec<FieldError>) {
    let name = str_at(subject, "name");
    if name.is_empty() {
        errs.push(FieldError::required(p.child("name"), ""));
    }
    let group = str_at(subject, "apiGroup");
    match str_at(subject, "kind") {
        "ServiceAccount" => {
            if !name.is_empty() {
                for msg in is_dns1123_subdomain(name) {
                    errs.push(FieldError::invalid(p.child("name"), name, &msg));
                }
            }
            if !group.is_empty() {
                errs.push(FieldError::not_supported(p.child("apiGroup"), group, &[""]));
            }
            if !namespaced && str_at(subject, "namespace").is_empty() {
                errs.push(FieldError::required(p.child("namespace"), ""));
            }
        }
        "User" | "Group" => {
            if group != RBAC_GROUP {
                errs.push(FieldError::not_supported(
                    p.child("apiGroup"),
                    group,
                    &[RBAC_GROUP],
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            p.child("kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
}

/// A binding's role may not change: delete and recreate it instead.
pub(super) fn binding_update(object: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let new_ref = get(object, "roleRef");
    if new_ref != get(old, "roleRef") {
        errs.push(FieldError::invalid(
            Path::new("roleRef"),
            new_ref.cloned().unwrap_or(json!({})),
            "cannot change roleRef",
        ));
    }
}
