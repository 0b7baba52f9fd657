//! What `ValidatePodSpec` checks of security settings: the pod's security context (user and
//! group IDs, `shareProcessNamespace` with `hostPID`, sysctls, `fsGroupChangePolicy`,
//! seccomp), each container's (IDs, `procMount`, seccomp), and that with `hostNetwork` a
//! container port is its host port.

use std::collections::BTreeSet;

use serde_json::Value;

use super::field::{Path, bool_at, get, int_at, list_at, str_at};
use crate::error::FieldError;

/// `sysctlContainSlashRegexp`, as upstream's message prints it.
const SYSCTL_REGEX: &str =
    r"^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$";
const SYSCTL_MAX_LENGTH: usize = 253;
const ID_RANGE: &str = "must be between 0 and 2147483647, inclusive";

/// `IsValidUserID` / `IsValidGroupID`.
fn id(value: Option<i64>, path: Path, errs: &mut Vec<FieldError>) {
    if let Some(n) = value
        && !(0..=i64::from(i32::MAX)).contains(&n)
    {
        errs.push(FieldError::invalid(path, n, ID_RANGE));
    }
}

/// One `[a-z0-9]([-_a-z0-9]*[a-z0-9])?` segment.
fn sysctl_segment(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.first().is_some_and(edge)
        && b.last().is_some_and(edge)
        && b.iter().all(|c| edge(c) || *c == b'-' || *c == b'_')
}

/// `IsValidSysctlName`: segments separated by `.` or `/`, at most 253 characters.
pub(super) fn is_valid_sysctl_name(name: &str) -> bool {
    name.len() <= SYSCTL_MAX_LENGTH && name.split(['.', '/']).all(sysctl_segment)
}

/// The kernel namespace a sysctl belongs to (`component-helpers/node/util/sysctl`), its
/// name first written with dots (a name whose first separator is `/` has `.` and `/`
/// swapped).
fn sysctl_namespace(name: &str) -> Option<&'static str> {
    let normalized: String = match name.find(['.', '/']) {
        Some(i) if name.as_bytes()[i] == b'/' => name
            .chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                c => c,
            })
            .collect(),
        _ => name.to_owned(),
    };
    if normalized == "kernel.sem"
        || ["kernel.shm", "kernel.msg", "fs.mqueue."]
            .iter()
            .any(|p| normalized.starts_with(p))
    {
        Some("ipc")
    } else if normalized.starts_with("net.") {
        Some("net")
    } else {
        None
    }
}

fn sysctls(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let context = get(spec, "securityContext").unwrap_or(&Value::Null);
    let host_network = bool_at(spec, "hostNetwork") == Some(true);
    let host_ipc = bool_at(spec, "hostIPC") == Some(true);
    let mut names = BTreeSet::new();
    for (i, sysctl) in list_at(context, "sysctls").iter().enumerate() {
        let p = path.index(i);
        let name = str_at(sysctl, "name");
        if name.is_empty() {
            errs.push(FieldError::required(p.child("name"), ""));
        } else if !is_valid_sysctl_name(name) {
            errs.push(FieldError::invalid(
                p.child("name"),
                name,
                &format!(
                    "must have at most {SYSCTL_MAX_LENGTH} characters and match regex {SYSCTL_REGEX}"
                ),
            ));
        } else if names.contains(name) {
            errs.push(FieldError::duplicate(p.child("name"), name));
        }
        match sysctl_namespace(name) {
            Some("net") if host_network => errs.push(FieldError::invalid(
                p.child("name"),
                name,
                "may not be specified when 'hostNetwork' is true",
            )),
            Some("ipc") if host_ipc => errs.push(FieldError::invalid(
                p.child("name"),
                name,
                "may not be specified when 'hostIPC' is true",
            )),
            _ => {}
        }
        names.insert(name.to_owned());
    }
}

/// `validateSeccompProfileField`.
fn seccomp(context: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let Some(profile) = get(context, "seccompProfile") else {
        return;
    };
    let ty = str_at(profile, "type");
    let localhost = get(profile, "localhostProfile").and_then(Value::as_str);
    match ty {
        "" => errs.push(FieldError::required(path.child("type"), "")),
        "Localhost" | "RuntimeDefault" | "Unconfined" => {}
        other => errs.push(FieldError::not_supported(
            path.child("type"),
            other,
            &["Localhost", "RuntimeDefault", "Unconfined"],
        )),
    }
    if ty == "Localhost" {
        if localhost.is_none_or(str::is_empty) {
            errs.push(FieldError::required(
                path.child("localhostProfile"),
                "must be set when seccomp type is Localhost",
            ));
        }
    } else if let Some(profile) = localhost {
        errs.push(FieldError::invalid(
            path.child("localhostProfile"),
            profile,
            "can only be set when seccomp type is Localhost",
        ));
    }
}

/// `validatePodSpecSecurityContext` and `validateHostNetwork`, for the spec at `path`.
pub(super) fn pod(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    if let Some(context) = get(spec, "securityContext") {
        let p = path.child("securityContext");
        id(int_at(context, "fsGroup"), p.child("fsGroup"), errs);
        id(int_at(context, "runAsUser"), p.child("runAsUser"), errs);
        id(int_at(context, "runAsGroup"), p.child("runAsGroup"), errs);
        for (i, gid) in list_at(context, "supplementalGroups").iter().enumerate() {
            id(gid.as_i64(), p.child("supplementalGroups").index(i), errs);
        }
        if bool_at(spec, "shareProcessNamespace") == Some(true)
            && bool_at(spec, "hostPID") == Some(true)
        {
            errs.push(FieldError::invalid(
                p.child("shareProcessNamespace"),
                true,
                "ShareProcessNamespace and HostPID cannot both be enabled",
            ));
        }
        sysctls(spec, &p.child("sysctls"), errs);
        let policy = str_at(context, "fsGroupChangePolicy");
        if get(context, "fsGroupChangePolicy").is_some()
            && !matches!(policy, "Always" | "OnRootMismatch")
        {
            errs.push(FieldError::not_supported(
                p.child("fsGroupChangePolicy"),
                policy,
                &["Always", "OnRootMismatch"],
            ));
        }
        seccomp(context, &p.child("seccompProfile"), errs);
    }
    if bool_at(spec, "hostNetwork") == Some(true) {
        let containers = path.child("containers");
        for (i, c) in list_at(spec, "containers").iter().enumerate() {
            for (j, port) in list_at(c, "ports").iter().enumerate() {
                let container_port = int_at(port, "containerPort").unwrap_or(0);
                if let Some(host_port) = int_at(port, "hostPort")
                    && host_port != container_port
                {
                    errs.push(FieldError::invalid(
                        containers
                            .index(i)
                            .child("ports")
                            .index(j)
                            .child("containerPort"),
                        container_port,
                        "must match `hostPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }
}

/// `ValidateSecurityContext` of one container at `path` (the container).
pub(super) fn container(c: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let Some(context) = get(c, "securityContext") else {
        return;
    };
    let p = path.child("securityContext");
    id(int_at(context, "runAsUser"), p.child("runAsUser"), errs);
    id(int_at(context, "runAsGroup"), p.child("runAsGroup"), errs);
    if get(context, "procMount").is_some() {
        let mount = str_at(context, "procMount");
        if !matches!(mount, "Default" | "Unmasked") {
            errs.push(FieldError::not_supported(
                p.child("procMount"),
                mount,
                &["Default", "Unmasked"],
            ));
        }
    }
    seccomp(context, &p.child("seccompProfile"), errs);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn errors(spec: Value) -> Vec<String> {
        let mut errs = Vec::new();
        pod(&spec, &Path::new("spec"), &mut errs);
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn sysctl_names_follow_upstreams_format_and_namespace_rules() {
        for ok in [
            "kernel.shm_rmid_forced",
            "net.ipv4.ip_local_port_range",
            "a/b.c",
            "a",
        ] {
            assert!(is_valid_sysctl_name(ok), "{ok}");
        }
        for bad in ["", "Kernel.x", "net..x", "a.", "-a", "a_", &"a".repeat(254)] {
            assert!(!is_valid_sysctl_name(bad), "{bad}");
        }
        assert_eq!(
            errors(
                json!({"hostNetwork": true, "hostIPC": true, "securityContext": {"sysctls": [
                    {"name": "net.core.somaxconn", "value": "1"},
                    {"name": "kernel.msgmax", "value": "1"},
                    {"name": "Bad_name", "value": "1"},
                    {"name": "kernel.shm_rmid_forced", "value": "1"},
                    {"name": "kernel.shm_rmid_forced", "value": "0"},
                    {"name": "", "value": "1"},
                ]}})
            ),
            [
                "spec.securityContext.sysctls[0].name: Invalid value: \"net.core.somaxconn\": may not be specified when 'hostNetwork' is true",
                "spec.securityContext.sysctls[1].name: Invalid value: \"kernel.msgmax\": may not be specified when 'hostIPC' is true",
                "spec.securityContext.sysctls[2].name: Invalid value: \"Bad_name\": must have at most 253 characters and match regex ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$",
                "spec.securityContext.sysctls[3].name: Invalid value: \"kernel.shm_rmid_forced\": may not be specified when 'hostIPC' is true",
                "spec.securityContext.sysctls[4].name: Duplicate value: \"kernel.shm_rmid_forced\"",
                "spec.securityContext.sysctls[4].name: Invalid value: \"kernel.shm_rmid_forced\": may not be specified when 'hostIPC' is true",
                "spec.securityContext.sysctls[5].name: Required value",
            ]
        );
    }

    #[test]
    fn ids_process_sharing_policies_seccomp_and_host_ports_are_checked() {
        assert_eq!(
            errors(json!({
                "hostPID": true, "shareProcessNamespace": true, "hostNetwork": true,
                "securityContext": {"runAsUser": -1, "supplementalGroups": [1, 2147483648_i64],
                    "fsGroupChangePolicy": "Sometimes",
                    "seccompProfile": {"type": "Localhost"}},
                "containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}],
            })),
            [
                "spec.securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
                "spec.securityContext.supplementalGroups[1]: Invalid value: 2147483648: must be between 0 and 2147483647, inclusive",
                "spec.securityContext.shareProcessNamespace: Invalid value: true: ShareProcessNamespace and HostPID cannot both be enabled",
                "spec.securityContext.fsGroupChangePolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnRootMismatch\"",
                "spec.securityContext.seccompProfile.localhostProfile: Required value: must be set when seccomp type is Localhost",
                "spec.containers[0].ports[0].containerPort: Invalid value: 80: must match `hostPort` when `hostNetwork` is true",
            ]
        );
        let mut errs = Vec::new();
        container(
            &json!({"securityContext": {"runAsGroup": -5, "procMount": "Odd",
                "seccompProfile": {"type": "RuntimeDefault", "localhostProfile": "p.json"}}}),
            &Path::new("spec").child("containers").index(0),
            &mut errs,
        );
        let errs: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(
            errs,
            [
                "spec.containers[0].securityContext.runAsGroup: Invalid value: -5: must be between 0 and 2147483647, inclusive",
                "spec.containers[0].securityContext.procMount: Unsupported value: \"Odd\": supported values: \"Default\", \"Unmasked\"",
                "spec.containers[0].securityContext.seccompProfile.localhostProfile: Invalid value: \"p.json\": can only be set when seccomp type is Localhost",
            ]
        );
    }
}
