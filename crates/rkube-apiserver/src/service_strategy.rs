//! What upstream's Service strategy and REST storage do to an update before it is validated
//! and allocated (`pkg/registry/core/service/strategy.go` `dropTypeDependentFields`, and
//! `storage/storage.go` `patchAllocatedValues` and `normalizeClusterIPs`): a Service is a union
//! discriminated by its type, so fields the new type has no use for are cleared when the
//! client left them as they were, and allocated values a client left out are kept.

use serde_json::{Map, Value, json};

fn spec(service: &Value) -> &Value {
    &service["spec"]
}

fn service_type(service: &Value) -> &str {
    spec(service)["type"].as_str().unwrap_or("ClusterIP")
}

fn text<'a>(service: &'a Value, field: &str) -> &'a str {
    spec(service)[field].as_str().unwrap_or("")
}

fn list<'a>(service: &'a Value, field: &str) -> &'a [Value] {
    spec(service)[field]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn needs_cluster_ip(service: &Value) -> bool {
    service_type(service) != "ExternalName"
}

fn needs_node_port(service: &Value) -> bool {
    matches!(service_type(service), "NodePort" | "LoadBalancer")
}

fn needs_health_check_node_port(service: &Value) -> bool {
    service_type(service) == "LoadBalancer" && text(service, "externalTrafficPolicy") == "Local"
}

/// Upstream's `ExternallyAccessible`.
fn externally_accessible(service: &Value) -> bool {
    needs_node_port(service)
        || (service_type(service) == "ClusterIP" && !list(service, "externalIPs").is_empty())
}

fn same_cluster_ips(old: &Value, new: &Value) -> bool {
    text(old, "clusterIP") == text(new, "clusterIP")
        && list(old, "clusterIPs") == list(new, "clusterIPs")
}

fn node_ports(service: &Value) -> Vec<u64> {
    list(service, "ports")
        .iter()
        .filter_map(|p| p["nodePort"].as_u64().filter(|n| *n > 0))
        .collect()
}

fn spec_mut(service: &mut Value) -> Option<&mut Map<String, Value>> {
    service.get_mut("spec").and_then(Value::as_object_mut)
}

/// Applies upstream's update preparation for a Service replacing `old` with `new`.
pub(crate) fn prepare_for_update(new: &mut Value, old: &Value) {
    drop_type_dependent_fields(new, old);
    patch_allocated_values(new, old);
    normalize_cluster_ips(new, old);
}

/// Clears what the new type does not use, where the client did not change it.
fn drop_type_dependent_fields(new: &mut Value, old: &Value) {
    let drop_ips = needs_cluster_ip(old) && !needs_cluster_ip(new);
    let same_ips = same_cluster_ips(old, new);
    let same_families = list(old, "ipFamilies") == list(new, "ipFamilies");
    let same_policy = text(old, "ipFamilyPolicy") == text(new, "ipFamilyPolicy");
    // Users may add, remove or change ports, as long as they add no new NodePort.
    let old_ports = node_ports(old);
    let drop_node_ports = needs_node_port(old)
        && !needs_node_port(new)
        && node_ports(new).iter().all(|p| old_ports.contains(p));
    let drop_health_check = needs_health_check_node_port(old)
        && !needs_health_check_node_port(new)
        && spec(old)["healthCheckNodePort"] == spec(new)["healthCheckNodePort"];
    let leaves_load_balancer =
        service_type(old) == "LoadBalancer" && service_type(new) != "LoadBalancer";
    let old_allocate = spec(old)["allocateLoadBalancerNodePorts"].as_bool();
    let drop_allocate = leaves_load_balancer
        && old_allocate.is_some()
        && old_allocate == spec(new)["allocateLoadBalancerNodePorts"].as_bool();
    let drop_class =
        leaves_load_balancer && spec(old)["loadBalancerClass"] == spec(new)["loadBalancerClass"];
    let drop_external_policy = externally_accessible(old)
        && !externally_accessible(new)
        && text(old, "externalTrafficPolicy") == text(new, "externalTrafficPolicy");
    let not_load_balancer = service_type(new) != "LoadBalancer";
    let Some(spec) = spec_mut(new) else {
        return;
    };
    if drop_ips {
        if same_ips {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
        if same_families {
            spec.remove("ipFamilies");
        }
        if same_policy {
            spec.remove("ipFamilyPolicy");
        }
    }
    if drop_node_ports {
        for port in spec
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(port) = port.as_object_mut() {
                port.remove("nodePort");
            }
        }
    }
    if drop_health_check {
        spec.remove("healthCheckNodePort");
    }
    if drop_allocate {
        spec.remove("allocateLoadBalancerNodePorts");
    }
    if drop_class {
        spec.remove("loadBalancerClass");
    }
    if drop_external_policy {
        spec.remove("externalTrafficPolicy");
    }
    // A load balancer's status means nothing once the Service is no longer one.
    if not_load_balancer && new["status"].is_object() {
        new["status"]["loadBalancer"] = json!({});
    }
}

/// Keeps allocated values a client left out (it resubmitted what it created, say).
fn patch_allocated_values(new: &mut Value, old: &Value) {
    let keep_ips = needs_cluster_ip(old) && needs_cluster_ip(new);
    let keep_node_ports = needs_node_port(old) && needs_node_port(new);
    let keep_health_check = needs_health_check_node_port(old) && needs_health_check_node_port(new);
    let new_ports = node_ports(new);
    // NodePorts the new object already uses are not patched in again.
    let used: Vec<u64> = node_ports(old)
        .into_iter()
        .filter(|p| new_ports.contains(p))
        .collect();
    let old_by_name: Vec<(String, u64)> = list(old, "ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("").to_owned(),
                p["nodePort"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let Some(spec) = spec_mut(new) else {
        return;
    };
    if keep_ips {
        let unset = spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if unset && let Some(ip) = old["spec"].get("clusterIP") {
            spec.insert("clusterIP".into(), ip.clone());
        }
        let no_ips = spec
            .get("clusterIPs")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if no_ips && !list(old, "clusterIPs").is_empty() {
            spec.insert("clusterIPs".into(), old["spec"]["clusterIPs"].clone());
        }
    }
    if keep_node_ports {
        for port in spec
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if port["nodePort"].as_u64().unwrap_or(0) != 0 {
                continue;
            }
            let name = port["name"].as_str().unwrap_or("");
            // Matched by name, as upstream does (the last old port of that name wins).
            let old_port = old_by_name
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, p)| *p);
            if old_port != 0 && !used.contains(&old_port) {
                port["nodePort"] = json!(old_port);
            }
        }
    }
    if keep_health_check
        && spec
            .get("healthCheckNodePort")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            == 0
        && let Some(port) = old["spec"].get("healthCheckNodePort")
    {
        spec.insert("healthCheckNodePort".into(), port.clone());
    }
}

/// Keeps `clusterIP` and `clusterIPs` in step when a client wrote only one of them.
fn normalize_cluster_ips(new: &mut Value, old: &Value) {
    let old_ip = text(old, "clusterIP").to_owned();
    let old_ips = list(old, "clusterIPs").to_vec();
    let new_ip = text(new, "clusterIP").to_owned();
    let same_list = list(old, "clusterIPs") == list(new, "clusterIPs");
    let Some(spec) = spec_mut(new) else {
        return;
    };
    let new_ips_empty = spec
        .get("clusterIPs")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    // An old client that sent clusterIP alone.
    if !old_ips.is_empty() && new_ips_empty && old_ip == new_ip {
        spec.insert("clusterIPs".into(), Value::Array(old_ips));
    }
    if old_ip != new_ip && same_list {
        if !old_ip.is_empty() && new_ip.is_empty() {
            spec.remove("clusterIPs");
        } else {
            spec.insert("clusterIPs".into(), json!([new_ip]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(spec: Value) -> Value {
        json!({"metadata": {"name": "s"}, "spec": spec, "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.9"}]}}})
    }

    #[test]
    fn becoming_external_name_clears_the_addresses_and_ports_left_as_they_were() {
        let old = service(json!({
            "type": "LoadBalancer", "clusterIP": "10.43.0.7", "clusterIPs": ["10.43.0.7"],
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "externalTrafficPolicy": "Cluster", "allocateLoadBalancerNodePorts": true,
            "ports": [{"port": 80, "nodePort": 30080}],
        }));
        let mut new = old.clone();
        new["spec"]["type"] = json!("ExternalName");
        new["spec"]["externalName"] = json!("example.com");
        prepare_for_update(&mut new, &old);
        assert_eq!(
            new["spec"],
            json!({"type": "ExternalName", "externalName": "example.com", "ports": [{"port": 80}]})
        );
        assert_eq!(new["status"]["loadBalancer"], json!({}));
    }

    #[test]
    fn a_changed_address_is_left_for_validation_to_refuse() {
        let old = service(
            json!({"type": "ClusterIP", "clusterIP": "10.43.0.7", "clusterIPs": ["10.43.0.7"]}),
        );
        let mut new = service(
            json!({"type": "ExternalName", "clusterIP": "10.43.0.8", "clusterIPs": ["10.43.0.8"]}),
        );
        prepare_for_update(&mut new, &old);
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.43.0.8"]));
    }

    #[test]
    fn allocated_values_a_client_left_out_are_kept() {
        let old = service(json!({
            "type": "NodePort", "clusterIP": "10.43.0.7", "clusterIPs": ["10.43.0.7"],
            "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "https", "port": 443, "nodePort": 30443}],
        }));
        let mut new = service(json!({
            "type": "NodePort",
            "ports": [{"name": "http", "port": 8080}, {"name": "https", "port": 443, "nodePort": 30080}],
        }));
        prepare_for_update(&mut new, &old);
        assert_eq!(new["spec"]["clusterIP"], "10.43.0.7");
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.43.0.7"]));
        // 30080 is taken by the https port now, so http does not get it back.
        assert!(new["spec"]["ports"][0].get("nodePort").is_none());
        assert_eq!(new["spec"]["ports"][1]["nodePort"], 30080);
    }

    #[test]
    fn becoming_cluster_ip_drops_unchanged_node_ports_only() {
        let old = service(
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}], "externalTrafficPolicy": "Cluster"}),
        );
        let mut kept = service(
            json!({"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30080}], "externalTrafficPolicy": "Cluster"}),
        );
        prepare_for_update(&mut kept, &old);
        assert!(kept["spec"]["ports"][0].get("nodePort").is_none());
        assert!(kept["spec"].get("externalTrafficPolicy").is_none());
        let mut added =
            service(json!({"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30081}]}));
        prepare_for_update(&mut added, &old);
        assert_eq!(added["spec"]["ports"][0]["nodePort"], 30081);
    }

    #[test]
    fn an_old_client_writing_cluster_ip_alone_keeps_the_list_in_step() {
        let old = service(json!({"clusterIP": "10.43.0.7", "clusterIPs": ["10.43.0.7"]}));
        let mut same = service(json!({"clusterIP": "10.43.0.7"}));
        prepare_for_update(&mut same, &old);
        assert_eq!(same["spec"]["clusterIPs"], json!(["10.43.0.7"]));
        let mut changed = service(json!({"clusterIP": "10.43.0.9", "clusterIPs": ["10.43.0.7"]}));
        prepare_for_update(&mut changed, &old);
        assert_eq!(changed["spec"]["clusterIPs"], json!(["10.43.0.9"]));
    }
}
