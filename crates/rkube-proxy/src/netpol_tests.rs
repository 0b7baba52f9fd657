//! The policy rules, checked by what they let through: a small interpreter runs a packet
//! through the computed chains as the forward hook would.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::json;

use super::*;
use crate::dataplane::Recorder;
use crate::netpol::{Enforcer, NAMESPACE_NAME_LABEL};
use crate::netpol_script::{diff_script, full_script};

const NODE: &str = "node-a";

fn ip(text: &str) -> Ipv4Addr {
    text.parse().unwrap()
}

/// A pod on `node` with labels `k=v,…` and named ports `name/proto/port,…`.
fn pod(ns: &str, name: &str, addr: &str, node: &str, labels: &[(&str, &str)]) -> PodInfo {
    PodInfo {
        namespace: ns.to_owned(),
        name: name.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ip: Some(ip(addr)),
        node: Some(node.to_owned()),
        host_network: false,
        terminal: false,
        ports: Vec::new(),
    }
}

fn with_port(mut p: PodInfo, name: &str, protocol: Protocol, port: u16) -> PodInfo {
    p.ports.push(crate::netpol::NamedPort {
        name: name.to_owned(),
        protocol,
        port,
    });
    p
}

fn policy(ns: &str, name: &str, spec: serde_json::Value) -> Policy {
    let np: NetworkPolicy = serde_json::from_value(json!({
        "metadata": { "namespace": ns, "name": name },
        "spec": spec,
    }))
    .unwrap();
    Policy::from_network_policy(&np)
}

struct World {
    cluster: Cluster,
}

impl World {
    fn new() -> World {
        World {
            cluster: Cluster::default(),
        }
    }

    fn pod(mut self, p: PodInfo) -> World {
        self.cluster
            .pods
            .insert((p.namespace.clone(), p.name.clone()), p);
        self
    }

    fn namespace(mut self, name: &str, labels: &[(&str, &str)]) -> World {
        self.cluster.namespaces.insert(
            name.to_owned(),
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        self
    }

    fn policy(mut self, p: Policy) -> World {
        self.cluster
            .policies
            .insert((p.namespace.clone(), p.name.clone()), p);
        self
    }

    fn rules(&self) -> Ruleset {
        build(&self.cluster, NODE)
    }

    /// Whether a new TCP connection from `src` to `dst:port` passes.
    fn tcp(&self, src: &str, dst: &str, port: u16) -> bool {
        allowed(&self.rules(), src, dst, Protocol::Tcp, port)
    }
}

/// Runs a packet through the forward chain of `rs`.
fn allowed(rs: &Ruleset, src: &str, dst: &str, protocol: Protocol, port: u16) -> bool {
    let packet = Packet {
        src: ip(src),
        dst: ip(dst),
        protocol,
        port,
    };
    let egress_ok = rs
        .egress
        .get(&packet.src)
        .is_none_or(|chain| run_chain(rs, &rs.chains[chain], &packet));
    let ingress_ok = rs
        .ingress
        .get(&packet.dst)
        .is_none_or(|chain| run_chain(rs, &rs.chains[chain], &packet));
    egress_ok && ingress_ok
}

struct Packet {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: Protocol,
    port: u16,
}

fn in_ranges(text: &str, value: u32, parse: impl Fn(&str) -> u32) -> bool {
    let text = text.trim().trim_start_matches('{').trim_end_matches('}');
    text.split(',')
        .map(str::trim)
        .any(|item| match item.split_once('-') {
            Some((lo, hi)) => (parse(lo)..=parse(hi)).contains(&value),
            None => parse(item) == value,
        })
}

fn in_set(rs: &Ruleset, set: &str, addr: Ipv4Addr) -> bool {
    rs.address_sets[set]
        .iter()
        .any(|e| in_ranges(e, u32::from(addr), |a| u32::from(ip(a))))
}

/// True when the chain returns (allowed), false when it drops. Knows exactly the rule forms
/// the builder writes, and fails on any other.
fn run_chain(rs: &Ruleset, rules: &[String], p: &Packet) -> bool {
    'rules: for rule in rules {
        if rule == "drop" {
            return false;
        }
        let mut rest = rule.as_str();
        if let Some(r) = rest.strip_prefix("ip daddr . meta l4proto . th dport @") {
            let set = r.strip_suffix(" return").unwrap();
            let key = format!("{} . {} . {}", p.dst, p.protocol.nft(), p.port);
            if rs.port_sets[set].contains(&key) {
                return true;
            }
            continue;
        }
        for (field, addr) in [("ip saddr ", p.src), ("ip daddr ", p.dst)] {
            if let Some(r) = rest.strip_prefix(field) {
                let (what, r) = r.split_once(' ').unwrap();
                let hit = match what.strip_prefix('@') {
                    Some(set) => in_set(rs, set, addr),
                    None => ip(what) == addr,
                };
                if !hit {
                    continue 'rules;
                }
                rest = r;
            }
        }
        if let Some(r) = rest.strip_prefix("meta l4proto ") {
            let (proto, r) = r.split_once(' ').unwrap();
            if proto != p.protocol.nft() {
                continue;
            }
            rest = r;
        }
        if let Some(r) = rest.strip_prefix("th dport ") {
            let ports = r.strip_suffix(" return").unwrap();
            if !in_ranges(ports, u32::from(p.port), |x| x.parse().unwrap()) {
                continue;
            }
            rest = "return";
        }
        assert_eq!(rest, "return", "unknown rule form: {rule}");
        return true;
    }
    panic!("chain without a final drop: {rules:?}");
}

fn two_pods() -> World {
    World::new()
        .pod(pod(
            "default",
            "server",
            "10.42.0.10",
            NODE,
            &[("app", "server")],
        ))
        .pod(pod(
            "default",
            "client",
            "10.42.0.11",
            NODE,
            &[("app", "client")],
        ))
        .pod(pod(
            "default",
            "other",
            "10.42.1.12",
            "node-b",
            &[("app", "other")],
        ))
}

#[test]
fn pods_no_policy_selects_accept_and_send_everything() {
    let w = two_pods().policy(policy(
        "default",
        "nothing",
        json!({ "podSelector": { "matchLabels": { "app": "absent" } } }),
    ));
    assert!(w.rules().is_empty());
    assert!(w.tcp("10.42.0.11", "10.42.0.10", 80));
    assert_eq!(
        full_script("t", &w.rules()),
        "add table ip t\ndelete table ip t\n",
        "with nothing to police the table goes"
    );
}

#[test]
fn a_default_deny_policy_isolates_the_pods_it_selects_for_ingress_only() {
    let w = two_pods().policy(policy(
        "default",
        "deny",
        json!({ "podSelector": { "matchLabels": { "app": "server" } } }),
    ));
    assert!(!w.tcp("10.42.0.11", "10.42.0.10", 80));
    assert!(!w.tcp("10.42.1.12", "10.42.0.10", 80));
    // The client is not selected; the server may still send (no Egress type).
    assert!(w.tcp("10.42.0.10", "10.42.0.11", 80));
    assert!(w.tcp("10.42.0.10", "192.0.2.1", 443));
    let rs = w.rules();
    assert_eq!(rs.ingress.len(), 1);
    assert!(rs.egress.is_empty());
}

#[test]
fn an_empty_pod_selector_selects_every_pod_of_the_namespace_and_no_other() {
    let w = two_pods()
        .pod(pod("prod", "db", "10.42.0.20", NODE, &[]))
        .policy(policy("default", "deny-all", json!({ "podSelector": {} })));
    assert!(!w.tcp("10.42.0.20", "10.42.0.10", 80));
    assert!(!w.tcp("10.42.0.20", "10.42.0.11", 80));
    assert!(w.tcp("10.42.0.10", "10.42.0.20", 80));
}

#[test]
fn pods_of_other_nodes_are_left_to_their_nodes() {
    let w = two_pods().policy(policy("default", "deny-all", json!({ "podSelector": {} })));
    let rs = w.rules();
    assert!(!rs.ingress.contains_key(&ip("10.42.1.12")));
    assert_eq!(rs.ingress.len(), 2);
}

#[test]
fn a_pod_selector_peer_allows_matching_pods_of_the_policy_namespace_only() {
    let w = two_pods()
        .pod(pod("other-ns", "client", "10.42.0.30", NODE, &[("app", "client")]))
        .policy(policy(
            "default",
            "from-clients",
            json!({
                "podSelector": { "matchLabels": { "app": "server" } },
                "ingress": [{ "from": [{ "podSelector": { "matchLabels": { "app": "client" } } }] }],
            }),
        ));
    assert!(w.tcp("10.42.0.11", "10.42.0.10", 80));
    assert!(!w.tcp("10.42.1.12", "10.42.0.10", 80));
    assert!(
        !w.tcp("10.42.0.30", "10.42.0.10", 80),
        "same labels, other namespace"
    );
}

#[test]
fn a_namespace_selector_peer_allows_every_pod_of_matching_namespaces() {
    let w = two_pods()
        .namespace("team-a", &[("team", "a")])
        .namespace("team-b", &[("team", "b")])
        .pod(pod("team-a", "x", "10.42.0.30", NODE, &[]))
        .pod(pod("team-b", "y", "10.42.0.31", NODE, &[]))
        .policy(policy(
            "default",
            "from-team-a",
            json!({
                "podSelector": {},
                "ingress": [{ "from": [{ "namespaceSelector": { "matchLabels": { "team": "a" } } }] }],
            }),
        ));
    assert!(w.tcp("10.42.0.30", "10.42.0.10", 80));
    assert!(!w.tcp("10.42.0.31", "10.42.0.10", 80));
    assert!(
        !w.tcp("10.42.0.11", "10.42.0.10", 80),
        "the policy's own namespace is not team a"
    );
}

#[test]
fn namespace_and_pod_selectors_in_one_peer_both_must_match_but_two_peers_are_either() {
    let world = || {
        two_pods()
            .namespace("team-a", &[("team", "a")])
            .pod(pod("team-a", "web", "10.42.0.30", NODE, &[("role", "web")]))
            .pod(pod("team-a", "db", "10.42.0.31", NODE, &[("role", "db")]))
            .pod(pod(
                "default",
                "web",
                "10.42.0.32",
                NODE,
                &[("role", "web")],
            ))
    };
    let and = world().policy(policy(
        "default",
        "and",
        json!({
            "podSelector": { "matchLabels": { "app": "server" } },
            "ingress": [{ "from": [{
                "namespaceSelector": { "matchLabels": { "team": "a" } },
                "podSelector": { "matchLabels": { "role": "web" } },
            }] }],
        }),
    ));
    assert!(and.tcp("10.42.0.30", "10.42.0.10", 80));
    assert!(!and.tcp("10.42.0.31", "10.42.0.10", 80));
    assert!(!and.tcp("10.42.0.32", "10.42.0.10", 80));
    let or = world().policy(policy(
        "default",
        "or",
        json!({
            "podSelector": { "matchLabels": { "app": "server" } },
            "ingress": [{ "from": [
                { "namespaceSelector": { "matchLabels": { "team": "a" } } },
                { "podSelector": { "matchLabels": { "role": "web" } } },
            ] }],
        }),
    ));
    assert!(or.tcp("10.42.0.30", "10.42.0.10", 80));
    assert!(or.tcp("10.42.0.31", "10.42.0.10", 80));
    assert!(or.tcp("10.42.0.32", "10.42.0.10", 80));
    assert!(!or.tcp("10.42.0.11", "10.42.0.10", 80));
}

#[test]
fn namespaces_are_selected_by_their_name_label_and_by_expressions() {
    let w = two_pods()
        .namespace("team-a", &[("tier", "gold")])
        .pod(pod("team-a", "x", "10.42.0.30", NODE, &[("app", "x")]))
        .pod(pod("team-b", "y", "10.42.0.31", NODE, &[("app", "y")]))
        .policy(policy(
            "default",
            "by-name",
            json!({
                "podSelector": {},
                "ingress": [{ "from": [{ "namespaceSelector": { "matchLabels": {
                    NAMESPACE_NAME_LABEL: "team-b"
                } } }] }, { "from": [{
                    "namespaceSelector": { "matchExpressions": [
                        { "key": "tier", "operator": "In", "values": ["gold", "silver"] }
                    ] },
                    "podSelector": { "matchExpressions": [
                        { "key": "app", "operator": "NotIn", "values": ["y"] }
                    ] },
                }] }],
            }),
        ));
    assert!(
        w.tcp("10.42.0.31", "10.42.0.10", 80),
        "team-b was never seen but has its name"
    );
    assert!(w.tcp("10.42.0.30", "10.42.0.10", 80));
    assert!(!w.tcp("10.42.0.11", "10.42.0.10", 80));
}

#[test]
fn ip_blocks_allow_their_cidr_less_the_excepts() {
    let w = two_pods().policy(policy(
        "default",
        "cidr",
        json!({
            "podSelector": { "matchLabels": { "app": "server" } },
            "ingress": [{ "from": [{ "ipBlock": {
                "cidr": "192.0.2.0/24",
                "except": ["192.0.2.128/25", "192.0.2.7/32"],
            } }] }],
        }),
    ));
    assert!(w.tcp("192.0.2.1", "10.42.0.10", 80));
    assert!(w.tcp("192.0.2.127", "10.42.0.10", 80));
    assert!(!w.tcp("192.0.2.7", "10.42.0.10", 80));
    assert!(!w.tcp("192.0.2.200", "10.42.0.10", 80));
    assert!(!w.tcp("198.51.100.1", "10.42.0.10", 80));
    assert!(!w.tcp("10.42.0.11", "10.42.0.10", 80));
    let rs = w.rules();
    let set: Vec<&String> = rs.address_sets.values().next().unwrap().iter().collect();
    assert_eq!(set, ["192.0.2.0-192.0.2.6", "192.0.2.8-192.0.2.127"]);
}

#[test]
fn an_address_in_one_peers_except_is_allowed_by_another_peer() {
    let w = two_pods().policy(policy(
        "default",
        "overlap",
        json!({
            "podSelector": { "matchLabels": { "app": "server" } },
            "ingress": [{ "from": [
                { "ipBlock": { "cidr": "10.42.0.0/16", "except": ["10.42.0.0/24"] } },
                { "podSelector": { "matchLabels": { "app": "client" } } },
            ] }],
        }),
    ));
    assert!(w.tcp("10.42.0.11", "10.42.0.10", 80));
    assert!(w.tcp("10.42.1.12", "10.42.0.10", 80));
    assert!(!w.tcp("10.42.0.99", "10.42.0.10", 80));
}

#[test]
fn ports_limit_rules_by_number_range_and_protocol() {
    let w = two_pods().policy(policy(
        "default",
        "ports",
        json!({
            "podSelector": { "matchLabels": { "app": "server" } },
            "ingress": [{ "ports": [
                { "port": 80 },
                { "protocol": "TCP", "port": 8000, "endPort": 8080 },
                { "protocol": "UDP", "port": 53 },
                { "protocol": "SCTP" },
            ] }],
        }),
    ));
    let rs = w.rules();
    let can = |proto, port| allowed(&rs, "10.42.0.11", "10.42.0.10", proto, port);
    assert!(can(Protocol::Tcp, 80));
    assert!(can(Protocol::Tcp, 8000));
    assert!(can(Protocol::Tcp, 8080));
    assert!(!can(Protocol::Tcp, 8081));
    assert!(!can(Protocol::Tcp, 53), "53 is allowed for UDP only");
    assert!(can(Protocol::Udp, 53));
    assert!(!can(Protocol::Udp, 80));
    assert!(
        can(Protocol::Sctp, 9999),
        "a protocol without a port allows all its ports"
    );
}

#[test]
fn a_policy_for_udp_only_does_not_allow_tcp() {
    let w = two_pods().policy(policy(
        "default",
        "udp",
        json!({
            "podSelector": { "matchLabels": { "app": "server" } },
            "ingress": [{ "ports": [{ "protocol": "UDP", "port": 80 }] }],
        }),
    ));
    assert!(!w.tcp("10.42.0.11", "10.42.0.10", 80));
    assert!(allowed(
        &w.rules(),
        "10.42.0.11",
        "10.42.0.10",
        Protocol::Udp,
        80
    ));
}

#[test]
fn a_named_ingress_port_is_the_port_of_that_name_on_the_local_pod() {
    let w = World::new()
        .pod(with_port(
            pod("default", "a", "10.42.0.10", NODE, &[("app", "s")]),
            "http",
            Protocol::Tcp,
            8080,
        ))
        .pod(with_port(
            pod("default", "b", "10.42.0.11", NODE, &[("app", "s")]),
            "http",
            Protocol::Tcp,
            9090,
        ))
        .pod(pod("default", "c", "10.42.0.12", NODE, &[("app", "s")]))
        .pod(pod("default", "client", "10.42.0.20", NODE, &[]))
        .policy(policy(
            "default",
            "named",
            json!({
                "podSelector": { "matchLabels": { "app": "s" } },
                "ingress": [{ "ports": [{ "port": "http" }] }],
            }),
        ));
    assert!(w.tcp("10.42.0.20", "10.42.0.10", 8080));
    assert!(!w.tcp("10.42.0.20", "10.42.0.10", 9090));
    assert!(w.tcp("10.42.0.20", "10.42.0.11", 9090));
    assert!(!w.tcp("10.42.0.20", "10.42.0.11", 8080));
    assert!(
        !w.tcp("10.42.0.20", "10.42.0.12", 8080),
        "c has no port named http"
    );
    // The name is per protocol.
    assert!(!allowed(
        &w.rules(),
        "10.42.0.20",
        "10.42.0.10",
        Protocol::Udp,
        8080
    ));
}

#[test]
fn a_named_egress_port_is_the_port_of_that_name_on_the_destination() {
    let w = World::new()
        .pod(pod(
            "default",
            "client",
            "10.42.0.20",
            NODE,
            &[("app", "client")],
        ))
        .pod(with_port(
            with_port(
                pod("default", "a", "10.42.0.10", NODE, &[("app", "s")]),
                "dns",
                Protocol::Udp,
                5353,
            ),
            "admin",
            Protocol::Tcp,
            7000,
        ))
        .pod(with_port(
            with_port(
                pod("other", "b", "10.42.1.11", "node-b", &[("app", "s")]),
                "dns",
                Protocol::Udp,
                53,
            ),
            "admin",
            Protocol::Tcp,
            7000,
        ))
        .pod(with_port(
            pod("default", "c", "10.42.1.12", "node-b", &[("app", "c")]),
            "dns",
            Protocol::Udp,
            53,
        ))
        .policy(policy(
            "default",
            "egress",
            json!({
                "podSelector": { "matchLabels": { "app": "client" } },
                "policyTypes": ["Egress"],
                "egress": [
                    { "ports": [{ "protocol": "UDP", "port": "dns" }] },
                    {
                        "to": [{ "podSelector": { "matchLabels": { "app": "c" } } }],
                        "ports": [{ "protocol": "TCP", "port": "dns" }],
                    },
                    {
                        "to": [{ "ipBlock": { "cidr": "10.42.0.0/24" } }],
                        "ports": [{ "protocol": "TCP", "port": "admin" }],
                    },
                ],
            }),
        ));
    let rs = w.rules();
    let udp = |dst, port| allowed(&rs, "10.42.0.20", dst, Protocol::Udp, port);
    assert!(udp("10.42.0.10", 5353));
    assert!(!udp("10.42.0.10", 53));
    assert!(
        udp("10.42.1.11", 53),
        "any destination with the name, in any namespace"
    );
    assert!(!udp("192.0.2.1", 53), "a name resolves on pods only");
    assert!(!w.tcp("10.42.0.20", "10.42.1.12", 53), "c's dns is UDP");
    // A name with an ipBlock: the pods in the block that have it.
    assert!(w.tcp("10.42.0.20", "10.42.0.10", 7000));
    assert!(
        !w.tcp("10.42.0.20", "10.42.1.11", 7000),
        "outside the block"
    );
    assert!(!w.tcp("10.42.0.20", "10.42.0.10", 7001));
}

#[test]
fn egress_is_isolated_by_egress_rules_or_the_egress_policy_type() {
    let w = two_pods()
        .pod(pod(
            "default",
            "db",
            "10.42.1.30",
            "node-b",
            &[("app", "db")],
        ))
        .policy(policy(
            "default",
            "client-egress",
            json!({
                "podSelector": { "matchLabels": { "app": "client" } },
                "egress": [{
                    "to": [{ "podSelector": { "matchLabels": { "app": "db" } } }],
                    "ports": [{ "port": 5432 }],
                }],
            }),
        ));
    // Defaulted policyTypes: Ingress and Egress, so ingress to the client is isolated too.
    assert!(w.tcp("10.42.0.11", "10.42.1.30", 5432));
    assert!(!w.tcp("10.42.0.11", "10.42.1.30", 80));
    assert!(!w.tcp("10.42.0.11", "10.42.0.10", 5432));
    assert!(!w.tcp("10.42.0.10", "10.42.0.11", 80));
    assert!(
        w.tcp("10.42.0.10", "10.42.1.30", 80),
        "the server is not isolated"
    );

    let egress_only = two_pods().policy(policy(
        "default",
        "deny-egress",
        json!({ "podSelector": {}, "policyTypes": ["Egress"] }),
    ));
    assert!(!egress_only.tcp("10.42.0.11", "10.42.0.10", 80));
    assert!(!egress_only.tcp("10.42.0.11", "192.0.2.1", 443));
    assert!(
        egress_only.tcp("10.42.1.12", "10.42.0.10", 80),
        "ingress is not isolated"
    );
}

#[test]
fn egress_denied_by_the_client_wins_over_ingress_allowed_by_the_server() {
    let w = two_pods()
        .policy(policy(
            "default",
            "server-allows-all",
            json!({
                "podSelector": { "matchLabels": { "app": "server" } },
                "ingress": [{}],
            }),
        ))
        .policy(policy(
            "default",
            "client-denies",
            json!({ "podSelector": { "matchLabels": { "app": "client" } }, "policyTypes": ["Egress"] }),
        ));
    assert!(!w.tcp("10.42.0.11", "10.42.0.10", 80));
    assert!(w.tcp("10.42.1.12", "10.42.0.10", 80));
}

#[test]
fn policies_selecting_one_pod_add_up() {
    let w = two_pods()
        .pod(pod(
            "default",
            "third",
            "10.42.0.13",
            NODE,
            &[("app", "third")],
        ))
        .policy(policy(
            "default",
            "from-client-80",
            json!({
                "podSelector": { "matchLabels": { "app": "server" } },
                "ingress": [{
                    "from": [{ "podSelector": { "matchLabels": { "app": "client" } } }],
                    "ports": [{ "port": 80 }],
                }],
            }),
        ))
        .policy(policy(
            "default",
            "from-third-81",
            json!({
                "podSelector": {},
                "ingress": [{
                    "from": [{ "podSelector": { "matchLabels": { "app": "third" } } }],
                    "ports": [{ "port": 81 }],
                }],
            }),
        ));
    assert!(w.tcp("10.42.0.11", "10.42.0.10", 80));
    assert!(!w.tcp("10.42.0.11", "10.42.0.10", 81));
    assert!(w.tcp("10.42.0.13", "10.42.0.10", 81));
    assert!(!w.tcp("10.42.0.13", "10.42.0.10", 80));
    // The second policy selects the client too.
    assert!(!w.tcp("10.42.0.10", "10.42.0.11", 80));
    assert!(w.tcp("10.42.0.13", "10.42.0.11", 81));
}

#[test]
fn an_allow_all_policy_takes_precedence_over_a_deny_all_one() {
    let w = two_pods()
        .policy(policy("default", "deny", json!({ "podSelector": {} })))
        .policy(policy(
            "default",
            "allow",
            json!({ "podSelector": {}, "ingress": [{ "from": [] }] }),
        ));
    assert!(w.tcp("10.42.1.12", "10.42.0.10", 80));
    assert!(w.tcp("192.0.2.9", "10.42.0.11", 1234));
}

#[test]
fn a_rule_whose_peers_match_nothing_allows_nothing() {
    let w = two_pods().policy(policy(
        "default",
        "nobody",
        json!({
            "podSelector": { "matchLabels": { "app": "server" } },
            "ingress": [{ "from": [{ "podSelector": { "matchLabels": { "app": "ghost" } } }] }],
        }),
    ));
    assert!(!w.tcp("10.42.0.11", "10.42.0.10", 80));
    assert!(w.rules().address_sets.is_empty());
}

#[test]
fn host_network_finished_and_addressless_pods_are_neither_policed_nor_peers() {
    let mut host = pod("default", "host", "192.0.2.10", NODE, &[("app", "client")]);
    host.host_network = true;
    let mut done = pod("default", "done", "10.42.0.40", NODE, &[("app", "client")]);
    done.terminal = true;
    let mut pending = pod(
        "default",
        "pending",
        "10.42.0.41",
        NODE,
        &[("app", "client")],
    );
    pending.ip = None;
    let w = two_pods().pod(host).pod(done).pod(pending).policy(policy(
        "default",
        "everything",
        json!({
            "podSelector": {},
            "ingress": [{ "from": [{ "podSelector": { "matchLabels": { "app": "client" } } }] }],
        }),
    ));
    let rs = w.rules();
    let isolated: Vec<&Ipv4Addr> = rs.ingress.keys().collect();
    assert_eq!(isolated, [&ip("10.42.0.10"), &ip("10.42.0.11")]);
    assert!(!w.tcp("192.0.2.10", "10.42.0.10", 80));
    assert!(!w.tcp("10.42.0.40", "10.42.0.10", 80));
    assert!(w.tcp("10.42.0.11", "10.42.0.10", 80));
}

#[test]
fn an_isolated_pod_still_reaches_itself() {
    let w = two_pods().policy(policy(
        "default",
        "deny-both",
        json!({ "podSelector": {}, "policyTypes": ["Ingress", "Egress"] }),
    ));
    assert!(w.tcp("10.42.0.10", "10.42.0.10", 80));
    assert!(!w.tcp("10.42.0.10", "10.42.0.11", 80));
}

#[test]
fn two_pods_with_one_address_give_the_address_to_the_first() {
    let w = two_pods()
        .pod(pod(
            "default",
            "zz-stale",
            "10.42.0.10",
            NODE,
            &[("app", "server")],
        ))
        .policy(policy("default", "deny", json!({ "podSelector": {} })));
    let rs = w.rules();
    assert_eq!(rs.ingress[&ip("10.42.0.10")], "ingress-default/server");
    assert!(!rs.chains.contains_key("ingress-default/zz-stale"));
}

#[test]
fn the_script_declares_everything_before_the_hooked_chain_that_uses_it() {
    let w = two_pods().policy(policy(
        "default",
        "p",
        json!({
            "podSelector": { "matchLabels": { "app": "server" } },
            "ingress": [{ "from": [{ "podSelector": { "matchLabels": { "app": "client" } } }] }],
        }),
    ));
    let script = full_script("rkube-netpol-cni0", &w.rules());
    let lines: Vec<&str> = script.lines().collect();
    assert_eq!(lines[0], "add table ip rkube-netpol-cni0");
    assert_eq!(lines[1], "delete table ip rkube-netpol-cni0");
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("{needle} missing from\n{script}"))
    };
    let set = at("add set ip rkube-netpol-cni0 from-default/p-0 ");
    let chain = at("add chain ip rkube-netpol-cni0 ingress-default/server");
    let map = at(
        "add element ip rkube-netpol-cni0 ingress-pods { 10.42.0.10 : jump ingress-default/server }",
    );
    let base =
        at("add chain ip rkube-netpol-cni0 forward { type filter hook forward priority filter");
    assert!(set < chain && chain < map && map < base);
    assert_eq!(
        &lines[base + 1..],
        [
            "add rule ip rkube-netpol-cni0 forward ct state established,related accept",
            "add rule ip rkube-netpol-cni0 forward ip saddr vmap @egress-pods",
            "add rule ip rkube-netpol-cni0 forward ip daddr vmap @ingress-pods",
        ]
    );
}

#[test]
fn names_too_long_for_nftables_are_hashed() {
    let long = "x".repeat(250);
    let w = World::new()
        .pod(pod("default", &long, "10.42.0.10", NODE, &[]))
        .policy(policy("default", "deny", json!({ "podSelector": {} })));
    let rs = w.rules();
    let chain = &rs.ingress[&ip("10.42.0.10")];
    assert!(chain.starts_with("ingress-") && chain.len() == "ingress-".len() + 16);
    assert_eq!(build(&w.cluster, NODE), rs, "the hash is stable");
}

#[test]
fn unknown_protocols_and_ipv6_blocks_match_nothing() {
    let w = two_pods().policy(policy(
        "default",
        "odd",
        json!({
            "podSelector": { "matchLabels": { "app": "server" } },
            "ingress": [
                { "ports": [{ "protocol": "ICMP", "port": 1 }] },
                { "from": [{ "ipBlock": { "cidr": "::/0" } }] },
            ],
        }),
    ));
    assert!(!w.tcp("10.42.0.11", "10.42.0.10", 1));
}

#[test]
fn the_enforcer_applies_only_changes_and_rewrites_after_a_failure() {
    let recorder = Arc::new(Recorder::default());
    let mut enforcer = Enforcer::new("t", recorder.clone());
    let mut w = two_pods();
    assert!(
        enforcer.sync(&w.cluster, NODE).unwrap(),
        "the first sync always writes"
    );
    assert!(!enforcer.sync(&w.cluster, NODE).unwrap());
    w = w.policy(policy("default", "deny", json!({ "podSelector": {} })));
    assert!(enforcer.sync(&w.cluster, NODE).unwrap());
    // A pod on another node changes nothing here.
    w = w.pod(pod("default", "far", "10.42.1.50", "node-b", &[]));
    assert!(!enforcer.sync(&w.cluster, NODE).unwrap());
    *recorder.fail_next.lock().unwrap() = true;
    w = w.pod(pod("default", "near", "10.42.0.50", NODE, &[]));
    assert!(enforcer.sync(&w.cluster, NODE).is_err());
    assert!(enforcer.sync(&w.cluster, NODE).unwrap(), "retried in full");
    let scripts = recorder.scripts.lock().unwrap();
    assert_eq!(scripts.len(), 3);
    assert!(scripts[2].starts_with("add table ip t\ndelete table ip t\n"));
    assert!(scripts[2].contains("10.42.0.50 : jump ingress-default/near"));
}

#[test]
fn later_syncs_write_only_what_changed() {
    let recorder = Arc::new(Recorder::default());
    let mut enforcer = Enforcer::new("t", recorder.clone());
    let from_clients = policy(
        "default",
        "from-clients",
        json!({
            "podSelector": { "matchLabels": { "app": "server" } },
            "ingress": [{ "from": [{ "podSelector": { "matchLabels": { "app": "client" } } }] }],
        }),
    );
    let mut w = two_pods().policy(from_clients);
    enforcer.sync(&w.cluster, NODE).unwrap();
    // A new client joins the peer set: one element, nothing else.
    w = w.pod(pod(
        "default",
        "client-2",
        "10.42.1.13",
        "node-b",
        &[("app", "client")],
    ));
    enforcer.sync(&w.cluster, NODE).unwrap();
    // A local pod the policy selects: its chain and map element.
    w = w.pod(pod(
        "default",
        "server-2",
        "10.42.0.14",
        NODE,
        &[("app", "server")],
    ));
    enforcer.sync(&w.cluster, NODE).unwrap();
    // It goes again.
    w.cluster
        .pods
        .remove(&("default".to_owned(), "server-2".to_owned()));
    enforcer.sync(&w.cluster, NODE).unwrap();
    let scripts = recorder.scripts.lock().unwrap();
    assert_eq!(
        scripts[1],
        "add element ip t from-default/from-clients-0 { 10.42.1.13 }\n"
    );
    assert_eq!(
        scripts[2],
        "add chain ip t ingress-default/server-2\n\
         add rule ip t ingress-default/server-2 ip saddr 10.42.0.14 return\n\
         add rule ip t ingress-default/server-2 ip saddr @from-default/from-clients-0 return\n\
         add rule ip t ingress-default/server-2 drop\n\
         add element ip t ingress-pods { 10.42.0.14 : jump ingress-default/server-2 }\n"
    );
    assert_eq!(
        scripts[3],
        "delete element ip t ingress-pods { 10.42.0.14 }\n\
         flush chain ip t ingress-default/server-2\n\
         delete chain ip t ingress-default/server-2\n"
    );
}

#[test]
fn a_change_that_empties_or_fills_the_table_is_written_whole() {
    let empty = Ruleset::default();
    let w = two_pods().policy(policy("default", "deny", json!({ "podSelector": {} })));
    let rs = w.rules();
    assert_eq!(diff_script("t", &empty, &empty), None);
    assert_eq!(diff_script("t", &rs, &rs), None);
    assert_eq!(diff_script("t", &empty, &rs), Some(full_script("t", &rs)));
    assert_eq!(
        diff_script("t", &rs, &empty).as_deref(),
        Some("add table ip t\ndelete table ip t\n")
    );
}

#[test]
fn pods_are_read_with_their_address_phase_and_named_ports() {
    let p: Pod = serde_json::from_value(json!({
        "metadata": { "namespace": "ns", "name": "p", "labels": { "a": "b" } },
        "spec": {
            "nodeName": NODE,
            "containers": [{ "name": "c", "ports": [
                { "name": "http", "containerPort": 8080 },
                { "name": "dns", "containerPort": 53, "protocol": "UDP" },
                { "containerPort": 9000 },
            ] }],
            "initContainers": [{ "name": "side", "ports": [{ "name": "metrics", "containerPort": 9100 }] }],
        },
        "status": { "phase": "Running", "podIP": "10.42.0.9", "podIPs": [{ "ip": "fd00::9" }, { "ip": "10.42.0.9" }] },
    }))
    .unwrap();
    let info = PodInfo::from_pod(&p);
    assert_eq!(info.ip, Some(ip("10.42.0.9")));
    assert_eq!(info.node.as_deref(), Some(NODE));
    assert!(info.is_policed());
    assert_eq!(info.named_port("http", Protocol::Tcp), Some(8080));
    assert_eq!(info.named_port("dns", Protocol::Udp), Some(53));
    assert_eq!(info.named_port("dns", Protocol::Tcp), None);
    assert_eq!(info.named_port("metrics", Protocol::Tcp), Some(9100));
    let mut done = p;
    done.status.as_mut().unwrap().phase = Some("Succeeded".to_owned());
    assert!(!PodInfo::from_pod(&done).is_policed());
}

#[test]
fn policy_types_default_as_upstream() {
    let ingress_only = policy("ns", "a", json!({ "podSelector": {}, "egress": [] }));
    assert!(ingress_only.ingress.is_some() && ingress_only.egress.is_none());
    let both = policy("ns", "b", json!({ "podSelector": {}, "egress": [{}] }));
    assert!(both.ingress.is_some() && both.egress.is_some());
    let egress = policy(
        "ns",
        "c",
        json!({ "podSelector": {}, "policyTypes": ["Egress"], "ingress": [{}] }),
    );
    assert!(egress.ingress.is_none() && egress.egress.is_some());
}

/// Type-checked, never run: the agent spawns `run` on the multi-threaded runtime.
#[allow(dead_code)]
fn run_can_be_spawned(client: kube::Client, dataplane: Arc<dyn crate::dataplane::Dataplane>) {
    let config = crate::netpol::NetpolConfig::for_bridge("node-a", "cni0");
    tokio::spawn(crate::netpol::run(
        client,
        config,
        dataplane,
        std::future::pending(),
    ));
}
