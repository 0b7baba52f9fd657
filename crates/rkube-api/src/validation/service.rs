//! Services: `ValidateService` and `ValidateServiceUpdate`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::{Value, json};

use super::field::{self, Path, get, int_at, list_at, str_at};
use super::names::{is_dns1123_label, is_dns1123_subdomain, is_qualified_name};
use super::pod::PROTOCOLS;
use crate::error::FieldError;

/// Sorted, as upstream lists them.
const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const KUBELET_PORT: i64 = 10250;

/// `ValidateService`.
pub(super) fn service(object: &Value, errs: &mut Vec<FieldError>) {
    let spec = get(object, "spec").unwrap_or(&Value::Null);
    let path = Path::new("spec");
    let service_type = str_at(spec, "type");
    let cluster_ips: Vec<&str> = list_at(spec, "clusterIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let headless = str_at(spec, "clusterIP") == "None" || cluster_ips.first() == Some(&"None");
    let ports = list_at(spec, "ports");
    let ports_path = path.child("ports");
    if ports.is_empty() && !headless && service_type != "ExternalName" {
        errs.push(FieldError::required(&ports_path, ""));
    }
    let ips_path = path.child("clusterIPs");
    let first_ip_path = ips_path.index(0);
    match service_type {
        "LoadBalancer" => {
            for (i, port) in ports.iter().enumerate() {
                if int_at(port, "port") == Some(KUBELET_PORT) {
                    errs.push(FieldError::invalid(
                        ports_path.index(i),
                        KUBELET_PORT,
                        "may not expose port 10250 externally since it is used by kubelet",
                    ));
                }
            }
            if headless {
                errs.push(FieldError::invalid(
                    &first_ip_path,
                    "None",
                    "may not be set to 'None' for LoadBalancer services",
                ));
            }
        }
        "NodePort" if headless => errs.push(FieldError::invalid(
            &first_ip_path,
            "None",
            "may not be set to 'None' for NodePort services",
        )),
        "ExternalName" => {
            if !cluster_ips.is_empty() || !str_at(spec, "clusterIP").is_empty() {
                errs.push(FieldError::forbidden(
                    path.child("clusterIPs"),
                    "may not be set for ExternalName services",
                ));
            }
            if !list_at(spec, "ipFamilies").is_empty() {
                errs.push(FieldError::forbidden(
                    path.child("ipFamilies"),
                    "may not be set for ExternalName services",
                ));
            }
            if get(spec, "ipFamilyPolicy").is_some() {
                errs.push(FieldError::forbidden(
                    path.child("ipFamilyPolicy"),
                    "may not be set for ExternalName services",
                ));
            }
            let name = str_at(spec, "externalName");
            let cname = name.strip_suffix('.').unwrap_or(name);
            if cname.is_empty() {
                errs.push(FieldError::required(path.child("externalName"), ""));
            } else {
                for msg in is_dns1123_subdomain(cname) {
                    errs.push(FieldError::invalid(path.child("externalName"), cname, &msg));
                }
            }
        }
        _ => {}
    }
    let mut names = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = ports_path.index(i);
        service_port(port, ports.len() > 1, &mut names, &p, errs);
        let key = (str_at(port, "protocol"), int_at(port, "port").unwrap_or(0));
        if !seen.insert(key) {
            errs.push(FieldError::duplicate(
                &p,
                json!({"protocol": key.0, "port": key.1}),
            ));
        }
        if service_type == "ClusterIP" && int_at(port, "nodePort").is_some_and(|n| n != 0) {
            errs.push(FieldError::forbidden(
                p.child("nodePort"),
                "may not be used when `type` is 'ClusterIP'",
            ));
        }
    }
    field::labels(get(spec, "selector"), &path.child("selector"), errs);
    let affinity = str_at(spec, "sessionAffinity");
    field::one_of(
        affinity,
        &["ClientIP", "None"],
        &path.child("sessionAffinity"),
        errs,
    );
    if affinity == "ClientIP" {
        let timeout = field::dig(
            spec,
            &["sessionAffinityConfig", "clientIP", "timeoutSeconds"],
        )
        .and_then(Value::as_i64);
        if let Some(t) = timeout.filter(|t| !(1..=86_400).contains(t)) {
            errs.push(FieldError::invalid(
                path.child("sessionAffinityConfig")
                    .child("clientIP")
                    .child("timeoutSeconds"),
                t,
                "must be greater than 0 and less than 86400",
            ));
        }
    } else if get(spec, "sessionAffinityConfig").is_some() {
        errs.push(FieldError::forbidden(
            path.child("sessionAffinityConfig"),
            &format!("must not be set when session affinity is {affinity}"),
        ));
    }
    cluster_ip_fields(spec, &path, headless, errs);
    for (i, ip) in list_at(spec, "externalIPs").iter().enumerate() {
        let ip = ip.as_str().unwrap_or("");
        if ip.parse::<IpAddr>().is_err() {
            errs.push(FieldError::invalid(
                path.child("externalIPs").index(i),
                ip,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
    }
    field::one_of(service_type, SERVICE_TYPES, &path.child("type"), errs);
    traffic_policies(spec, &path, service_type, errs);
}

/// `validateServicePort`.
fn service_port(
    port: &Value,
    require_name: bool,
    names: &mut BTreeSet<String>,
    p: &Path,
    errs: &mut Vec<FieldError>,
) {
    let name = str_at(port, "name");
    if require_name && name.is_empty() {
        errs.push(FieldError::required(p.child("name"), ""));
    } else if !name.is_empty() {
        for msg in is_dns1123_label(name) {
            errs.push(FieldError::invalid(p.child("name"), name, &msg));
        }
        if !names.insert(name.to_owned()) {
            errs.push(FieldError::duplicate(p.child("name"), name));
        }
    }
    field::port_number(int_at(port, "port").unwrap_or(0), &p.child("port"), errs);
    field::one_of(
        str_at(port, "protocol"),
        PROTOCOLS,
        &p.child("protocol"),
        errs,
    );
    field::port_num_or_name(get(port, "targetPort"), &p.child("targetPort"), errs);
    if let Some(app) = get(port, "appProtocol").and_then(Value::as_str) {
        for msg in is_qualified_name(app) {
            errs.push(FieldError::invalid(p.child("appProtocol"), app, &msg));
        }
    }
}

/// `ValidateServiceClusterIPsRelatedFields`, in part: addresses and families.
fn cluster_ip_fields(spec: &Value, path: &Path, headless: bool, errs: &mut Vec<FieldError>) {
    let cluster_ip = str_at(spec, "clusterIP");
    let ips = list_at(spec, "clusterIPs");
    let ips_path = path.child("clusterIPs");
    if !cluster_ip.is_empty()
        && let Some(first) = ips.first()
        && first.as_str() != Some(cluster_ip)
    {
        errs.push(FieldError::invalid(
            &ips_path,
            Value::Array(ips.to_vec()),
            "first value must match `clusterIP`",
        ));
    }
    for (i, ip) in ips.iter().enumerate() {
        let ip = ip.as_str().unwrap_or("");
        if ip == "None" {
            if i > 0 || !headless {
                errs.push(FieldError::invalid(
                    ips_path.index(i),
                    ip,
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                ));
            }
        } else if ip.parse::<IpAddr>().is_err() {
            errs.push(FieldError::invalid(
                ips_path.index(i),
                ip,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
    }
    if let Some(policy) = get(spec, "ipFamilyPolicy").and_then(Value::as_str) {
        let supported = ["PreferDualStack", "RequireDualStack", "SingleStack"];
        if !supported.contains(&policy) {
            errs.push(FieldError::not_supported(
                path.child("ipFamilyPolicy"),
                policy,
                &supported,
            ));
        }
    }
    let mut families = BTreeSet::new();
    for (i, family) in list_at(spec, "ipFamilies").iter().enumerate() {
        let family = family.as_str().unwrap_or("");
        let families_path = path.child("ipFamilies");
        let p = families_path.index(i);
        if !["IPv4", "IPv6"].contains(&family) {
            errs.push(FieldError::not_supported(&p, family, &["IPv4", "IPv6"]));
        } else if !families.insert(family) {
            errs.push(FieldError::duplicate(&p, family));
        }
    }
}

/// `validateServiceExternalTrafficPolicy` and `validateServiceInternalTrafficFieldsValue`.
fn traffic_policies(spec: &Value, path: &Path, service_type: &str, errs: &mut Vec<FieldError>) {
    let external = str_at(spec, "externalTrafficPolicy");
    let accessible = matches!(service_type, "LoadBalancer" | "NodePort")
        || (service_type == "ClusterIP" && !list_at(spec, "externalIPs").is_empty());
    let ep = path.child("externalTrafficPolicy");
    if !accessible {
        if !external.is_empty() {
            errs.push(FieldError::invalid(
                &ep,
                external,
                "may only be set for externally-accessible services",
            ));
        }
    } else {
        field::one_of(external, &["Cluster", "Local"], &ep, errs);
    }
    match get(spec, "internalTrafficPolicy").and_then(Value::as_str) {
        None => {
            if matches!(service_type, "ClusterIP" | "NodePort" | "LoadBalancer") {
                errs.push(FieldError::required(
                    path.child("internalTrafficPolicy"),
                    "",
                ));
            }
        }
        Some(policy) if !["Cluster", "Local"].contains(&policy) => {
            errs.push(FieldError::not_supported(
                path.child("internalTrafficPolicy"),
                policy,
                &["Cluster", "Local"],
            ));
        }
        Some(_) => {}
    }
}

/// `validateUpgradeDowngradeClusterIPs`: allocated addresses may not change. A client that
/// leaves them out keeps them (upstream copies them from the stored object first).
pub(super) fn service_update(object: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let spec = get(object, "spec").unwrap_or(&Value::Null);
    let old_spec = get(old, "spec").unwrap_or(&Value::Null);
    if str_at(spec, "type") == "ExternalName" || str_at(old_spec, "type") == "ExternalName" {
        return;
    }
    let new_ips = list_at(spec, "clusterIPs");
    let old_ips = list_at(old_spec, "clusterIPs");
    for i in 0..2 {
        if let (Some(new), Some(old)) = (new_ips.get(i), old_ips.get(i))
            && new != old
        {
            errs.push(FieldError::invalid(
                Path::new("spec").child("clusterIPs").index(i),
                Value::Array(new_ips.to_vec()),
                "may not change once set",
            ));
        }
    }
}
