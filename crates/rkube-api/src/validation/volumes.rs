//! Pod volumes: `ValidateVolumes` and the fields of the sources users write most.

use std::collections::BTreeSet;

use serde_json::Value;

use super::field::{Path, get, int_at, list_at, str_at};
use super::names::is_dns1123_label;
use crate::error::FieldError;

/// The volume sources a volume may have exactly one of.
const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

/// `ValidateVolumes`: names, exactly one source each, and the common sources' fields.
/// Returns the names, for volume mounts to refer to.
pub(super) fn volumes(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, volume) in list_at(spec, "volumes").iter().enumerate() {
        let p = path.index(i);
        let name = str_at(volume, "name");
        if name.is_empty() {
            errs.push(FieldError::required(p.child("name"), ""));
        } else {
            for msg in is_dns1123_label(name) {
                errs.push(FieldError::invalid(p.child("name"), name, &msg));
            }
            if !names.insert(name.to_owned()) {
                errs.push(FieldError::duplicate(p.child("name"), name));
            }
        }
        let sources: Vec<&str> = VOLUME_SOURCES
            .iter()
            .copied()
            .filter(|s| get(volume, s).is_some())
            .collect();
        if sources.is_empty() {
            errs.push(FieldError::required(&p, "must specify a volume type"));
        }
        for extra in sources.iter().skip(1) {
            errs.push(FieldError::forbidden(
                p.child(extra),
                "may not specify more than 1 volume type",
            ));
        }
        volume_source(volume, &p, errs);
    }
    names
}

/// The fields of the sources users write most.
fn volume_source(volume: &Value, p: &Path, errs: &mut Vec<FieldError>) {
    for (source, required) in [
        ("configMap", "name"),
        ("secret", "secretName"),
        ("hostPath", "path"),
        ("persistentVolumeClaim", "claimName"),
        ("nfs", "server"),
        ("csi", "driver"),
    ] {
        let Some(src) = get(volume, source) else {
            continue;
        };
        let sp = p.child(source);
        if str_at(src, required).is_empty() && !(source == "secret" || source == "configMap") {
            errs.push(FieldError::required(sp.child(required), ""));
        }
        if source == "secret" && str_at(src, "secretName").is_empty() {
            errs.push(FieldError::required(sp.child("secretName"), ""));
        }
        if let Some(mode) = int_at(src, "defaultMode")
            && !(0..=0o777).contains(&mode)
        {
            errs.push(FieldError::invalid(
                sp.child("defaultMode"),
                mode,
                "must be a number between 0 and 0777 (octal), both inclusive",
            ));
        }
        for (j, item) in list_at(src, "items").iter().enumerate() {
            let items_path = sp.child("items");
            let ip = items_path.index(j);
            if str_at(item, "key").is_empty() {
                errs.push(FieldError::required(ip.child("key"), ""));
            }
            item_path(str_at(item, "path"), &ip.child("path"), errs);
        }
    }
    if let Some(host_path) = get(volume, "hostPath") {
        let kind = str_at(host_path, "type");
        let kinds = [
            "",
            "DirectoryOrCreate",
            "Directory",
            "FileOrCreate",
            "File",
            "Socket",
            "CharDevice",
            "BlockDevice",
        ];
        if !kinds.contains(&kind) {
            errs.push(FieldError::not_supported(
                p.child("hostPath").child("type"),
                kind,
                &kinds,
            ));
        }
    }
}

/// `validateLocalDescendingPath` for a key projected into a volume.
fn item_path(path_value: &str, path: &Path, errs: &mut Vec<FieldError>) {
    if path_value.is_empty() {
        errs.push(FieldError::required(path, ""));
        return;
    }
    if path_value.starts_with('/') {
        errs.push(FieldError::invalid(
            path,
            path_value,
            "must be a relative path",
        ));
    }
    if path_value.split('/').any(|part| part == "..") {
        errs.push(FieldError::invalid(
            path,
            path_value,
            "must not contain '..'",
        ));
    } else if path_value.starts_with("..") {
        errs.push(FieldError::invalid(
            path,
            path_value,
            "must not start with '..'",
        ));
    }
}
