//! Pods and pod templates: `ValidatePodSpec` and what it checks in containers, ports, env,
//! probes, volumes and tolerations, and `ValidatePodUpdate`'s rule that little of a running
//! pod's spec may change.

use std::collections::BTreeSet;

use serde_json::Value;

use super::field::{self, Path, get, int_at, list_at, str_at};
use super::names::{
    is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_label_value,
};
use super::{affinity, quantity, security, volumes};
use crate::error::FieldError;

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const MESSAGE_POLICIES: &[&str] = &["File", "FallbackToLogsOnError"];
/// Sorted, as upstream lists them.
pub(super) const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// What `pod updates may not change fields other than …` lists.
const UPDATABLE_POD_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,\
`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),\
`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// A Pod on create: its spec, and no ephemeral containers yet.
pub(super) fn validate_pod(pod: &Value, errs: &mut Vec<FieldError>) {
    let path = Path::new("spec");
    let spec = get(pod, "spec").unwrap_or(&Value::Null);
    pod_spec(spec, &path, errs);
    images_trimmed(spec, &path, errs);
    if !list_at(spec, "ephemeralContainers").is_empty() {
        errs.push(FieldError::forbidden(
            path.child("ephemeralContainers"),
            "cannot be set on create",
        ));
    }
}

/// `validateContainersOnlyForPod`: a Pod's images have no surrounding whitespace (templates
/// are spared, for compatibility).
fn images_trimmed(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    for list in ["initContainers", "containers"] {
        for (i, c) in list_at(spec, list).iter().enumerate() {
            let image = str_at(c, "image");
            if image.trim() != image {
                errs.push(FieldError::invalid(
                    path.child(list).index(i).child("image"),
                    image,
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
}

/// `ValidatePodTemplateSpec`: the template's labels and annotations, and its spec.
pub(super) fn template(template: Option<&Value>, path: &Path, errs: &mut Vec<FieldError>) {
    let Some(template) = template else {
        errs.push(FieldError::required(path, ""));
        return;
    };
    // Upstream reports template labels at `<template>.labels`, without `metadata`.
    let meta = get(template, "metadata").unwrap_or(&Value::Null);
    field::labels(get(meta, "labels"), &path.child("labels"), errs);
    field::annotations(get(meta, "annotations"), &path.child("annotations"), errs);
    let spec = get(template, "spec").unwrap_or(&Value::Null);
    pod_spec(spec, &path.child("spec"), errs);
}

/// `ValidatePodSpec`.
pub(super) fn pod_spec(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let volume_names = volumes::volumes(spec, &path.child("volumes"), errs);
    let mut all_names = BTreeSet::new();
    let containers_path = path.child("containers");
    let containers = list_at(spec, "containers");
    if containers.is_empty() {
        errs.push(FieldError::required(&containers_path, ""));
    }
    for (i, c) in containers.iter().enumerate() {
        let p = containers_path.index(i);
        container(c, &p, &volume_names, errs);
        unique_name(c, &p, &mut all_names, errs);
        if str_at(c, "image").is_empty() {
            errs.push(FieldError::required(p.child("image"), ""));
        }
        if get(c, "restartPolicy").is_some() {
            errs.push(FieldError::forbidden(
                p.child("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
        for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
            if let Some(probe_value) = get(c, probe) {
                self::probe(probe_value, probe, &p.child(probe), errs);
            }
        }
        lifecycle(c, &p, errs);
    }
    host_port_conflicts(containers, &containers_path, errs);
    let init_path = path.child("initContainers");
    for (i, c) in list_at(spec, "initContainers").iter().enumerate() {
        let p = init_path.index(i);
        container(c, &p, &volume_names, errs);
        unique_name(c, &p, &mut all_names, errs);
        if str_at(c, "image").is_empty() {
            errs.push(FieldError::required(p.child("image"), ""));
        }
        let restart = str_at(c, "restartPolicy");
        let sidecar = restart == "Always";
        if !restart.is_empty() && !sidecar {
            errs.push(FieldError::not_supported(
                p.child("restartPolicy"),
                restart,
                &["Always"],
            ));
        }
        for probe in [
            "livenessProbe",
            "readinessProbe",
            "startupProbe",
            "lifecycle",
        ] {
            if get(c, probe).is_some() && !sidecar {
                errs.push(FieldError::forbidden(
                    p.child(probe),
                    "may not be set for init containers without restartPolicy=Always",
                ));
            } else if let Some(probe_value) = get(c, probe).filter(|_| probe != "lifecycle") {
                self::probe(probe_value, probe, &p.child(probe), errs);
            }
        }
    }
    let restart_policy = str_at(spec, "restartPolicy");
    field::one_of(
        restart_policy,
        RESTART_POLICIES,
        &path.child("restartPolicy"),
        errs,
    );
    let dns_policy = str_at(spec, "dnsPolicy");
    field::one_of(dns_policy, DNS_POLICIES, &path.child("dnsPolicy"), errs);
    if dns_policy == "None" && get(spec, "dnsConfig").is_none() {
        errs.push(FieldError::required(
            path.child("dnsConfig"),
            "must provide `dnsConfig` when `dnsPolicy` is None",
        ));
    }
    field::labels(get(spec, "nodeSelector"), &path.child("nodeSelector"), errs);
    security::pod(spec, path, errs);
    for (key, check) in [
        (
            "serviceAccountName",
            is_dns1123_subdomain as fn(&str) -> Vec<String>,
        ),
        ("nodeName", is_dns1123_subdomain),
        ("hostname", is_dns1123_label),
        ("subdomain", is_dns1123_label),
    ] {
        let value = str_at(spec, key);
        if !value.is_empty() {
            for msg in check(value) {
                errs.push(FieldError::invalid(path.child(key), value, &msg));
            }
        }
    }
    if let Some(deadline) = int_at(spec, "activeDeadlineSeconds")
        && !(1..=i64::from(i32::MAX)).contains(&deadline)
    {
        errs.push(FieldError::invalid(
            path.child("activeDeadlineSeconds"),
            deadline,
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    tolerations(spec, &path.child("tolerations"), errs);
    affinity::affinity(spec, path, errs);
    affinity::topology_spread(spec, path, errs);
    let pull_secrets = path.child("imagePullSecrets");
    for (i, secret) in list_at(spec, "imagePullSecrets").iter().enumerate() {
        if str_at(secret, "name").is_empty() {
            errs.push(FieldError::required(
                pull_secrets.index(i).child("name"),
                "",
            ));
        }
    }
}

/// `AccumulateUniqueHostPorts`: one host port per address and protocol among the
/// containers of a list.
fn host_port_conflicts(containers: &[Value], path: &Path, errs: &mut Vec<FieldError>) {
    let mut seen = BTreeSet::new();
    for (i, c) in containers.iter().enumerate() {
        for (j, port) in list_at(c, "ports").iter().enumerate() {
            let host_port = int_at(port, "hostPort").unwrap_or(0);
            if host_port == 0 {
                continue;
            }
            let key = format!(
                "{}/{}/{host_port}",
                str_at(port, "hostIP"),
                str_at(port, "protocol")
            );
            if seen.contains(&key) {
                errs.push(FieldError::duplicate(
                    path.index(i).child("ports").index(j).child("hostPort"),
                    key,
                ));
            } else {
                seen.insert(key);
            }
        }
    }
}

/// Names are unique across regular, init and ephemeral containers.
fn unique_name(c: &Value, p: &Path, seen: &mut BTreeSet<String>, errs: &mut Vec<FieldError>) {
    let name = str_at(c, "name");
    if name.is_empty() {
        return;
    }
    if !seen.insert(name.to_owned()) {
        errs.push(FieldError::duplicate(p.child("name"), name));
    }
}

/// `validateContainerCommon`: what every kind of container must satisfy.
fn container(c: &Value, p: &Path, volumes: &BTreeSet<String>, errs: &mut Vec<FieldError>) {
    let name = str_at(c, "name");
    if name.is_empty() {
        errs.push(FieldError::required(p.child("name"), ""));
    } else {
        for msg in is_dns1123_label(name) {
            errs.push(FieldError::invalid(p.child("name"), name, &msg));
        }
    }
    ports(c, &p.child("ports"), errs);
    env(c, &p.child("env"), errs);
    security::container(c, p, errs);
    resources(c, &p.child("resources"), errs);
    volume_mounts(c, &p.child("volumeMounts"), volumes, errs);
    field::one_of(
        str_at(c, "imagePullPolicy"),
        PULL_POLICIES,
        &p.child("imagePullPolicy"),
        errs,
    );
    field::one_of(
        str_at(c, "terminationMessagePolicy"),
        MESSAGE_POLICIES,
        &p.child("terminationMessagePolicy"),
        errs,
    );
}

/// The resources a container may name without a domain.
const STANDARD_CONTAINER_RESOURCES: &[&str] = &["cpu", "memory", "ephemeral-storage"];

/// `validateContainerResourceName`: a standard resource, a huge page size, or an extended
/// resource (`example.com/gpu`).
fn resource_name(name: &str, path: &Path, errs: &mut Vec<FieldError>) {
    for msg in is_qualified_name(name) {
        errs.push(FieldError::invalid(path, name, &msg));
    }
    if !name.contains('/') {
        if !STANDARD_CONTAINER_RESOURCES.contains(&name) && !name.starts_with("hugepages-") {
            errs.push(FieldError::invalid(
                path,
                name,
                "must be a standard resource for containers",
            ));
        }
    } else if !name.contains("kubernetes.io/")
        && (name.starts_with("requests.")
            || !is_qualified_name(&format!("requests.{name}")).is_empty())
    {
        errs.push(FieldError::invalid(
            path,
            name,
            "doesn't follow extended resource name standard",
        ));
    }
}

/// Whether a request may be lower than its limit: native resources other than huge pages.
fn overcommit_allowed(name: &str) -> bool {
    let native = !name.contains('/') || name.contains("kubernetes.io/");
    native && !name.starts_with("hugepages-")
}

/// `ValidateResourceRequirements`: amounts are non-negative, and requests do not exceed
/// limits (or, where overcommit is not allowed, equal them).
fn resources(c: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    fn text(v: &Value) -> &str {
        v.as_str().unwrap_or("")
    }
    let Some(resources) = get(c, "resources") else {
        return;
    };
    // Read in place: JSON maps iterate in key order, as Go's sorted output has them, and a
    // value that is not a string reads as "" (as `field::string_map` reads it).
    let none = serde_json::Map::new();
    let limits = field::map_at(resources, "limits").unwrap_or(&none);
    let requests = field::map_at(resources, "requests").unwrap_or(&none);
    for (kind, map) in [("limits", limits), ("requests", requests)] {
        for (name, amount) in map {
            let amount = text(amount);
            resource_name(name, &path.child(kind).key(name), errs);
            if quantity::parse(amount).is_some_and(|v| v < 0.0) {
                errs.push(FieldError::invalid(
                    path.child(kind).key(name),
                    amount,
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
    for (name, request) in requests {
        let request = text(request);
        let Some(limit) = limits.get(name).map(text) else {
            if !overcommit_allowed(name) {
                errs.push(FieldError::required(
                    path.child("limits"),
                    "Limit must be set for non overcommitable resources",
                ));
            }
            continue;
        };
        let (Some(r), Some(l)) = (quantity::parse(request), quantity::parse(limit)) else {
            continue;
        };
        if r != l && !overcommit_allowed(name) {
            errs.push(FieldError::invalid(
                path.child("requests"),
                request,
                &format!("must be equal to {name} limit of {limit}"),
            ));
        } else if r > l {
            errs.push(FieldError::invalid(
                path.child("requests"),
                request,
                &format!("must be less than or equal to {name} limit of {limit}"),
            ));
        }
    }
}

/// `validateContainerPorts`.
fn ports(c: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let mut names = BTreeSet::new();
    for (i, port) in list_at(c, "ports").iter().enumerate() {
        let p = path.index(i);
        let name = str_at(port, "name");
        if !name.is_empty() {
            for msg in field::port_name_errors(name) {
                errs.push(FieldError::invalid(p.child("name"), name, msg));
            }
            if !names.insert(name) {
                errs.push(FieldError::duplicate(p.child("name"), name));
            }
        }
        match int_at(port, "containerPort") {
            None | Some(0) => errs.push(FieldError::required(p.child("containerPort"), "")),
            Some(n) => field::port_number(n, &p.child("containerPort"), errs),
        }
        if let Some(host_port) = int_at(port, "hostPort").filter(|n| *n != 0) {
            field::port_number(host_port, &p.child("hostPort"), errs);
        }
        field::one_of(
            str_at(port, "protocol"),
            PROTOCOLS,
            &p.child("protocol"),
            errs,
        );
    }
}

/// `ValidateEnv`: names (printable ASCII without '='), one source at most.
fn env(c: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    for (i, var) in list_at(c, "env").iter().enumerate() {
        let p = path.index(i);
        let name = str_at(var, "name");
        if name.is_empty() {
            errs.push(FieldError::required(p.child("name"), ""));
        } else if !name
            .chars()
            .all(|ch| (' '..='~').contains(&ch) && ch != '=')
        {
            errs.push(FieldError::invalid(
                p.child("name"),
                name,
                "a valid environment variable name must consist only of printable ASCII \
                 characters other than '='",
            ));
        }
        let Some(from) = get(var, "valueFrom") else {
            continue;
        };
        let from_path = p.child("valueFrom");
        let sources: Vec<&str> = [
            "fieldRef",
            "resourceFieldRef",
            "configMapKeyRef",
            "secretKeyRef",
        ]
        .into_iter()
        .filter(|s| get(from, s).is_some())
        .collect();
        let message = if sources.is_empty() {
            Some(
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or \
                 `secretKeyRef`",
            )
        } else if !str_at(var, "value").is_empty() {
            Some("may not be specified when `value` is not empty")
        } else if sources.len() > 1 {
            Some("may not have more than one field specified at a time")
        } else {
            None
        };
        if let Some(message) = message {
            errs.push(FieldError::invalid(&from_path, "", message));
        }
        if let Some(field_ref) = get(from, "fieldRef") {
            for key in ["apiVersion", "fieldPath"] {
                if str_at(field_ref, key).is_empty() {
                    errs.push(FieldError::required(
                        from_path.child("fieldRef").child(key),
                        "",
                    ));
                }
            }
        }
        for source in ["configMapKeyRef", "secretKeyRef"] {
            let Some(key_ref) = get(from, source) else {
                continue;
            };
            let sp = from_path.child(source);
            // Upstream checks the name as an object name, so an empty one is Invalid.
            let name = str_at(key_ref, "name");
            for msg in is_dns1123_subdomain(name) {
                errs.push(FieldError::invalid(sp.child("name"), name, &msg));
            }
            let key = str_at(key_ref, "key");
            if key.is_empty() {
                errs.push(FieldError::required(sp.child("key"), ""));
            } else {
                for msg in super::core::config_key_errors(key) {
                    errs.push(FieldError::invalid(sp.child("key"), key, &msg));
                }
            }
        }
    }
}

/// `ValidateVolumeMounts`: each names a volume and has a unique path.
fn volume_mounts(c: &Value, path: &Path, volumes: &BTreeSet<String>, errs: &mut Vec<FieldError>) {
    let mut mount_paths = BTreeSet::new();
    for (i, mount) in list_at(c, "volumeMounts").iter().enumerate() {
        let p = path.index(i);
        let name = str_at(mount, "name");
        if name.is_empty() {
            errs.push(FieldError::required(p.child("name"), ""));
        } else if !volumes.contains(name) {
            errs.push(FieldError {
                field: p.child("name").into(),
                kind: crate::error::FieldErrorKind::NotFound,
                value: Some(Value::from(name)),
                detail: String::new(),
            });
        }
        let mount_path = str_at(mount, "mountPath");
        if mount_path.is_empty() {
            errs.push(FieldError::required(p.child("mountPath"), ""));
        } else if !mount_paths.insert(mount_path) {
            errs.push(FieldError::invalid(
                p.child("mountPath"),
                mount_path,
                "must be unique",
            ));
        }
    }
}

/// `validateProbe` with its handler.
fn probe(probe: &Value, kind: &str, path: &Path, errs: &mut Vec<FieldError>) {
    handler(probe, path, errs);
    for key in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        field::nonnegative(int_at(probe, key), &path.child(key), errs);
    }
    if kind != "readinessProbe"
        && let Some(n) = int_at(probe, "successThreshold").filter(|n| *n != 1)
    {
        errs.push(FieldError::invalid(
            path.child("successThreshold"),
            n,
            "must be 1",
        ));
    }
    if kind == "readinessProbe" && get(probe, "terminationGracePeriodSeconds").is_some() {
        errs.push(FieldError::invalid(
            path.child("terminationGracePeriodSeconds"),
            get(probe, "terminationGracePeriodSeconds")
                .cloned()
                .unwrap_or(Value::Null),
            "must not be set for readinessProbes",
        ));
    }
}

/// Lifecycle hooks each need one handler.
fn lifecycle(c: &Value, p: &Path, errs: &mut Vec<FieldError>) {
    let Some(lifecycle) = get(c, "lifecycle") else {
        return;
    };
    for hook in ["postStart", "preStop"] {
        if let Some(h) = get(lifecycle, hook) {
            handler(h, &p.child("lifecycle").child(hook), errs);
        }
    }
}

/// Exactly one of exec, httpGet, tcpSocket, grpc (sleep for hooks), each well formed.
fn handler(handler: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let kinds: Vec<&str> = ["exec", "httpGet", "tcpSocket", "grpc", "sleep"]
        .into_iter()
        .filter(|k| get(handler, k).is_some())
        .collect();
    if kinds.is_empty() {
        errs.push(FieldError::required(path, "must specify a handler type"));
    }
    for extra in kinds.iter().skip(1) {
        errs.push(FieldError::forbidden(
            path.child(extra),
            "may not specify more than 1 handler type",
        ));
    }
    if let Some(exec) = get(handler, "exec")
        && list_at(exec, "command").is_empty()
    {
        errs.push(FieldError::required(
            path.child("exec").child("command"),
            "",
        ));
    }
    if let Some(http) = get(handler, "httpGet") {
        let p = path.child("httpGet");
        field::port_num_or_name(get(http, "port"), &p.child("port"), errs);
        let scheme = str_at(http, "scheme");
        if !scheme.is_empty() && !["HTTP", "HTTPS"].contains(&scheme) {
            errs.push(FieldError::not_supported(
                p.child("scheme"),
                scheme,
                &["HTTP", "HTTPS"],
            ));
        }
    }
    if let Some(tcp) = get(handler, "tcpSocket") {
        field::port_num_or_name(
            get(tcp, "port"),
            &path.child("tcpSocket").child("port"),
            errs,
        );
    }
    if let Some(grpc) = get(handler, "grpc") {
        let port = int_at(grpc, "port").unwrap_or(0);
        field::port_number(port, &path.child("grpc").child("port"), errs);
    }
}

/// `ValidateTolerations`.
fn tolerations(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    for (i, t) in list_at(spec, "tolerations").iter().enumerate() {
        let p = path.index(i);
        let key = str_at(t, "key");
        if !key.is_empty() {
            for msg in is_qualified_name(key) {
                errs.push(FieldError::invalid(p.child("key"), key, &msg));
            }
        }
        let operator = str_at(t, "operator");
        if key.is_empty() && operator != "Exists" {
            errs.push(FieldError::invalid(
                p.child("operator"),
                operator,
                "operator must be Exists when `key` is empty, which means \"match all values \
                 and all keys\"",
            ));
        }
        let effect = str_at(t, "effect");
        if get(t, "tolerationSeconds").is_some() && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                p.child("effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        let value = str_at(t, "value");
        match operator {
            "" | "Equal" => {
                for msg in is_valid_label_value(value) {
                    errs.push(FieldError::invalid(p.child("operator"), value, &msg));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(FieldError::invalid(
                        p.child("operator"),
                        t.clone(),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                p.child("operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !TAINT_EFFECTS.contains(&effect) {
            errs.push(FieldError::not_supported(
                p.child("effect"),
                effect,
                TAINT_EFFECTS,
            ));
        }
    }
}

/// `ValidatePodUpdate`: a running pod may change its images, shorten its deadline, add
/// tolerations, and fix a negative grace period; anything else in the spec is refused.
pub(super) fn validate_pod_update(pod: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let spec = get(pod, "spec").cloned().unwrap_or(Value::Null);
    let old_spec = get(old, "spec").cloned().unwrap_or(Value::Null);
    let path = Path::new("spec");
    pod_spec(&spec, &path, errs);
    images_trimmed(&spec, &path, errs);
    let old_deadline = int_at(&old_spec, "activeDeadlineSeconds");
    let new_deadline = int_at(&spec, "activeDeadlineSeconds");
    if let Some(old_deadline) = old_deadline {
        match new_deadline {
            None => errs.push(FieldError::invalid(
                path.child("activeDeadlineSeconds"),
                Value::Null,
                "must not update from a positive integer to nil value",
            )),
            Some(n) if n > old_deadline => errs.push(FieldError::invalid(
                path.child("activeDeadlineSeconds"),
                n,
                "must be less than or equal to previous value",
            )),
            Some(_) => {}
        }
    }
    let mut munged = spec.clone();
    if let Some(m) = munged.as_object_mut() {
        for list in ["containers", "initContainers"] {
            copy_images(m.get_mut(list), get(&old_spec, list));
        }
        restore(m, &old_spec, "activeDeadlineSeconds");
        // Ephemeral containers change through their own subresource, validated there.
        restore(m, &old_spec, "ephemeralContainers");
        let old_tolerations = list_at(&old_spec, "tolerations");
        let new_tolerations = list_at(&spec, "tolerations");
        if old_tolerations.iter().all(|t| new_tolerations.contains(t)) {
            restore(m, &old_spec, "tolerations");
        }
        let old_grace = int_at(&old_spec, "terminationGracePeriodSeconds");
        if old_grace.is_some_and(|g| g < 0)
            && int_at(&spec, "terminationGracePeriodSeconds") == Some(1)
        {
            restore(m, &old_spec, "terminationGracePeriodSeconds");
        }
        let old_gates = list_at(&old_spec, "schedulingGates");
        if list_at(&spec, "schedulingGates")
            .iter()
            .all(|g| old_gates.contains(g))
        {
            restore(m, &old_spec, "schedulingGates");
        }
    }
    if munged != old_spec {
        errs.push(FieldError::forbidden(
            &path,
            &format!("pod updates may not change fields other than {UPDATABLE_POD_FIELDS}"),
        ));
    }
}

/// Puts the old value of `key` (or its absence) back into the munged spec.
fn restore(m: &mut serde_json::Map<String, Value>, old_spec: &Value, key: &str) {
    match get(old_spec, key) {
        Some(v) => {
            m.insert(key.to_owned(), v.clone());
        }
        None => {
            m.remove(key);
        }
    }
}

/// Gives each new container the old one's image, so that only image changes compare equal.
fn copy_images(new: Option<&mut Value>, old: Option<&Value>) {
    let (Some(new), Some(old)) = (
        new.and_then(Value::as_array_mut),
        old.and_then(Value::as_array),
    ) else {
        return;
    };
    if new.len() != old.len() {
        return;
    }
    for (n, o) in new.iter_mut().zip(old) {
        if let (Some(n), Some(image)) = (n.as_object_mut(), get(o, "image")) {
            n.insert("image".to_owned(), image.clone());
        }
    }
}
