//! A container's environment, from its spec and the objects it refers to (pure): values with
//! `$(VAR)` expansion, fieldRef, resourceFieldRef, configMap and secret keys, envFrom.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Container as ContainerSpec, Pod, Secret};

use crate::podconfig::{millis, units};

/// The ConfigMaps and Secrets of the pod's namespace that it refers to (missing ones absent).
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// ConfigMaps by name.
    pub config_maps: HashMap<String, ConfigMap>,
    /// Secrets by name.
    pub secrets: HashMap<String, Secret>,
    /// The node's allocatable cpu (millicores) and memory (bytes), for resourceFieldRef of a
    /// container without limits.
    pub node_allocatable: (i64, i64),
    /// The pod's IPs and the node's.
    pub pod_ips: Vec<String>,
    /// The node's IPs.
    pub host_ips: Vec<String>,
    /// Service environment (`<SVC>_SERVICE_HOST` …) for enableServiceLinks.
    pub service_env: Vec<(String, String)>,
}

/// The names of ConfigMaps and Secrets the pod's environment and volumes refer to.
pub fn referenced(pod: &Pod) -> (Vec<String>, Vec<String>) {
    let (mut cms, mut secrets) = (Vec::new(), Vec::new());
    let Some(spec) = pod.spec.as_ref() else {
        return (cms, secrets);
    };
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        for e in c.env.iter().flatten() {
            if let Some(from) = &e.value_from {
                if let Some(r) = &from.config_map_key_ref {
                    cms.push(r.name.clone());
                }
                if let Some(r) = &from.secret_key_ref {
                    secrets.push(r.name.clone());
                }
            }
        }
        for f in c.env_from.iter().flatten() {
            if let Some(r) = &f.config_map_ref {
                cms.push(r.name.clone());
            }
            if let Some(r) = &f.secret_ref {
                secrets.push(r.name.clone());
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(cm) = &v.config_map {
            cms.push(cm.name.clone());
        }
        if let Some(s) = &v.secret {
            secrets.extend(s.secret_name.clone());
        }
        for p in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(cm) = &p.config_map {
                cms.push(cm.name.clone());
            }
            if let Some(s) = &p.secret {
                secrets.push(s.name.clone());
            }
        }
    }
    for s in spec.image_pull_secrets.iter().flatten() {
        secrets.push(s.name.clone());
    }
    cms.sort();
    cms.dedup();
    secrets.sort();
    secrets.dedup();
    (cms, secrets)
}

/// Expands `$(VAR)` references from `vars`; `$$` is a literal `$`; unknown references stay.
pub fn expand(input: &str, vars: &HashMap<&str, &str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn bytes_value(b: &k8s_openapi::ByteString) -> String {
    String::from_utf8_lossy(&b.0).into_owned()
}

fn config_map_value(cm: &ConfigMap, key: &str) -> Option<String> {
    cm.data
        .as_ref()
        .and_then(|d| d.get(key).cloned())
        .or_else(|| {
            cm.binary_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(bytes_value)
        })
}

fn secret_data(s: &Secret) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), bytes_value(v)))
        .collect();
    out.extend(s.string_data.clone().unwrap_or_default());
    out
}

/// Whether a name can be an environment variable (upstream's C_IDENTIFIER-or-relaxed rule:
/// printable ASCII without `=`).
fn valid_env_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (32..127).contains(&b) && b != b'=')
}

/// A field of the pod for fieldRef (downward API).
pub fn pod_field(pod: &Pod, path: &str, sources: &Sources) -> Option<String> {
    let spec = pod.spec.as_ref();
    let map_key = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix("['"))
            .and_then(|r| r.strip_suffix("']"))
    };
    if let Some(key) = map_key("metadata.labels") {
        return Some(
            pod.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(key))
                .cloned()
                .unwrap_or_default(),
        );
    }
    if let Some(key) = map_key("metadata.annotations") {
        return Some(
            pod.metadata
                .annotations
                .as_ref()
                .and_then(|l| l.get(key))
                .cloned()
                .unwrap_or_default(),
        );
    }
    let format_map = |m: Option<&BTreeMap<String, String>>| {
        m.into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Some(match path {
        "metadata.name" => pod.metadata.name.clone().unwrap_or_default(),
        "metadata.namespace" => pod.metadata.namespace.clone().unwrap_or_default(),
        "metadata.uid" => pod.metadata.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(pod.metadata.labels.as_ref()),
        "metadata.annotations" => format_map(pod.metadata.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => sources.host_ips.first().cloned().unwrap_or_default(),
        "status.hostIPs" => sources.host_ips.join(","),
        "status.podIP" => sources.pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => sources.pod_ips.join(","),
        _ => return None,
    })
}

/// A container resource for resourceFieldRef, divided by the divisor (upstream rounds up).
pub fn resource_field(
    c: &ContainerSpec,
    resource: &str,
    divisor: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    sources: &Sources,
) -> Option<String> {
    let res = c.resources.clone().unwrap_or_default();
    let (map, name) = resource.split_once('.')?;
    let value = match map {
        "limits" => res.limits.as_ref().and_then(|m| m.get(name)).cloned(),
        "requests" => res.requests.as_ref().and_then(|m| m.get(name)).cloned(),
        _ => return None,
    };
    let cpu = name == "cpu";
    // A missing limit reads as the node's allocatable amount, as upstream.
    let amount_millis = match (&value, cpu) {
        (Some(q), true) => millis(q)?,
        (Some(q), false) => units(q)?.saturating_mul(1000),
        (None, true) if map == "limits" => sources.node_allocatable.0,
        (None, false) if map == "limits" => sources.node_allocatable.1.saturating_mul(1000),
        (None, _) => 0,
    };
    let divisor_millis = match divisor {
        Some(d) if cpu => millis(d).filter(|d| *d > 0).unwrap_or(1000),
        Some(d) => units(d)
            .filter(|d| *d > 0)
            .unwrap_or(1)
            .saturating_mul(1000),
        None if cpu => 1000,
        None => 1000,
    };
    let v = (amount_millis + divisor_millis - 1) / divisor_millis;
    Some(v.to_string())
}

/// The container's environment, or the reason and message it cannot be made
/// (`CreateContainerConfigError`).
pub fn resolve(
    pod: &Pod,
    c: &ContainerSpec,
    sources: &Sources,
) -> Result<Vec<(String, String)>, String> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        if let Some(slot) = env.iter_mut().find(|(name, _)| *name == k) {
            slot.1 = v;
        } else {
            env.push((k, v));
        }
    };
    let enable_links = pod.spec.as_ref().and_then(|s| s.enable_service_links) != Some(false);
    for (k, v) in &sources.service_env {
        if enable_links || k.starts_with("KUBERNETES_") {
            set(&mut env, k.clone(), v.clone());
        }
    }
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match sources.config_maps.get(&r.name) {
                Some(cm) => {
                    let mut keys: BTreeMap<String, String> = cm.data.clone().unwrap_or_default();
                    for (k, v) in cm.binary_data.iter().flatten() {
                        keys.insert(k.clone(), bytes_value(v));
                    }
                    for (k, v) in keys {
                        let name = format!("{prefix}{k}");
                        if valid_env_name(&name) {
                            set(&mut env, name, v);
                        }
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(format!("configmap \"{}\" not found", r.name)),
            }
        }
        if let Some(r) = &from.secret_ref {
            match sources.secrets.get(&r.name) {
                Some(s) => {
                    for (k, v) in secret_data(s) {
                        let name = format!("{prefix}{k}");
                        if valid_env_name(&name) {
                            set(&mut env, name, v);
                        }
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(format!("secret \"{}\" not found", r.name)),
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => {
                let vars: HashMap<&str, &str> =
                    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                expand(v, &vars)
            }
            (None, Some(from)) => {
                if let Some(f) = &from.field_ref {
                    pod_field(pod, &f.field_path, sources).unwrap_or_default()
                } else if let Some(r) = &from.resource_field_ref {
                    let container = match r.container_name.as_deref() {
                        Some(name) if !name.is_empty() => pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.containers.iter().find(|c| c.name == name))
                            .unwrap_or(c),
                        _ => c,
                    };
                    resource_field(container, &r.resource, r.divisor.as_ref(), sources)
                        .unwrap_or_default()
                } else if let Some(r) = &from.config_map_key_ref {
                    match sources.config_maps.get(&r.name) {
                        Some(cm) => match config_map_value(cm, &r.key) {
                            Some(v) => v,
                            None if r.optional == Some(true) => continue,
                            None => {
                                return Err(format!(
                                    "couldn't find key {} in ConfigMap {}/{}",
                                    r.key,
                                    pod.metadata.namespace.as_deref().unwrap_or_default(),
                                    r.name
                                ));
                            }
                        },
                        None if r.optional == Some(true) => continue,
                        None => return Err(format!("configmap \"{}\" not found", r.name)),
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    match sources.secrets.get(&r.name) {
                        Some(s) => match secret_data(s).remove(&r.key) {
                            Some(v) => v,
                            None if r.optional == Some(true) => continue,
                            None => {
                                return Err(format!(
                                    "couldn't find key {} in Secret {}/{}",
                                    r.key,
                                    pod.metadata.namespace.as_deref().unwrap_or_default(),
                                    r.name
                                ));
                            }
                        },
                        None if r.optional == Some(true) => continue,
                        None => return Err(format!("secret \"{}\" not found", r.name)),
                    }
                } else {
                    String::new()
                }
            }
            (None, None) => String::new(),
        };
        set(&mut env, e.name.clone(), value);
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_expand_and_escapes_stay_literal() {
        let vars = HashMap::from([("A", "1"), ("B", "two")]);
        assert_eq!(expand("$(A)-$(B)", &vars), "1-two");
        assert_eq!(expand("$$(A)", &vars), "$(A)");
        assert_eq!(expand("$(C) $(A", &vars), "$(C) $(A");
        assert_eq!(expand("cost $5", &vars), "cost $5");
    }
}
