//! Core kinds other than pods and services: ConfigMap, Secret, Namespace, Node,
//! PersistentVolume and PersistentVolumeClaim.

use std::collections::BTreeSet;

use serde_json::Value;

use super::field::{self, Path, bool_at, get, list_at, map_at, str_at};
use super::names::{is_dns1123_subdomain, is_qualified_name, is_valid_label_value};
use crate::error::{FieldError, FieldErrorKind};

/// The most data a ConfigMap or Secret may hold.
const MAX_DATA_SIZE: usize = 1024 * 1024;
const IMMUTABLE_WHEN_SET: &str = "field is immutable when `immutable` is set";
const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

/// `IsConfigMapKey`: what keys of ConfigMaps and Secrets must be.
pub(super) fn config_key_errors(key: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if key.len() > 253 {
        errors.push("must be no more than 253 characters".to_owned());
    }
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !ok {
        errors.push(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. \
             'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is \
             '[-._a-zA-Z0-9]+')"
                .to_owned(),
        );
    }
    if key == "." {
        errors.push("must not be '.'".to_owned());
    } else if key == ".." {
        errors.push("must not be '..'".to_owned());
    } else if key.starts_with("..") {
        errors.push("must not start with '..'".to_owned());
    }
    errors
}

/// The decoded length of a base64 value, as Go counts `[]byte` data.
fn decoded_len(value: &Value) -> usize {
    let s = value.as_str().unwrap_or("");
    let padding = s.chars().rev().take_while(|c| *c == '=').count();
    (s.len() / 4 * 3).saturating_sub(padding)
}

/// `ValidateConfigMap`.
pub(super) fn config_map(object: &Value, errs: &mut Vec<FieldError>) {
    let data = map_at(object, "data");
    let binary = map_at(object, "binaryData");
    let mut total = 0;
    for (key, value) in data.into_iter().flatten() {
        let data_path = Path::new("data");
        let p = data_path.key(key);
        for msg in config_key_errors(key) {
            errs.push(FieldError::invalid(&p, key.as_str(), &msg));
        }
        if binary.is_some_and(|b| b.contains_key(key)) {
            errs.push(FieldError::invalid(
                &p,
                key.as_str(),
                "duplicate of key present in binaryData",
            ));
        }
        total += value.as_str().map_or(0, str::len);
    }
    for (key, value) in binary.into_iter().flatten() {
        let data_path = Path::new("binaryData");
        let p = data_path.key(key);
        for msg in config_key_errors(key) {
            errs.push(FieldError::invalid(&p, key.as_str(), &msg));
        }
        if data.is_some_and(|d| d.contains_key(key)) {
            errs.push(FieldError::invalid(
                &p,
                key.as_str(),
                "duplicate of key present in data",
            ));
        }
        total += decoded_len(value);
    }
    if total > MAX_DATA_SIZE {
        errs.push(FieldError::too_long(Path::default(), MAX_DATA_SIZE));
    }
}

/// Once `immutable` is true, it and the data stay as they are.
fn immutable_data(object: &Value, old: &Value, keys: &[&str], errs: &mut Vec<FieldError>) {
    if bool_at(old, "immutable") != Some(true) {
        return;
    }
    if bool_at(object, "immutable") != Some(true) {
        errs.push(FieldError::forbidden(
            Path::new("immutable"),
            IMMUTABLE_WHEN_SET,
        ));
    }
    for key in keys {
        let changed = map_at(object, key).filter(|m| !m.is_empty())
            != map_at(old, key).filter(|m| !m.is_empty());
        if changed {
            errs.push(FieldError::forbidden(Path::new(key), IMMUTABLE_WHEN_SET));
        }
    }
}

/// `ValidateConfigMapUpdate`'s own part.
pub(super) fn config_map_update(object: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    immutable_data(object, old, &["data", "binaryData"], errs);
}

/// `ValidateSecret`: keys, size, and what each well-known type requires.
pub(super) fn secret(object: &Value, errs: &mut Vec<FieldError>) {
    let data_path = Path::new("data");
    let data = map_at(object, "data");
    let mut total = 0;
    for (key, value) in data.into_iter().flatten() {
        for msg in config_key_errors(key) {
            errs.push(FieldError::invalid(data_path.key(key), key.as_str(), &msg));
        }
        total += decoded_len(value);
    }
    if total > MAX_DATA_SIZE {
        errs.push(FieldError::too_long(&data_path, MAX_DATA_SIZE));
    }
    let has = |key: &str| data.is_some_and(|d| d.contains_key(key));
    let required = |key: &str| FieldError::required(data_path.key(key), "");
    match str_at(object, "type") {
        "kubernetes.io/service-account-token" => {
            let name = field::dig(
                object,
                &[
                    "metadata",
                    "annotations",
                    "kubernetes.io/service-account.name",
                ],
            )
            .and_then(Value::as_str)
            .unwrap_or("");
            if name.is_empty() {
                errs.push(FieldError::required(
                    Path::new("metadata")
                        .child("annotations")
                        .key("kubernetes.io/service-account.name"),
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" if !has(".dockercfg") => errs.push(required(".dockercfg")),
        "kubernetes.io/dockerconfigjson" if !has(".dockerconfigjson") => {
            errs.push(required(".dockerconfigjson"));
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.push(required("username"));
            errs.push(required("password"));
        }
        "kubernetes.io/ssh-auth" => {
            let empty = data
                .and_then(|d| d.get("ssh-privatekey"))
                .and_then(Value::as_str)
                .is_none_or(str::is_empty);
            if empty {
                errs.push(required("ssh-privatekey"));
            }
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !has(key) {
                    errs.push(required(key));
                }
            }
        }
        _ => {}
    }
}

/// `ValidateSecretUpdate`'s own part: the type is fixed, and immutable data stays.
pub(super) fn secret_update(object: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    field::immutable(
        get(object, "type"),
        get(old, "type"),
        &Path::new("type"),
        errs,
    );
    immutable_data(object, old, &["data"], errs);
}

/// The finalizers upstream knows without a domain prefix.
const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];

/// `validateFinalizerName`: a qualified name, and either standard or domain-prefixed.
pub(super) fn finalizer_name(name: &str, path: &Path, errs: &mut Vec<FieldError>) {
    for msg in is_qualified_name(name) {
        errs.push(FieldError::invalid(path, name, &msg));
    }
    if !name.contains('/') && !STANDARD_FINALIZERS.contains(&name) {
        errs.push(FieldError::invalid(
            path,
            name,
            "name is neither a standard finalizer name nor is it fully qualified",
        ));
    }
}

/// `ValidateNamespace`: its spec's finalizers.
pub(super) fn namespace(object: &Value, errs: &mut Vec<FieldError>) {
    let spec_path = Path::new("spec");
    let path = spec_path.child("finalizers");
    let spec = get(object, "spec").unwrap_or(&Value::Null);
    for name in list_at(spec, "finalizers").iter().filter_map(Value::as_str) {
        finalizer_name(name, &path, errs);
    }
}

/// `ValidateNode`: taints.
pub(super) fn node(object: &Value, errs: &mut Vec<FieldError>) {
    let spec = get(object, "spec").unwrap_or(&Value::Null);
    let spec_path = Path::new("spec");
    let path = spec_path.child("taints");
    let mut seen = BTreeSet::new();
    for (i, taint) in list_at(spec, "taints").iter().enumerate() {
        let p = path.index(i);
        let key = str_at(taint, "key");
        for msg in is_qualified_name(key) {
            errs.push(FieldError::invalid(p.child("key"), key, &msg));
        }
        let value = str_at(taint, "value");
        let value_errors = is_valid_label_value(value);
        if !value_errors.is_empty() {
            errs.push(FieldError::invalid(
                p.child("value"),
                value,
                &value_errors.join(";"),
            ));
        }
        let effect = str_at(taint, "effect");
        field::one_of(
            effect,
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            &p.child("effect"),
            errs,
        );
        if !seen.insert((effect, key)) {
            errs.push(FieldError {
                field: p.into(),
                kind: FieldErrorKind::Duplicate,
                value: Some(taint.clone()),
                detail: "taints must be unique by key and effect pair".to_owned(),
            });
        }
    }
}

/// `ValidateNodeUpdate`'s own part: pod CIDRs and provider ID are set once.
pub(super) fn node_update(object: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let spec = get(object, "spec").unwrap_or(&Value::Null);
    let old_spec = get(old, "spec").unwrap_or(&Value::Null);
    let old_cidrs = list_at(old_spec, "podCIDRs");
    if !old_cidrs.is_empty() && list_at(spec, "podCIDRs") != old_cidrs {
        errs.push(FieldError::forbidden(
            Path::new("spec").child("podCIDRs"),
            "node updates may not change podCIDR except from \"\" to valid",
        ));
    }
    let old_provider = str_at(old_spec, "providerID");
    if !old_provider.is_empty() && str_at(spec, "providerID") != old_provider {
        errs.push(FieldError::forbidden(
            Path::new("spec").child("providerID"),
            "node updates may not change providerID except from \"\" to valid",
        ));
    }
}

fn access_modes(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let modes = list_at(spec, "accessModes");
    let p = path.child("accessModes");
    if modes.is_empty() {
        errs.push(FieldError::required(
            &p,
            "at least 1 access mode is required",
        ));
    }
    for mode in modes {
        let mode = mode.as_str().unwrap_or("");
        if !ACCESS_MODES.contains(&mode) {
            errs.push(FieldError::not_supported(&p, mode, ACCESS_MODES));
        }
    }
    let once_pod = modes.iter().any(|m| m.as_str() == Some("ReadWriteOncePod"));
    if once_pod && modes.len() > 1 {
        errs.push(FieldError::forbidden(
            &p,
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
    if let Some(mode) = get(spec, "volumeMode").and_then(Value::as_str)
        && !["Block", "Filesystem"].contains(&mode)
    {
        errs.push(FieldError::not_supported(
            path.child("volumeMode"),
            mode,
            &["Block", "Filesystem"],
        ));
    }
}

/// `ValidatePersistentVolumeClaimSpec`.
pub(super) fn claim_spec(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    access_modes(spec, path, errs);
    if let Some(selector) = get(spec, "selector") {
        field::label_selector(selector, &path.child("selector"), errs);
    }
    let storage = field::dig(spec, &["resources", "requests", "storage"]);
    if storage.is_none() {
        errs.push(FieldError::required(
            path.child("resources").key("storage"),
            "",
        ));
    }
    let class = str_at(spec, "storageClassName");
    if !class.is_empty() {
        for msg in is_dns1123_subdomain(class) {
            errs.push(FieldError::invalid(
                path.child("storageClassName"),
                class,
                &msg,
            ));
        }
    }
}

/// `ValidatePersistentVolumeClaimUpdate`: a claim's spec is fixed, except that a volume may
/// be bound once and a bound claim may ask for more storage.
pub(super) fn claim_update(object: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let mut spec = get(object, "spec").cloned().unwrap_or(Value::Null);
    let mut old_spec = get(old, "spec").cloned().unwrap_or(Value::Null);
    if str_at(&old_spec, "volumeName").is_empty()
        && let (Some(o), Some(name)) = (old_spec.as_object_mut(), get(&spec, "volumeName"))
    {
        o.insert("volumeName".to_owned(), name.clone());
    }
    let bound = field::dig(object, &["status", "phase"]).and_then(Value::as_str) == Some("Bound");
    for s in [&mut spec, &mut old_spec] {
        if let Some(m) = s.as_object_mut() {
            m.remove("volumeAttributesClassName");
            if bound
                && let Some(requests) = m
                    .get_mut("resources")
                    .and_then(|r| r.get_mut("requests"))
                    .and_then(Value::as_object_mut)
            {
                requests.remove("storage");
            }
        }
    }
    if spec != old_spec {
        errs.push(FieldError::forbidden(
            Path::new("spec"),
            "spec is immutable after creation except resources.requests and \
             volumeAttributesClassName for bound claims",
        ));
    }
}

/// The sources a PersistentVolume may have exactly one of.
const PV_SOURCES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "glusterfs",
    "nfs",
    "rbd",
    "quobyte",
    "cinder",
    "cephfs",
    "fc",
    "flocker",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "local",
    "storageos",
    "csi",
    "iscsi",
];

/// `ValidatePersistentVolumeUpdate`, in part: the volume source and mode are fixed.
pub(super) fn persistent_volume_update(object: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let spec = get(object, "spec").unwrap_or(&Value::Null);
    let old_spec = get(old, "spec").unwrap_or(&Value::Null);
    let source_changed = PV_SOURCES
        .iter()
        .any(|source| get(spec, source) != get(old_spec, source));
    if source_changed {
        errs.push(FieldError::forbidden(
            Path::new("spec").child("persistentvolumesource"),
            "spec.persistentvolumesource is immutable after creation",
        ));
    }
    field::immutable(
        get(spec, "volumeMode"),
        get(old_spec, "volumeMode"),
        &Path::new("volumeMode"),
        errs,
    );
}

/// `ValidatePersistentVolumeSpec`, in part.
pub(super) fn persistent_volume(object: &Value, errs: &mut Vec<FieldError>) {
    let spec = get(object, "spec").unwrap_or(&Value::Null);
    let path = Path::new("spec");
    access_modes(spec, &path, errs);
    match map_at(spec, "capacity") {
        None => errs.push(FieldError::required(path.child("capacity"), "")),
        Some(capacity) if !capacity.contains_key("storage") || capacity.len() > 1 => {
            errs.push(FieldError::not_supported(
                path.child("capacity"),
                Value::Object(capacity.clone()),
                &["storage"],
            ));
        }
        Some(_) => {}
    }
    let policy = str_at(spec, "persistentVolumeReclaimPolicy");
    if !policy.is_empty() && !["Delete", "Recycle", "Retain"].contains(&policy) {
        errs.push(FieldError::not_supported(
            path.child("persistentVolumeReclaimPolicy"),
            policy,
            &["Delete", "Recycle", "Retain"],
        ));
    }
    let sources: Vec<&str> = PV_SOURCES
        .iter()
        .copied()
        .filter(|s| get(spec, s).is_some())
        .collect();
    if sources.is_empty() {
        errs.push(FieldError::required(&path, "must specify a volume type"));
    }
    for extra in sources.iter().skip(1) {
        errs.push(FieldError::forbidden(
            path.child(extra),
            "may not specify more than 1 volume type",
        ));
    }
}
