use super::*;
use crate::model::Protocol;

fn config() -> RulesConfig {
    RulesConfig {
        table: "rkube-proxy-test".to_owned(),
        cluster_cidr: Some("10.42.0.0/16".to_owned()),
        service_cidrs: vec!["10.43.0.0/16".to_owned()],
        nodeport_addresses: vec!["192.0.2.1/32".to_owned()],
    }
}

fn endpoint(ip: &str, local: bool) -> Endpoint {
    Endpoint {
        ip: ip.parse().unwrap(),
        port: 8080,
        ready: true,
        serving: true,
        terminating: false,
        local,
    }
}

fn port(name: &str, endpoints: Vec<Endpoint>) -> ServicePort {
    ServicePort {
        namespace: "ns".to_owned(),
        name: name.to_owned(),
        port_name: "http".to_owned(),
        protocol: Protocol::Tcp,
        cluster_ip: Some("10.43.0.10".parse().unwrap()),
        port: 80,
        node_port: None,
        external_ips: Vec::new(),
        load_balancer_ips: Vec::new(),
        affinity_timeout: None,
        internal_policy: TrafficPolicy::Cluster,
        external_policy: TrafficPolicy::Cluster,
        health_check_node_port: None,
        endpoints,
    }
}

#[test]
fn a_cluster_ip_balances_over_its_ready_endpoints() {
    let sp = port(
        "web",
        vec![endpoint("10.42.0.5", true), endpoint("10.42.1.5", false)],
    );
    let rs = build(&config(), &[sp]);
    assert_eq!(
        rs.maps[SERVICE_IPS]["10.43.0.10 . tcp . 80"],
        "goto svc-ns/web/tcp/http"
    );
    assert!(rs.sets[CLUSTER_IPS].contains("10.43.0.10"));
    let svc = &rs.chains["svc-ns/web/tcp/http"];
    assert_eq!(
        svc[0],
        "ip daddr 10.43.0.10 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade"
    );
    assert_eq!(
        svc[1],
        "meta l4proto tcp dnat ip addr . port to numgen random mod 2 offset 0 map @endpoints"
    );
    assert_eq!(rs.maps[ENDPOINTS]["0"], "10.42.0.5 . 8080");
    assert_eq!(rs.maps[ENDPOINTS]["1"], "10.42.1.5 . 8080");
    assert_eq!(rs.chains.len(), 1, "no endpoint chains without affinity");
    assert!(rs.sets[HAIRPIN].contains("10.42.0.5 . 10.42.0.5"));
    assert!(rs.sets[HAIRPIN].contains("10.42.1.5 . 10.42.1.5"));
    assert!(rs.maps[NO_ENDPOINT_SERVICES].is_empty());
}

#[test]
fn a_service_without_endpoints_is_rejected() {
    let rs = build(&config(), &[port("web", Vec::new())]);
    assert!(rs.maps[SERVICE_IPS].is_empty());
    assert_eq!(
        rs.maps[NO_ENDPOINT_SERVICES]["10.43.0.10 . tcp . 80"],
        "goto reject-chain"
    );
    assert!(rs.chains.is_empty());
}

#[test]
fn internal_traffic_policy_local_without_local_endpoints_drops() {
    let mut sp = port("web", vec![endpoint("10.42.1.5", false)]);
    sp.internal_policy = TrafficPolicy::Local;
    let rs = build(&config(), &[sp.clone()]);
    assert_eq!(
        rs.maps[NO_ENDPOINT_SERVICES]["10.43.0.10 . tcp . 80"],
        "drop"
    );
    sp.endpoints.push(endpoint("10.42.0.9", true));
    let rs = build(&config(), &[sp]);
    assert_eq!(
        rs.maps[SERVICE_IPS]["10.43.0.10 . tcp . 80"],
        "goto local-ns/web/tcp/http"
    );
    assert_eq!(
        rs.chains["local-ns/web/tcp/http"],
        ["meta l4proto tcp dnat ip addr . port to numgen random mod 1 offset 65536 map @endpoints"]
    );
}

#[test]
fn node_ports_with_local_policy_keep_other_nodes_traffic_local() {
    let mut sp = port("web", vec![endpoint("10.42.1.5", false)]);
    sp.node_port = Some(30080);
    sp.external_policy = TrafficPolicy::Local;
    sp.load_balancer_ips = vec!["192.0.2.1".parse().unwrap()];
    let rs = build(&config(), &[sp]);
    assert_eq!(
        rs.maps[SERVICE_NODEPORTS]["tcp . 30080"],
        "goto ext-ns/web/tcp/http"
    );
    assert_eq!(
        rs.maps[SERVICE_IPS]["192.0.2.1 . tcp . 80"],
        "goto ext-ns/web/tcp/http"
    );
    assert_eq!(
        rs.chains["ext-ns/web/tcp/http"],
        [
            "ip saddr 10.42.0.0/16 goto svc-ns/web/tcp/http",
            "fib saddr type local jump mark-for-masquerade",
            "fib saddr type local goto svc-ns/web/tcp/http",
            "drop"
        ]
    );
}

#[test]
fn node_ports_with_cluster_policy_masquerade() {
    let mut sp = port("web", vec![endpoint("10.42.1.5", false)]);
    sp.node_port = Some(30080);
    let rs = build(&config(), &[sp]);
    assert_eq!(
        rs.chains["ext-ns/web/tcp/http"],
        ["jump mark-for-masquerade", "goto svc-ns/web/tcp/http"]
    );
    assert!(rs.sets[NODEPORT_IPS].contains("192.0.2.1/32"));
}

#[test]
fn client_affinity_remembers_the_endpoint_per_source() {
    let mut sp = port("web", vec![endpoint("10.42.0.5", true)]);
    sp.affinity_timeout = Some(60);
    let rs = build(&config(), &[sp]);
    let set = "affinity-ns/web/tcp/http/10.42.0.5/8080";
    assert_eq!(rs.affinity[set], 60);
    assert_eq!(
        rs.chains["svc-ns/web/tcp/http"][1],
        format!("ip saddr @{set} goto ep-ns/web/tcp/http/10.42.0.5/8080")
    );
    assert_eq!(
        rs.chains["svc-ns/web/tcp/http"][2],
        "goto ep-ns/web/tcp/http/10.42.0.5/8080"
    );
    assert_eq!(
        rs.chains["ep-ns/web/tcp/http/10.42.0.5/8080"],
        [
            format!("update @{set} {{ ip saddr }}"),
            "meta l4proto tcp dnat to 10.42.0.5:8080".to_owned()
        ]
    );
}

#[test]
fn the_first_service_keeps_a_contested_external_address() {
    let mut a = port("a", vec![endpoint("10.42.0.5", true)]);
    a.external_ips = vec!["192.0.2.50".parse().unwrap()];
    let mut b = port("b", vec![endpoint("10.42.0.6", true)]);
    b.cluster_ip = Some("10.43.0.11".parse().unwrap());
    b.external_ips = a.external_ips.clone();
    let rs = build(&config(), &[a, b]);
    assert_eq!(
        rs.maps[SERVICE_IPS]["192.0.2.50 . tcp . 80"],
        "goto ext-ns/a/tcp/http"
    );
}

#[test]
fn a_change_to_one_service_touches_only_its_chains_and_elements() {
    let web = port("web", vec![endpoint("10.42.0.5", true)]);
    let mut api = port("api", vec![endpoint("10.42.0.7", true)]);
    api.cluster_ip = Some("10.43.0.11".parse().unwrap());
    let old = build(&config(), &[api.clone(), web.clone()]);
    let mut web2 = web.clone();
    web2.endpoints = vec![endpoint("10.42.0.6", true)];
    let new = build_from(&config(), &[api.clone(), web2.clone()], &old);
    let script = diff_script(&config(), &old, &new).unwrap();
    assert!(!script.contains("api"), "{script}");
    let lines: Vec<&str> = script.lines().collect();
    let t = "ip rkube-proxy-test";
    assert_eq!(
        lines,
        [
            format!("delete element {t} endpoints {{ 65536 }}"),
            format!("add element {t} endpoints {{ 65536 : 10.42.0.6 . 8080 }}"),
            format!("delete element {t} hairpin {{ 10.42.0.5 . 10.42.0.5 }}"),
            format!("add element {t} hairpin {{ 10.42.0.6 . 10.42.0.6 }}"),
        ]
    );
    assert_eq!(diff_script(&config(), &new, &new), None);
    // A change in the number of endpoints rewrites the chain; its block stays.
    let mut web3 = web2;
    web3.endpoints.push(endpoint("10.42.0.8", true));
    let newer = build_from(&config(), &[api, web3], &new);
    let script = diff_script(&config(), &new, &newer).unwrap();
    assert!(
        script.contains(&format!(
            "add rule {t} svc-ns/web/tcp/http meta l4proto tcp dnat ip addr . port to numgen random mod 2 offset 65536 map @endpoints"
        )),
        "{script}"
    );
    assert!(script.contains(&format!(
        "add element {t} endpoints {{ 65537 : 10.42.0.8 . 8080 }}"
    )));
}

#[test]
fn new_chains_never_take_a_block_the_previous_rule_set_used() {
    let web = port("web", vec![endpoint("10.42.0.5", true)]);
    let mut api = port("api", vec![endpoint("10.42.0.7", true)]);
    api.cluster_ip = Some("10.43.0.11".parse().unwrap());
    let old = build(&config(), &[web]);
    assert_eq!(old.blocks["svc-ns/web/tcp/http"], 0);
    let new = build_from(&config(), &[api], &old);
    assert_eq!(new.blocks["svc-ns/api/tcp/http"], 1);
    assert!(!new.blocks.contains_key("svc-ns/web/tcp/http"));
}

#[test]
fn a_removed_service_loses_its_elements_before_its_chains() {
    let web = port("web", vec![endpoint("10.42.0.5", true)]);
    let old = build(&config(), &[web]);
    let new = build(&config(), &[]);
    let script = diff_script(&config(), &old, &new).unwrap();
    let element = script.find("delete element").unwrap();
    let chain = script.find("delete chain").unwrap();
    assert!(element < chain, "{script}");
    assert!(script.contains("delete element ip rkube-proxy-test cluster-ips { 10.43.0.10 }"));
}

#[test]
fn the_full_script_declares_before_it_refers() {
    let mut sp = port("web", vec![endpoint("10.42.0.5", true)]);
    sp.affinity_timeout = Some(30);
    sp.node_port = Some(30080);
    let script = full_script(&config(), &build(&config(), &[sp]));
    let first = |needle: &str| script.find(needle).unwrap_or_else(|| panic!("{needle}"));
    assert!(first("add chain ip rkube-proxy-test svc-ns/web/tcp/http") < first("goto svc-ns"));
    assert!(first("add set ip rkube-proxy-test affinity-") < first("@affinity-"));
    assert!(first("add chain ip rkube-proxy-test reject-chain") < first("add element"));
    assert!(
        script.starts_with("add table ip rkube-proxy-test\ndelete table ip rkube-proxy-test\n")
    );
}
