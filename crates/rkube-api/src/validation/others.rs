//! Kinds outside core, apps, batch and RBAC that users write by hand: autoscalers,
//! disruption budgets, ingresses, leases, priority and storage classes.

use serde_json::Value;

use super::field::{self, Path, get, int_at, list_at, str_at};
use super::meta::NameRule;
use super::names::{is_dns1123_label, is_dns1123_subdomain};
use crate::error::FieldError;

/// The highest priority a user-defined PriorityClass may have.
const HIGHEST_USER_PRIORITY: i64 = 1_000_000_000;

/// The checks of the kinds this module covers; other kinds get metadata checks only.
pub(super) fn validate(
    group: &str,
    kind: &str,
    object: &Value,
    old: Option<&Value>,
    errs: &mut Vec<FieldError>,
) {
    if let Some(old) = old {
        update(group, kind, object, old, errs);
    }
    match (group, kind) {
        ("autoscaling", "HorizontalPodAutoscaler") => horizontal_pod_autoscaler(object, errs),
        ("policy", "PodDisruptionBudget") => pod_disruption_budget(object, errs),
        ("networking.k8s.io", "Ingress") => ingress(object, errs),
        ("networking.k8s.io", "NetworkPolicy") => network_policy(object, errs),
        ("coordination.k8s.io", "Lease") => lease(object, errs),
        ("scheduling.k8s.io", "PriorityClass") => priority_class(object, errs),
        ("storage.k8s.io", "StorageClass") => storage_class(object, errs),
        ("node.k8s.io", "RuntimeClass") => runtime_class(object, errs),
        ("", "Event") => core_event(object, errs),
        _ => {}
    }
}

/// What these kinds may not change once created.
fn update(group: &str, kind: &str, object: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let forbid_change = |key: &str, message: &str, errs: &mut Vec<FieldError>| {
        if get(object, key) != get(old, key) {
            errs.push(FieldError::forbidden(Path::new(key), message));
        }
    };
    match (group, kind) {
        ("node.k8s.io", "RuntimeClass") => field::immutable(
            get(object, "handler"),
            get(old, "handler"),
            &Path::new("handler"),
            errs,
        ),
        ("scheduling.k8s.io", "PriorityClass") => {
            forbid_change("value", "may not be changed in an update.", errs);
            field::immutable(
                get(object, "preemptionPolicy"),
                get(old, "preemptionPolicy"),
                &Path::new("preemptionPolicy"),
                errs,
            );
        }
        ("storage.k8s.io", "StorageClass") => {
            let parameters = |v: &Value| {
                get(v, "parameters")
                    .filter(|p| p.as_object().is_some_and(|m| !m.is_empty()))
                    .cloned()
            };
            if parameters(object) != parameters(old) {
                errs.push(FieldError::forbidden(
                    Path::new("parameters"),
                    "updates to parameters are forbidden.",
                ));
            }
            forbid_change("provisioner", "updates to provisioner are forbidden.", errs);
            forbid_change(
                "reclaimPolicy",
                "updates to reclaimPolicy are forbidden.",
                errs,
            );
            field::immutable(
                get(object, "volumeBindingMode"),
                get(old, "volumeBindingMode"),
                &Path::new("volumeBindingMode"),
                errs,
            );
        }
        ("networking.k8s.io", "IngressClass") => {
            let controller = |v: &Value| field::dig(v, &["spec", "controller"]).cloned();
            field::immutable(
                controller(object).as_ref(),
                controller(old).as_ref(),
                &Path::new("spec").child("controller"),
                errs,
            );
        }
        _ => {}
    }
}

/// `ValidateHorizontalPodAutoscalerSpec`, in part.
fn horizontal_pod_autoscaler(object: &Value, errs: &mut Vec<FieldError>) {
    let spec = get(object, "spec").unwrap_or(&Value::Null);
    let path = Path::new("spec");
    let min = int_at(spec, "minReplicas");
    if let Some(min) = min.filter(|m| *m < 1) {
        errs.push(FieldError::invalid(
            path.child("minReplicas"),
            min,
            "must be greater than or equal to 1",
        ));
    }
    let max = int_at(spec, "maxReplicas").unwrap_or(0);
    if max < 1 {
        errs.push(FieldError::invalid(
            path.child("maxReplicas"),
            max,
            "must be greater than 0",
        ));
    }
    if min.is_some_and(|min| max < min) {
        errs.push(FieldError::invalid(
            path.child("maxReplicas"),
            max,
            "must be greater than or equal to `minReplicas`",
        ));
    }
    let target = get(spec, "scaleTargetRef").unwrap_or(&Value::Null);
    let tp = path.child("scaleTargetRef");
    for key in ["kind", "name"] {
        let value = str_at(target, key);
        if value.is_empty() {
            errs.push(FieldError::required(tp.child(key), ""));
        } else {
            for msg in NameRule::PathSegment.check(value, false) {
                errs.push(FieldError::invalid(tp.child(key), value, &msg));
            }
        }
    }
}

/// `ValidatePodDisruptionBudgetSpec`.
fn pod_disruption_budget(object: &Value, errs: &mut Vec<FieldError>) {
    let spec = get(object, "spec").unwrap_or(&Value::Null);
    let path = Path::new("spec");
    let min = get(spec, "minAvailable");
    let max = get(spec, "maxUnavailable");
    if min.is_some() && max.is_some() {
        errs.push(FieldError::invalid(
            &path,
            spec.clone(),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for (key, value) in [("minAvailable", min), ("maxUnavailable", max)] {
        field::int_or_percent(value, &path.child(key), errs);
        if let Some(Value::String(s)) = value
            && field::is_percent(s)
            && field::int_or_percent_value(value) > 100
        {
            errs.push(FieldError::invalid(
                path.child(key),
                s.as_str(),
                "must not be greater than 100%",
            ));
        }
    }
    if let Some(selector) = get(spec, "selector") {
        field::label_selector(selector, &path.child("selector"), errs);
    }
    let policy = str_at(spec, "unhealthyPodEvictionPolicy");
    if !policy.is_empty() && !["AlwaysAllow", "IfHealthyBudget"].contains(&policy) {
        errs.push(FieldError::not_supported(
            path.child("unhealthyPodEvictionPolicy"),
            policy,
            &["AlwaysAllow", "IfHealthyBudget"],
        ));
    }
}

/// `ValidateIngressSpec`, in part: hosts, path types and paths, and backends.
fn ingress(object: &Value, errs: &mut Vec<FieldError>) {
    let spec = get(object, "spec").unwrap_or(&Value::Null);
    let path = Path::new("spec");
    let rules = list_at(spec, "rules");
    if rules.is_empty() && get(spec, "defaultBackend").is_none() {
        errs.push(FieldError::invalid(
            &path,
            spec.clone(),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(backend) = get(spec, "defaultBackend") {
        ingress_backend(backend, &path.child("defaultBackend"), errs);
    }
    for (i, rule) in rules.iter().enumerate() {
        let rules_path = path.child("rules");
        let rp = rules_path.index(i);
        let host = str_at(rule, "host");
        if !host.is_empty() {
            let bare = host.strip_prefix("*.").unwrap_or(host);
            for msg in is_dns1123_subdomain(bare) {
                errs.push(FieldError::invalid(rp.child("host"), host, &msg));
            }
        }
        let Some(http) = get(rule, "http") else {
            continue;
        };
        let http_path = rp.child("http");
        let pp = http_path.child("paths");
        let paths = list_at(http, "paths");
        if paths.is_empty() {
            errs.push(FieldError::required(&pp, ""));
        }
        for (j, entry) in paths.iter().enumerate() {
            let ep = pp.index(j);
            let kind = str_at(entry, "pathType");
            let supported = ["Exact", "ImplementationSpecific", "Prefix"];
            if kind.is_empty() {
                errs.push(FieldError::required(
                    ep.child("pathType"),
                    "pathType must be specified",
                ));
            } else if !supported.contains(&kind) {
                errs.push(FieldError::not_supported(
                    ep.child("pathType"),
                    kind,
                    &supported,
                ));
            }
            let path_value = str_at(entry, "path");
            if kind != "ImplementationSpecific" && !path_value.starts_with('/') {
                errs.push(FieldError::invalid(
                    ep.child("path"),
                    path_value,
                    "must be an absolute path",
                ));
            }
            match get(entry, "backend") {
                Some(backend) => ingress_backend(backend, &ep.child("backend"), errs),
                None => errs.push(FieldError::required(ep.child("backend"), "")),
            }
        }
    }
}

/// `validateIngressBackend`: a service (name and one port) or a resource.
fn ingress_backend(backend: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    match (get(backend, "service"), get(backend, "resource")) {
        (Some(_), Some(_)) => errs.push(FieldError::invalid(
            path,
            backend.clone(),
            "cannot set both resource and service backends",
        )),
        (None, None) => errs.push(FieldError::invalid(
            path,
            backend.clone(),
            "resource or service backend is required",
        )),
        (Some(service), None) => {
            let sp = path.child("service");
            if str_at(service, "name").is_empty() {
                errs.push(FieldError::required(sp.child("name"), ""));
            }
            let port = get(service, "port").unwrap_or(&Value::Null);
            let name = str_at(port, "name");
            match int_at(port, "number") {
                Some(_) if !name.is_empty() => {
                    errs.push(FieldError::invalid(
                        sp.child("port"),
                        port.clone(),
                        "cannot set both port name & port number",
                    ));
                }
                Some(n) => field::port_number(n, &sp.child("port").child("number"), errs),
                None if name.is_empty() => errs.push(FieldError::invalid(
                    sp.child("port"),
                    port.clone(),
                    "port name or number is required",
                )),
                None => {
                    for msg in field::port_name_errors(name) {
                        errs.push(FieldError::invalid(
                            sp.child("port").child("name"),
                            name,
                            msg,
                        ));
                    }
                }
            }
        }
        (None, Some(_)) => {}
    }
}

/// `ValidateNetworkPolicySpec`: selectors, ports and peers of each rule, policy types.
fn network_policy(object: &Value, errs: &mut Vec<FieldError>) {
    let spec = get(object, "spec").unwrap_or(&Value::Null);
    let path = Path::new("spec");
    if let Some(selector) = get(spec, "podSelector") {
        field::label_selector(selector, &path.child("podSelector"), errs);
    }
    for (direction, peers) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in list_at(spec, direction).iter().enumerate() {
            let rules_path = path.child(direction);
            let rp = rules_path.index(i);
            for (j, port) in list_at(rule, "ports").iter().enumerate() {
                network_policy_port(port, &rp.child("ports").index(j), errs);
            }
            for (j, peer) in list_at(rule, peers).iter().enumerate() {
                network_policy_peer(peer, &rp.child(peers).index(j), errs);
            }
        }
    }
    let types = list_at(spec, "policyTypes");
    if types.len() > 2 {
        errs.push(FieldError::invalid(
            path.child("policyTypes"),
            Value::Array(types.to_vec()),
            "may not specify more than two policyTypes",
        ));
    }
    for (i, kind) in types.iter().enumerate() {
        let kind = kind.as_str().unwrap_or("");
        if !["Ingress", "Egress"].contains(&kind) {
            errs.push(FieldError::not_supported(
                path.child("policyTypes").index(i),
                kind,
                &["Ingress", "Egress"],
            ));
        }
    }
}

/// `ValidateNetworkPolicyPort`.
fn network_policy_port(port: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let protocol = str_at(port, "protocol");
    if !protocol.is_empty() && !["TCP", "UDP", "SCTP"].contains(&protocol) {
        errs.push(FieldError::not_supported(
            path.child("protocol"),
            protocol,
            &["TCP", "UDP", "SCTP"],
        ));
    }
    let end = int_at(port, "endPort");
    match get(port, "port") {
        Some(Value::Number(n)) => {
            let number = n.as_i64().unwrap_or(0);
            field::port_number(number, &path.child("port"), errs);
            if let Some(end) = end {
                if end < number {
                    errs.push(FieldError::invalid(
                        path.child("endPort"),
                        number,
                        "must be greater than or equal to `port`",
                    ));
                }
                field::port_number(end, &path.child("endPort"), errs);
            }
        }
        Some(Value::String(name)) => {
            if let Some(end) = end {
                errs.push(FieldError::invalid(
                    path.child("endPort"),
                    end,
                    "may not be specified when `port` is non-numeric",
                ));
            }
            for msg in field::port_name_errors(name) {
                errs.push(FieldError::invalid(path.child("port"), name.as_str(), msg));
            }
        }
        _ => {
            if let Some(end) = end {
                errs.push(FieldError::invalid(
                    path.child("endPort"),
                    end,
                    "may not be specified when `port` is not specified",
                ));
            }
        }
    }
}

/// `ValidateNetworkPolicyPeer`: at least one selector or an IP block, never both.
fn network_policy_peer(peer: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let mut count = 0;
    for key in ["podSelector", "namespaceSelector"] {
        if let Some(selector) = get(peer, key) {
            count += 1;
            field::label_selector(selector, &path.child(key), errs);
        }
    }
    if let Some(block) = get(peer, "ipBlock") {
        count += 1;
        let cidr = str_at(block, "cidr");
        let bp = path.child("ipBlock");
        if cidr.is_empty() {
            errs.push(FieldError::required(bp.child("cidr"), ""));
        } else if !is_cidr(cidr) {
            errs.push(FieldError::invalid(
                bp.child("cidr"),
                cidr,
                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            ));
        }
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a peer"));
    } else if count > 1 && get(peer, "ipBlock").is_some() {
        errs.push(FieldError::forbidden(
            path,
            "may not specify both ipBlock and another peer",
        ));
    }
}

/// An address and a prefix length that fits it.
fn is_cidr(text: &str) -> bool {
    let Some((addr, bits)) = text.split_once('/') else {
        return false;
    };
    let Ok(addr) = addr.parse::<std::net::IpAddr>() else {
        return false;
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    bits.parse::<u8>().is_ok_and(|b| b <= max)
}

/// `ValidateEventCreate` for core/v1 Events written the old way (no `eventTime`): the
/// involved object lives in the event's namespace.
fn core_event(object: &Value, errs: &mut Vec<FieldError>) {
    if get(object, "eventTime").is_some() {
        return;
    }
    let namespace = field::dig(object, &["metadata", "namespace"])
        .and_then(Value::as_str)
        .unwrap_or("");
    let involved = field::dig(object, &["involvedObject", "namespace"])
        .and_then(Value::as_str)
        .unwrap_or("");
    let matches = if involved.is_empty() {
        namespace.is_empty() || namespace == "default"
    } else {
        namespace == involved
    };
    if !matches {
        errs.push(FieldError::invalid(
            Path::new("involvedObject").child("namespace"),
            involved,
            "does not match event.namespace",
        ));
    }
}

/// `ValidateLeaseSpec`, in part.
fn lease(object: &Value, errs: &mut Vec<FieldError>) {
    let spec = get(object, "spec").unwrap_or(&Value::Null);
    if let Some(d) = int_at(spec, "leaseDurationSeconds").filter(|d| *d <= 0) {
        errs.push(FieldError::invalid(
            Path::new("spec").child("leaseDurationSeconds"),
            d,
            "must be greater than 0",
        ));
    }
}

/// `ValidatePriorityClass`: the `system-` prefix is reserved, user values are bounded.
fn priority_class(object: &Value, errs: &mut Vec<FieldError>) {
    let name = field::dig(object, &["metadata", "name"])
        .and_then(Value::as_str)
        .unwrap_or("");
    let value = int_at(object, "value").unwrap_or(0);
    let known = [
        ("system-node-critical", 2_000_001_000),
        ("system-cluster-critical", 2_000_000_000),
    ];
    if name.starts_with("system-") {
        if !known.contains(&(name, value)) {
            errs.push(FieldError::forbidden(
                Path::new("metadata").child("name"),
                &format!(
                    "priority class names with 'system-' prefix are reserved for system use \
                     only. error: {name:?} is not a known system priority class"
                ),
            ));
        }
    } else if value > HIGHEST_USER_PRIORITY {
        errs.push(FieldError::forbidden(
            Path::new("value"),
            "maximum allowed value of a user defined priority is 1000000000",
        ));
    }
    let policy = str_at(object, "preemptionPolicy");
    if !policy.is_empty() && !["Never", "PreemptLowerPriority"].contains(&policy) {
        errs.push(FieldError::not_supported(
            Path::new("preemptionPolicy"),
            policy,
            &["Never", "PreemptLowerPriority"],
        ));
    }
}

/// `ValidateStorageClass`, in part.
fn storage_class(object: &Value, errs: &mut Vec<FieldError>) {
    if str_at(object, "provisioner").is_empty() {
        errs.push(FieldError::required(Path::new("provisioner"), ""));
    }
    for (key, supported) in [
        ("reclaimPolicy", &["Delete", "Retain"][..]),
        (
            "volumeBindingMode",
            &["Immediate", "WaitForFirstConsumer"][..],
        ),
    ] {
        let value = str_at(object, key);
        if !value.is_empty() && !supported.contains(&value) {
            errs.push(FieldError::not_supported(Path::new(key), value, supported));
        }
    }
}

/// `ValidateRuntimeClass`: the handler is a DNS label and, like the rest of the class,
/// cannot change.
fn runtime_class(object: &Value, errs: &mut Vec<FieldError>) {
    let handler = str_at(object, "handler");
    if handler.is_empty() {
        errs.push(FieldError::required(Path::new("handler"), ""));
    } else {
        for message in is_dns1123_label(handler) {
            errs.push(FieldError::invalid(
                Path::new("handler"),
                Value::from(handler),
                &message,
            ));
        }
    }
}
