//! APIServices (apiregistration.k8s.io/v1), as upstream's kube-aggregator validates them:
//! the name is `<version>.<group>`, priorities within their bounds, a local APIService
//! (without a service) has no TLS settings, a remote one names its service and does not
//! both skip verification and carry a CA bundle.

use serde_json::Value;

use super::names::{is_dns1035_label, is_dns1123_subdomain};
use crate::FieldError;

/// The checks of an APIService, on create and update alike.
pub(super) fn api_service(object: &Value, errs: &mut Vec<FieldError>) {
    let spec = &object["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let version = spec["version"].as_str().unwrap_or_default();
    let required = format!("{version}.{group}");
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    // The name's path-segment checks come with the object metadata's; upstream's name rule
    // adds that it must be `version.group`.
    if !name.is_empty()
        && !matches!(name, "." | "..")
        && !name.contains(['/', '%'])
        && name != required
    {
        errs.push(FieldError::invalid(
            "metadata.name",
            name,
            &format!("must be `spec.version+\".\"+spec.group`: {required:?}"),
        ));
    }
    if group.is_empty() && version != "v1" {
        errs.push(FieldError::required(
            "spec.group",
            "only v1 may have an empty group and it better be legacy kube",
        ));
    }
    if !group.is_empty() {
        for why in is_dns1123_subdomain(group) {
            errs.push(FieldError::invalid("spec.group", group, &why));
        }
    }
    for why in is_dns1035_label(version) {
        errs.push(FieldError::invalid("spec.version", version, &why));
    }
    let group_priority = spec["groupPriorityMinimum"].as_i64().unwrap_or(0);
    if group_priority <= 0 || group_priority > 20000 {
        errs.push(FieldError::invalid(
            "spec.groupPriorityMinimum",
            group_priority,
            "must be positive and less than 20000",
        ));
    }
    let version_priority = spec["versionPriority"].as_i64().unwrap_or(0);
    if version_priority <= 0 || version_priority > 1000 {
        errs.push(FieldError::invalid(
            "spec.versionPriority",
            version_priority,
            "must be positive and less than 1000",
        ));
    }
    let ca_bundle = spec["caBundle"].as_str().unwrap_or_default();
    let insecure = spec["insecureSkipTLSVerify"].as_bool().unwrap_or(false);
    let service = &spec["service"];
    if !service.is_object() {
        if !ca_bundle.is_empty() {
            // The bundle's length in bytes, decoded from its base64 form.
            let bytes = ca_bundle.trim_end_matches('=').len() * 3 / 4;
            errs.push(FieldError::invalid(
                "spec.caBundle",
                format!("{bytes} bytes"),
                "local APIServices may not have a caBundle",
            ));
        }
        if insecure {
            errs.push(FieldError::invalid(
                "spec.insecureSkipTLSVerify",
                true,
                "local APIServices may not have insecureSkipTLSVerify",
            ));
        }
        return;
    }
    if service["namespace"].as_str().unwrap_or_default().is_empty() {
        errs.push(FieldError::required("spec.service.namespace", ""));
    }
    if service["name"].as_str().unwrap_or_default().is_empty() {
        errs.push(FieldError::required("spec.service.name", ""));
    }
    if insecure && !ca_bundle.is_empty() {
        errs.push(FieldError::invalid(
            "spec.insecureSkipTLSVerify",
            true,
            "may not be true if caBundle is present",
        ));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn errors(object: Value) -> Vec<String> {
        let mut errs = Vec::new();
        api_service(&object, &mut errs);
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_local_and_a_remote_api_service_are_valid() {
        let local = json!({"metadata": {"name": "v1.apps"}, "spec": {"group": "apps",
            "version": "v1", "groupPriorityMinimum": 17800, "versionPriority": 15}});
        assert!(errors(local).is_empty());
        let core = json!({"metadata": {"name": "v1."}, "spec": {"version": "v1",
            "groupPriorityMinimum": 18000, "versionPriority": 1}});
        assert!(errors(core).is_empty());
        let remote = json!({"metadata": {"name": "v1beta1.metrics.k8s.io"}, "spec": {
            "group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100,
            "versionPriority": 100, "insecureSkipTLSVerify": true,
            "service": {"namespace": "kube-system", "name": "metrics-server", "port": 443}}});
        assert!(errors(remote).is_empty());
    }

    #[test]
    fn bad_api_services_are_refused_with_upstreams_messages() {
        let bad = json!({"metadata": {"name": "v1.wrong"}, "spec": {"group": "example.com",
            "version": "v1", "groupPriorityMinimum": 0, "versionPriority": 1001,
            "caBundle": "QUJD"}});
        assert_eq!(
            errors(bad),
            [
                "metadata.name: Invalid value: \"v1.wrong\": must be `spec.version+\".\"+spec.group`: \"v1.example.com\"",
                "spec.groupPriorityMinimum: Invalid value: 0: must be positive and less than 20000",
                "spec.versionPriority: Invalid value: 1001: must be positive and less than 1000",
                "spec.caBundle: Invalid value: \"3 bytes\": local APIServices may not have a caBundle",
            ]
        );
        let remote = json!({"metadata": {"name": "v2."}, "spec": {"version": "v2",
            "groupPriorityMinimum": 1, "versionPriority": 1, "caBundle": "QUJD",
            "insecureSkipTLSVerify": true, "service": {"port": 443}}});
        assert_eq!(
            errors(remote),
            [
                "spec.group: Required value: only v1 may have an empty group and it better be legacy kube",
                "spec.service.namespace: Required value",
                "spec.service.name: Required value",
                "spec.insecureSkipTLSVerify: Invalid value: true: may not be true if caBundle is present",
            ]
        );
    }
}
