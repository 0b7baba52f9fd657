//! The nftables table that enforces NetworkPolicies for one node's pods, as data
//! ([`netpol_script`](crate::netpol_script) writes it). Pure: no I/O.
//!
//! Layout (family ip): one base chain on the forward hook at priority filter — after the
//! service proxy's DNAT, so destinations are pod addresses — accepts packets of established
//! and related connections, then sends a packet from a pod isolated for egress to that pod's
//! `egress-<ns>/<pod>` chain (verdict map `egress-pods`, keyed by source address) and a packet
//! to a pod isolated for ingress to its `ingress-<ns>/<pod>` chain (`ingress-pods`, keyed by
//! destination). A pod chain returns for what some rule allows and drops the rest. Each rule's
//! peers are one interval set (`from-…`/`to-…`: pod addresses and ipBlocks less their
//! excepts); named ports are resolved on the pod the traffic goes to — the local pod for
//! ingress, an `address . protocol . port` set (`ports-…`) of destination pods for egress.
//!
//! Traffic between a pod and its own node never crosses the forward hook (the node's packets
//! leave through output and arrive through input), which is how upstream's "traffic to and
//! from the node is always allowed" holds without a rule; host-network pods are the node's.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use kube::core::SelectorExt;

use crate::model::Protocol;
use crate::netpol::{Cluster, Labels, Peer, PodInfo, Policy, PolicyPort, PortRef, Rule};

/// Local pod address to its ingress chain.
pub const INGRESS_PODS: &str = "ingress-pods";
/// Local pod address to its egress chain.
pub const EGRESS_PODS: &str = "egress-pods";

/// Names longer than this are shortened to a hash (nftables allows 255 bytes).
const MAX_NAME: usize = 200;

/// A computed table: sets, per-pod chains and the pods they police. The base chain and the
/// map declarations are fixed and written by [`full_script`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Peer address sets (interval): name to disjoint elements, `a` or `a-b`.
    pub address_sets: BTreeMap<String, BTreeSet<String>>,
    /// Named-port destination sets: name to `address . protocol . port` elements.
    pub port_sets: BTreeMap<String, BTreeSet<String>>,
    /// Per-pod chains: name to rules, the last one `drop`.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Pods isolated for ingress: address to chain.
    pub ingress: BTreeMap<Ipv4Addr, String>,
    /// Pods isolated for egress: address to chain.
    pub egress: BTreeMap<Ipv4Addr, String>,
}

impl Ruleset {
    /// Whether no pod of the node is isolated (then there is no table at all).
    pub fn is_empty(&self) -> bool {
        self.ingress.is_empty() && self.egress.is_empty()
    }

    /// The number of rules and elements.
    pub fn size(&self) -> usize {
        self.address_sets.values().map(BTreeSet::len).sum::<usize>()
            + self.port_sets.values().map(BTreeSet::len).sum::<usize>()
            + self.chains.values().map(Vec::len).sum::<usize>()
            + self.ingress.len()
            + self.egress.len()
    }
}

/// Which side of a pod a policy rule guards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    fn rules(self, policy: &Policy) -> Option<&Vec<Rule>> {
        match self {
            Direction::Ingress => policy.ingress.as_ref(),
            Direction::Egress => policy.egress.as_ref(),
        }
    }

    /// The peer's address field.
    fn peer_field(self) -> &'static str {
        match self {
            Direction::Ingress => "ip saddr",
            Direction::Egress => "ip daddr",
        }
    }

    fn chain_prefix(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }

    fn set_prefix(self) -> &'static str {
        match self {
            Direction::Ingress => "from",
            Direction::Egress => "to",
        }
    }
}

/// An nftables name `<prefix>-<body>`, or `<prefix>-<hash of body>` when that is too long.
fn nft_name(prefix: &str, body: &str) -> String {
    if prefix.len() + 1 + body.len() <= MAX_NAME {
        return format!("{prefix}-{body}");
    }
    // FNV-1a: stable across runs and builds, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in body.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{prefix}-{hash:016x}")
}

/// Sorts and joins inclusive ranges that overlap or touch.
fn merge(mut ranges: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    ranges.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if u64::from(lo) <= u64::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

fn cidr_range((addr, len): (Ipv4Addr, u8)) -> (u32, u32) {
    let lo = u32::from(addr);
    let size = 1u64 << (32 - u32::from(len.min(32)));
    (
        lo,
        u32::try_from(u64::from(lo) + size - 1).unwrap_or(u32::MAX),
    )
}

/// An ipBlock's addresses: its CIDR less every except.
fn block_ranges(cidr: (Ipv4Addr, u8), except: &[(Ipv4Addr, u8)]) -> Vec<(u32, u32)> {
    let mut ranges = vec![cidr_range(cidr)];
    for e in except {
        let (elo, ehi) = cidr_range(*e);
        ranges = ranges
            .into_iter()
            .flat_map(|(lo, hi)| {
                let mut keep = Vec::new();
                // What lies below the except and what lies above it (the whole range when
                // they do not meet).
                if elo > lo {
                    keep.push((lo, hi.min(elo - 1)));
                }
                if ehi < hi {
                    keep.push((lo.max(ehi + 1), hi));
                }
                keep
            })
            .collect();
    }
    ranges
}

fn range_text(lo: u32, hi: u32, show: impl Fn(u32) -> String) -> String {
    if lo == hi {
        show(lo)
    } else {
        format!("{}-{}", show(lo), show(hi))
    }
}

/// What a rule's peers match, as an nftables expression.
enum PeerMatch {
    /// Every address.
    Any,
    /// The addresses of a set.
    Set(String),
    /// No address: the rule allows nothing.
    Nothing,
}

struct Builder<'a> {
    cluster: &'a Cluster,
    /// Pods policies see (not host-network, not finished, with an address), in name order.
    live: Vec<&'a PodInfo>,
    namespace_labels: BTreeMap<&'a str, Labels>,
    rs: Ruleset,
    peer_sets: BTreeMap<(Direction, &'a str, &'a str, usize), String>,
    port_sets: BTreeMap<(&'a str, &'a str, usize), String>,
}

impl<'a> Builder<'a> {
    fn labels_of(&self, namespace: &str) -> Option<&Labels> {
        self.namespace_labels.get(namespace)
    }

    /// Whether a pod peer of `policy` matches `pod`.
    fn peer_matches(&self, policy: &Policy, peer: &Peer, pod: &PodInfo) -> bool {
        let Peer::Pods { namespaces, pods } = peer else {
            return false;
        };
        let namespace_ok = match namespaces {
            None => pod.namespace == policy.namespace,
            Some(selector) => self
                .labels_of(&pod.namespace)
                .is_some_and(|labels| selector.matches(labels)),
        };
        namespace_ok && pods.as_ref().is_none_or(|s| s.matches(&pod.labels))
    }

    fn peer_ranges(&self, policy: &Policy, peers: &[Peer]) -> Vec<(u32, u32)> {
        let mut ranges = Vec::new();
        for peer in peers {
            match peer {
                Peer::Pods { .. } => ranges.extend(
                    self.live
                        .iter()
                        .filter(|pod| self.peer_matches(policy, peer, pod))
                        .filter_map(|pod| pod.ip)
                        .map(|ip| (u32::from(ip), u32::from(ip))),
                ),
                Peer::Block { cidr, except } => ranges.extend(block_ranges(*cidr, except)),
                Peer::Nothing => {}
            }
        }
        merge(ranges)
    }

    /// The peer set of rule `index` of `policy`, made once for every pod it guards.
    fn peer_match(&mut self, dir: Direction, policy: &'a Policy, index: usize) -> PeerMatch {
        let Some(peers) = dir
            .rules(policy)
            .and_then(|r| r.get(index))
            .map(|r| &r.peers)
        else {
            return PeerMatch::Nothing;
        };
        let Some(peers) = peers else {
            return PeerMatch::Any;
        };
        let key = (dir, policy.namespace.as_str(), policy.name.as_str(), index);
        if let Some(name) = self.peer_sets.get(&key) {
            return PeerMatch::Set(name.clone());
        }
        let ranges = self.peer_ranges(policy, peers);
        if ranges.is_empty() {
            return PeerMatch::Nothing;
        }
        let name = nft_name(
            dir.set_prefix(),
            &format!("{}/{}-{index}", policy.namespace, policy.name),
        );
        let elements = ranges
            .iter()
            .map(|(lo, hi)| range_text(*lo, *hi, |a| Ipv4Addr::from(a).to_string()))
            .collect();
        self.rs.address_sets.insert(name.clone(), elements);
        self.peer_sets.insert(key, name.clone());
        PeerMatch::Set(name)
    }

    /// The destinations of egress rule `index` whose named ports it allows, as a set of
    /// `address . protocol . port`; `None` when there are none.
    fn named_port_set(&mut self, policy: &'a Policy, index: usize) -> Option<String> {
        let key = (policy.namespace.as_str(), policy.name.as_str(), index);
        if let Some(name) = self.port_sets.get(&key) {
            return Some(name.clone());
        }
        let rule = policy.egress.as_ref()?.get(index)?;
        let names: Vec<(&str, Protocol)> = rule
            .ports
            .iter()
            .flatten()
            .filter_map(|p| match &p.port {
                PortRef::Name(name) => Some((name.as_str(), p.protocol)),
                _ => None,
            })
            .collect();
        if names.is_empty() {
            return None;
        }
        let blocks: Vec<Vec<(u32, u32)>> = rule
            .peers
            .iter()
            .flatten()
            .filter_map(|p| match p {
                Peer::Block { cidr, except } => Some(block_ranges(*cidr, except)),
                _ => None,
            })
            .collect();
        let mut elements = BTreeSet::new();
        for pod in &self.live {
            let Some(ip) = pod.ip else { continue };
            let to_it = match &rule.peers {
                None => true,
                Some(peers) => {
                    peers.iter().any(|p| self.peer_matches(policy, p, pod))
                        || blocks
                            .iter()
                            .flatten()
                            .any(|(lo, hi)| (*lo..=*hi).contains(&u32::from(ip)))
                }
            };
            if !to_it {
                continue;
            }
            for (name, protocol) in &names {
                if let Some(port) = pod.named_port(name, *protocol) {
                    elements.insert(format!("{ip} . {} . {port}", protocol.nft()));
                }
            }
        }
        if elements.is_empty() {
            return None;
        }
        let name = nft_name(
            "ports",
            &format!("{}/{}-{index}", policy.namespace, policy.name),
        );
        self.rs.port_sets.insert(name.clone(), elements);
        self.port_sets.insert(key, name.clone());
        Some(name)
    }

    /// The rules allowing what rule `index` of `policy` allows for `pod`.
    fn rule_lines(
        &mut self,
        dir: Direction,
        policy: &'a Policy,
        index: usize,
        pod: &PodInfo,
        out: &mut Vec<String>,
    ) {
        let Some(rule) = dir.rules(policy).and_then(|r| r.get(index)) else {
            return;
        };
        let peer = match self.peer_match(dir, policy, index) {
            PeerMatch::Any => String::new(),
            PeerMatch::Set(set) => format!("{} @{set} ", dir.peer_field()),
            // No peer address: nothing can match, named ports included.
            PeerMatch::Nothing => return,
        };
        let Some(ports) = &rule.ports else {
            out.push(format!("{peer}return"));
            return;
        };
        // Protocol to port ranges; `None`: every port of the protocol.
        let mut by_protocol: BTreeMap<Protocol, Option<Vec<(u32, u32)>>> = BTreeMap::new();
        let mut add = |protocol: Protocol, range: Option<(u32, u32)>| {
            let entry = by_protocol
                .entry(protocol)
                .or_insert_with(|| Some(Vec::new()));
            match (entry.as_mut(), range) {
                (Some(ranges), Some(range)) => ranges.push(range),
                (_, None) => *entry = None,
                (None, Some(_)) => {}
            }
        };
        let mut named_egress = false;
        for PolicyPort { protocol, port } in ports {
            match port {
                PortRef::All => add(*protocol, None),
                PortRef::Number { port, end } => {
                    let lo = u32::from(*port);
                    add(
                        *protocol,
                        Some((lo, u32::from(end.unwrap_or(*port)).max(lo))),
                    );
                }
                PortRef::Name(name) => match dir {
                    Direction::Ingress => {
                        if let Some(port) = pod.named_port(name, *protocol) {
                            add(*protocol, Some((u32::from(port), u32::from(port))));
                        }
                    }
                    Direction::Egress => named_egress = true,
                },
            }
        }
        for (protocol, ranges) in by_protocol {
            let p = protocol.nft();
            match ranges {
                None => out.push(format!("{peer}meta l4proto {p} return")),
                // One rule per range: an anonymous set (`{ 80, 443 }`) is a set object of its
                // own in the kernel and made a rewrite several times slower.
                Some(ranges) => {
                    for (lo, hi) in merge(ranges) {
                        let ports = range_text(lo, hi, |port| port.to_string());
                        out.push(format!("{peer}meta l4proto {p} th dport {ports} return"));
                    }
                }
            }
        }
        if named_egress && let Some(set) = self.named_port_set(policy, index) {
            out.push(format!("ip daddr . meta l4proto . th dport @{set} return"));
        }
    }

    fn police(&mut self, pod: &'a PodInfo, selecting: &[&'a Policy]) {
        let Some(ip) = pod.ip else { return };
        for dir in [Direction::Ingress, Direction::Egress] {
            let typed: Vec<&'a Policy> = selecting
                .iter()
                .copied()
                .filter(|p| dir.rules(p).is_some())
                .collect();
            let taken = match dir {
                Direction::Ingress => self.rs.ingress.contains_key(&ip),
                Direction::Egress => self.rs.egress.contains_key(&ip),
            };
            // Two live pods with one address is a passing state; the first by name keeps it.
            if typed.is_empty() || taken {
                continue;
            }
            // A pod cannot block its own traffic (upstream's exception), e.g. through a Service.
            let mut lines = vec![format!("{} {ip} return", dir.peer_field())];
            for policy in typed {
                let count = dir.rules(policy).map_or(0, Vec::len);
                for index in 0..count {
                    self.rule_lines(dir, policy, index, pod, &mut lines);
                }
            }
            lines.push("drop".to_owned());
            let chain = nft_name(
                dir.chain_prefix(),
                &format!("{}/{}", pod.namespace, pod.name),
            );
            self.rs.chains.insert(chain.clone(), lines);
            match dir {
                Direction::Ingress => self.rs.ingress.insert(ip, chain),
                Direction::Egress => self.rs.egress.insert(ip, chain),
            };
        }
    }
}

/// The table for `cluster`'s policies on the pods of `node`.
pub fn build(cluster: &Cluster, node: &str) -> Ruleset {
    let live: Vec<&PodInfo> = cluster.pods.values().filter(|p| p.is_policed()).collect();
    let namespace_labels = live
        .iter()
        .map(|p| p.namespace.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|ns| (ns, cluster.namespace_labels(ns)))
        .collect();
    let mut b = Builder {
        cluster,
        live,
        namespace_labels,
        rs: Ruleset::default(),
        peer_sets: BTreeMap::new(),
        port_sets: BTreeMap::new(),
    };
    let local: Vec<&PodInfo> = b
        .live
        .iter()
        .copied()
        .filter(|p| p.node.as_deref() == Some(node))
        .collect();
    for pod in local {
        let selecting: Vec<&Policy> = b
            .cluster
            .policies
            .values()
            .filter(|p| p.namespace == pod.namespace && p.pod_selector.matches(&pod.labels))
            .collect();
        if !selecting.is_empty() {
            b.police(pod, &selecting);
        }
    }
    b.rs
}

#[cfg(test)]
#[path = "netpol_tests.rs"]
mod tests;
