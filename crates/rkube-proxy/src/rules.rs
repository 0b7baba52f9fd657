//! The nftables rule set for a list of service ports, as data, and the `nft -f` scripts that
//! create it whole or change one applied rule set into another. Pure: no I/O.
//!
//! The layout follows upstream's nftables proxy: verdict maps keyed by
//! `address . protocol . port` (and `protocol . node port`) send new connections to one chain
//! per service port, which picks an endpoint at random and DNATs to it through the
//! `endpoints` map: each balancing chain owns a block of the map's keys and draws
//! `numgen random mod n offset <block start>`, so an endpoint that changes is a map element
//! that changes, and only a change in the number of endpoints rewrites the chain. Block numbers
//! stay with their chain from one build to the next. Ports with client affinity instead have a
//! chain per endpoint (it records the client in the endpoint's affinity set) picked by rules
//! that each take the connection with probability `1/(n-k)`. The table thus holds about one
//! chain per service port and no anonymous sets, which keeps each `nft` run's cost (it reads
//! the table's chains and sets first) low in big clusters. A pod reaching itself through a
//! service (hairpin) is
//! masqueraded by the `hairpin` set of `endpoint . endpoint` pairs. Service ports without
//! usable endpoints are in the `no-endpoint-*` maps, which reject (or drop, for a Local
//! traffic policy) before NAT is tried. Traffic to a cluster IP on a port that is not served is rejected, and to an address
//! of the service range that no Service holds, dropped, so it never leaves the node.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::model::{Endpoint, ServicePort, TrafficPolicy};

/// The packet mark that asks for masquerading in postrouting (upstream's 0x4000 bit).
pub const MASQUERADE_MARK: u32 = 0x4000;

/// The verdict maps.
pub const SERVICE_IPS: &str = "service-ips";
/// `protocol . node port` to the external chain.
pub const SERVICE_NODEPORTS: &str = "service-nodeports";
/// `address . protocol . port` of service ports without endpoints: reject or drop.
pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
/// `protocol . node port` of service ports without endpoints.
pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
/// Every cluster IP served.
pub const CLUSTER_IPS: &str = "cluster-ips";
/// The node addresses node ports are served on.
pub const NODEPORT_IPS: &str = "nodeport-ips";
/// Balancing key (block start + endpoint index) to `endpoint address . port`.
pub const ENDPOINTS: &str = "endpoints";
/// Keys per balancing chain in [`ENDPOINTS`].
pub const BLOCK: u32 = 1 << 16;
/// `endpoint . endpoint` for every endpoint: a connection DNATed back to its own source.
pub const HAIRPIN: &str = "hairpin";

const ALL_MAPS: [&str; 5] = [
    SERVICE_IPS,
    SERVICE_NODEPORTS,
    NO_ENDPOINT_SERVICES,
    NO_ENDPOINT_NODEPORTS,
    ENDPOINTS,
];

/// What the rules depend on besides the services.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesConfig {
    /// The nftables table (family ip), owned by this proxy alone.
    pub table: String,
    /// The pod network: traffic to a cluster IP from outside it is masqueraded, and pods
    /// reaching an externalTrafficPolicy Local service through an external address are
    /// treated as cluster traffic.
    pub cluster_cidr: Option<String>,
    /// The Service address ranges: addresses in them that no Service holds are dropped.
    pub service_cidrs: Vec<String>,
    /// The local address ranges node ports are served on (upstream's `--nodeport-addresses`,
    /// CIDRs); empty: every local address but loopback (as upstream's iptables mode and k3s
    /// serve them).
    pub nodeport_addresses: Vec<String>,
}

/// A rule set: the per-service chains, the map and set elements and the affinity sets. The
/// base chains and the declarations are fixed and written by [`full_script`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Per-service-port chains: name to rules.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Verdict map elements: map to key to verdict.
    pub maps: BTreeMap<&'static str, BTreeMap<String, String>>,
    /// Address set elements: set to addresses.
    pub sets: BTreeMap<&'static str, BTreeSet<String>>,
    /// Client affinity sets: name to timeout in seconds.
    pub affinity: BTreeMap<String, u32>,
    /// Balancing chain to its block of [`ENDPOINTS`] keys.
    pub blocks: BTreeMap<String, u32>,
}

impl Ruleset {
    /// The number of rules and elements, for metrics.
    pub fn size(&self) -> usize {
        self.chains.values().map(Vec::len).sum::<usize>()
            + self.maps.values().map(BTreeMap::len).sum::<usize>()
            + self.sets.values().map(BTreeSet::len).sum::<usize>()
    }
}

fn endpoint_chain(key: &str, e: &Endpoint) -> String {
    format!("ep-{key}/{}/{}", e.ip, e.port)
}

fn affinity_set(key: &str, e: &Endpoint) -> String {
    format!("affinity-{key}/{}/{}", e.ip, e.port)
}

/// The rule set serving `ports`.
pub fn build(config: &RulesConfig, ports: &[ServicePort]) -> Ruleset {
    build_from(config, ports, &Ruleset::default())
}

/// The rule set serving `ports`, its balancing chains keeping the [`ENDPOINTS`] blocks they
/// had in `previous`.
pub fn build_from(config: &RulesConfig, ports: &[ServicePort], previous: &Ruleset) -> Ruleset {
    let mut rs = empty(config);
    let mut blocks = Blocks::new(
        previous.blocks.clone(),
        previous.blocks.values().copied().collect(),
    );
    for port in ports {
        merge(&mut rs, port_part(config, &mut blocks, port));
    }
    rs
}

/// A rule set with nothing but the fixed sets and maps.
pub fn empty(config: &RulesConfig) -> Ruleset {
    let mut rs = Ruleset::default();
    for map in ALL_MAPS {
        rs.maps.insert(map, BTreeMap::new());
    }
    rs.sets.insert(CLUSTER_IPS, BTreeSet::new());
    rs.sets.insert(HAIRPIN, BTreeSet::new());
    rs.sets.insert(
        NODEPORT_IPS,
        config.nodeport_addresses.iter().cloned().collect(),
    );
    rs
}

/// One service port's part of a rule set: its chains, affinity sets and blocks (named after
/// the port, so no other part has them), the map elements it claims and the set elements it
/// needs (which other parts may share).
pub fn port_part(config: &RulesConfig, blocks: &mut Blocks, sp: &ServicePort) -> Ruleset {
    let mut part = Ruleset::default();
    add_service_port(config, &mut part, blocks, sp);
    part
}

/// Which keys of `map` compete with which: a map key is served by one Service only.
pub fn key_space(map: &str) -> u8 {
    match map {
        SERVICE_IPS | NO_ENDPOINT_SERVICES => 0,
        SERVICE_NODEPORTS | NO_ENDPOINT_NODEPORTS => 1,
        _ => 2,
    }
}

/// Whether some map of `map`'s key space already has `key`.
fn claimed(rs: &Ruleset, map: &str, key: &str) -> bool {
    let space = key_space(map);
    rs.maps
        .iter()
        .filter(|(m, _)| key_space(m) == space)
        .any(|(_, elements)| elements.contains_key(key))
}

/// Adds `part` to `rs`; map keys another part already claimed stay with it.
fn merge(rs: &mut Ruleset, part: Ruleset) {
    rs.chains.extend(part.chains);
    rs.affinity.extend(part.affinity);
    rs.blocks.extend(part.blocks);
    for (set, elements) in part.sets {
        rs.sets.entry(set).or_default().extend(elements);
    }
    for (map, elements) in part.maps {
        for (key, value) in elements {
            if !claimed(rs, map, &key) {
                rs.maps.entry(map).or_default().insert(key, value);
            }
        }
    }
}

/// Hands out [`ENDPOINTS`] blocks: the block a chain had, else the lowest one not taken.
#[derive(Debug)]
pub struct Blocks<'a> {
    reuse: BTreeMap<String, u32>,
    taken: BTreeSet<u32>,
    also_taken: Option<&'a BTreeSet<u32>>,
    next: u32,
}

impl<'a> Blocks<'a> {
    /// Chains in `reuse` keep their blocks; new ones get blocks outside `taken`.
    pub fn new(reuse: BTreeMap<String, u32>, taken: BTreeSet<u32>) -> Blocks<'a> {
        Blocks {
            reuse,
            taken,
            also_taken: None,
            next: 0,
        }
    }

    /// New chains also avoid the blocks in `also`.
    pub fn avoiding(mut self, also: &'a BTreeSet<u32>) -> Blocks<'a> {
        self.also_taken = Some(also);
        self
    }

    fn is_taken(&self, block: u32) -> bool {
        self.taken.contains(&block) || self.also_taken.is_some_and(|t| t.contains(&block))
    }

    fn get(&mut self, chain: &str) -> Option<u32> {
        if let Some(block) = self.reuse.get(chain) {
            return Some(*block);
        }
        while self.is_taken(self.next) {
            self.next = self.next.checked_add(1)?;
        }
        if self.next >= u32::MAX / BLOCK {
            return None;
        }
        self.taken.insert(self.next);
        Some(self.next)
    }
}

/// Where traffic for a service port goes: a chain, or a verdict for the no-endpoint maps.
enum Target {
    Chain(String),
    Reject,
    Drop,
}

#[allow(clippy::too_many_arguments)]
fn balance(
    rs: &mut Ruleset,
    blocks: &mut Blocks,
    key: &str,
    chain: &str,
    endpoints: &[&Endpoint],
    affinity: Option<u32>,
    proto: &str,
    mut rules: Vec<String>,
) {
    let n = endpoints.len();
    let block = match u32::try_from(n) {
        Ok(count) if affinity.is_none() && count <= BLOCK => blocks.get(chain),
        _ => None,
    };
    if let Some(block) = block {
        let start = block * BLOCK;
        let map = rs.maps.entry(ENDPOINTS).or_default();
        for (k, e) in (start..).zip(endpoints) {
            map.insert(k.to_string(), format!("{} . {}", e.ip, e.port));
        }
        rules.push(format!(
            "meta l4proto {proto} dnat ip addr . port to numgen random mod {n} offset {start} map @{ENDPOINTS}"
        ));
        rs.blocks.insert(chain.to_owned(), block);
        rs.chains.insert(chain.to_owned(), rules);
        return;
    }
    if affinity.is_some() {
        for e in endpoints {
            rules.push(format!(
                "ip saddr @{} goto {}",
                affinity_set(key, e),
                endpoint_chain(key, e)
            ));
        }
    }
    for (k, e) in endpoints.iter().enumerate() {
        let action = if affinity.is_some() {
            format!("goto {}", endpoint_chain(key, e))
        } else {
            dnat(proto, e)
        };
        rules.push(if k + 1 < n {
            format!("numgen random mod {} 0 {action}", n - k)
        } else {
            action
        });
    }
    rs.chains.insert(chain.to_owned(), rules);
}

fn dnat(proto: &str, e: &Endpoint) -> String {
    format!("meta l4proto {proto} dnat to {}:{}", e.ip, e.port)
}

fn add_service_port(config: &RulesConfig, rs: &mut Ruleset, blocks: &mut Blocks, sp: &ServicePort) {
    let key = sp.key();
    let proto = sp.protocol.nft();
    let cluster = sp.cluster_endpoints();
    let local = sp.local_endpoints();
    // Endpoint chains for every endpoint any chain can pick.
    let mut used: BTreeSet<&Endpoint> = cluster.iter().copied().collect();
    let needs_local = sp.internal_policy == TrafficPolicy::Local
        || (sp.has_external() && sp.external_policy == TrafficPolicy::Local);
    if needs_local {
        used.extend(local.iter().copied());
    }
    for e in &used {
        rs.sets
            .entry(HAIRPIN)
            .or_default()
            .insert(format!("{} . {}", e.ip, e.ip));
        if let Some(timeout) = sp.affinity_timeout {
            let set = affinity_set(&key, e);
            let rules = vec![format!("update @{set} {{ ip saddr }}"), dnat(proto, e)];
            rs.chains.insert(endpoint_chain(&key, e), rules);
            rs.affinity.insert(set, timeout);
        }
    }
    let svc_chain = format!("svc-{key}");
    if !cluster.is_empty() {
        let mut rules = Vec::new();
        if let (Some(ip), Some(cidr)) = (sp.cluster_ip, &config.cluster_cidr) {
            rules.push(format!(
                "ip daddr {ip} {proto} dport {} ip saddr != {cidr} jump mark-for-masquerade",
                sp.port
            ));
        }
        balance(
            rs,
            blocks,
            &key,
            &svc_chain,
            &cluster,
            sp.affinity_timeout,
            proto,
            rules,
        );
    }
    let local_chain = format!("local-{key}");
    if needs_local && !local.is_empty() {
        balance(
            rs,
            blocks,
            &key,
            &local_chain,
            &local,
            sp.affinity_timeout,
            proto,
            Vec::new(),
        );
    }
    let internal = match sp.internal_policy {
        TrafficPolicy::Local if local.is_empty() => Target::Drop,
        TrafficPolicy::Local => Target::Chain(local_chain.clone()),
        TrafficPolicy::Cluster if cluster.is_empty() => Target::Reject,
        TrafficPolicy::Cluster => Target::Chain(svc_chain.clone()),
    };
    if let Some(ip) = sp.cluster_ip {
        rs.sets
            .entry(CLUSTER_IPS)
            .or_default()
            .insert(ip.to_string());
        insert(
            rs,
            &format!("{ip} . {proto} . {}", sp.port),
            &internal,
            false,
        );
    }
    if !sp.has_external() {
        return;
    }
    let external = if cluster.is_empty() {
        Target::Reject
    } else {
        let ext_chain = format!("ext-{key}");
        let mut rules = Vec::new();
        match sp.external_policy {
            TrafficPolicy::Cluster => {
                rules.push("jump mark-for-masquerade".to_owned());
                rules.push(format!("goto {svc_chain}"));
            }
            TrafficPolicy::Local => {
                // Pods and the node itself reach the service as cluster traffic; others only
                // the node's own endpoints, keeping their source address.
                if let Some(cidr) = &config.cluster_cidr {
                    rules.push(format!("ip saddr {cidr} goto {svc_chain}"));
                }
                rules.push("fib saddr type local jump mark-for-masquerade".to_owned());
                rules.push(format!("fib saddr type local goto {svc_chain}"));
                rules.push(if local.is_empty() {
                    "drop".to_owned()
                } else {
                    format!("goto {local_chain}")
                });
            }
        }
        rs.chains.insert(ext_chain.clone(), rules);
        Target::Chain(ext_chain)
    };
    for ip in sp.external_ips.iter().chain(&sp.load_balancer_ips) {
        insert(
            rs,
            &format!("{ip} . {proto} . {}", sp.port),
            &external,
            false,
        );
    }
    if let Some(node_port) = sp.node_port {
        insert(rs, &format!("{proto} . {node_port}"), &external, true);
    }
}

fn insert(rs: &mut Ruleset, key: &str, target: &Target, node_port: bool) {
    let (map, verdict) = match (target, node_port) {
        (Target::Chain(chain), false) => (SERVICE_IPS, format!("goto {chain}")),
        (Target::Chain(chain), true) => (SERVICE_NODEPORTS, format!("goto {chain}")),
        (Target::Reject, false) => (NO_ENDPOINT_SERVICES, "goto reject-chain".to_owned()),
        (Target::Reject, true) => (NO_ENDPOINT_NODEPORTS, "goto reject-chain".to_owned()),
        (Target::Drop, false) => (NO_ENDPOINT_SERVICES, "drop".to_owned()),
        (Target::Drop, true) => (NO_ENDPOINT_NODEPORTS, "drop".to_owned()),
    };
    // Within one port the first claim stands; between ports, the first port's (see `merge`).
    if !claimed(rs, map, key) {
        rs.maps
            .entry(map)
            .or_default()
            .insert(key.to_owned(), verdict);
    }
}

/// A script that replaces the table with `rs`, atomically (one `nft -f` transaction).
pub fn full_script(config: &RulesConfig, rs: &Ruleset) -> String {
    let t = format!("ip {}", config.table);
    let mut s = String::new();
    let _ = writeln!(s, "add table {t}");
    let _ = writeln!(s, "delete table {t}");
    let _ = writeln!(s, "add table {t} {{ comment \"rkube service proxy\" ; }}");
    for map in [SERVICE_IPS, NO_ENDPOINT_SERVICES] {
        let _ = writeln!(
            s,
            "add map {t} {map} {{ type ipv4_addr . inet_proto . inet_service : verdict ; }}"
        );
    }
    for map in [SERVICE_NODEPORTS, NO_ENDPOINT_NODEPORTS] {
        let _ = writeln!(
            s,
            "add map {t} {map} {{ type inet_proto . inet_service : verdict ; }}"
        );
    }
    let _ = writeln!(
        s,
        "add map {t} {ENDPOINTS} {{ typeof numgen random mod 1 : ip daddr . tcp dport ; }}"
    );
    let _ = writeln!(s, "add set {t} {CLUSTER_IPS} {{ type ipv4_addr ; }}");
    let _ = writeln!(
        s,
        "add set {t} {NODEPORT_IPS} {{ type ipv4_addr ; flags interval ; }}"
    );
    let _ = writeln!(
        s,
        "add set {t} {HAIRPIN} {{ type ipv4_addr . ipv4_addr ; }}"
    );
    for (set, timeout) in &rs.affinity {
        add_affinity_set(&mut s, &t, set, *timeout);
    }
    let mut base: Vec<(&str, Option<&str>, Vec<String>)> = vec![
        (
            "mark-for-masquerade",
            None,
            vec![format!("meta mark set meta mark | {MASQUERADE_MARK:#x}")],
        ),
        (
            "masquerading",
            None,
            vec![
                format!("ct status dnat ip saddr . ip daddr @{HAIRPIN} jump mark-for-masquerade"),
                format!("meta mark & {MASQUERADE_MARK:#x} == 0 return"),
                format!("meta mark set meta mark ^ {MASQUERADE_MARK:#x}"),
                "masquerade fully-random".to_owned(),
            ],
        ),
        (
            // A TCP reset refuses a connection wherever it came from; ICMP for the rest.
            "reject-chain",
            None,
            vec![
                "meta l4proto tcp reject with tcp reset".to_owned(),
                "reject".to_owned(),
            ],
        ),
        (
            "services",
            None,
            vec![
                format!("ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}"),
                format!(
                    "fib daddr type local {} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}",
                    nodeport_match(config)
                ),
            ],
        ),
        (
            "endpoints-check",
            None,
            vec![
                format!("ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}"),
                format!(
                    "fib daddr type local {} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}",
                    nodeport_match(config)
                ),
            ],
        ),
        ("cluster-ips-check", None, {
            let mut rules = vec![format!("ip daddr @{CLUSTER_IPS} goto reject-chain")];
            for cidr in &config.service_cidrs {
                rules.push(format!("ip daddr {cidr} drop"));
            }
            rules
        }),
        (
            "nat-prerouting",
            Some("type nat hook prerouting priority dstnat ;"),
            vec!["jump services".to_owned()],
        ),
        (
            "nat-output",
            Some("type nat hook output priority -100 ;"),
            vec!["jump services".to_owned()],
        ),
        (
            "nat-postrouting",
            Some("type nat hook postrouting priority srcnat ;"),
            vec!["jump masquerading".to_owned()],
        ),
        (
            "filter-input",
            Some("type filter hook input priority -110 ;"),
            vec!["ct state new jump endpoints-check".to_owned()],
        ),
        (
            "filter-forward",
            Some("type filter hook forward priority -110 ;"),
            vec![
                "ct state new jump endpoints-check".to_owned(),
                "ct state new jump cluster-ips-check".to_owned(),
            ],
        ),
        (
            "filter-output",
            Some("type filter hook output priority -110 ;"),
            vec!["ct state new jump endpoints-check".to_owned()],
        ),
        (
            // After the output DNAT: what still goes to a service address was not served.
            "filter-output-post-dnat",
            Some("type filter hook output priority -90 ;"),
            vec!["ct state new jump cluster-ips-check".to_owned()],
        ),
    ];
    // Per-service chains exist before anything refers to them.
    for name in rs.chains.keys() {
        let _ = writeln!(s, "add chain {t} {name}");
    }
    for (name, hook, _) in &base {
        if hook.is_none() {
            let _ = writeln!(s, "add chain {t} {name}");
        }
    }
    for (name, rules) in &rs.chains {
        for rule in rules {
            let _ = writeln!(s, "add rule {t} {name} {rule}");
        }
    }
    for (map, elements) in &rs.maps {
        add_elements(
            &mut s,
            &t,
            map,
            elements.iter().map(|(k, v)| format!("{k} : {v}")),
        );
    }
    for (set, elements) in &rs.sets {
        add_elements(&mut s, &t, set, elements.iter().cloned());
    }
    // Base chains last: with hooks, they take traffic only once everything is in place.
    for (name, hook, rules) in base.drain(..) {
        match hook {
            Some(hook) => {
                let _ = writeln!(s, "add chain {t} {name} {{ {hook} }}");
            }
            None => {
                let _ = writeln!(s, "add chain {t} {name}");
            }
        }
        for rule in rules {
            let _ = writeln!(s, "add rule {t} {name} {rule}");
        }
    }
    s
}

/// The destination addresses node ports are served on.
fn nodeport_match(config: &RulesConfig) -> String {
    if config.nodeport_addresses.is_empty() {
        "ip daddr != 127.0.0.0/8".to_owned()
    } else {
        format!("ip daddr @{NODEPORT_IPS}")
    }
}

fn add_affinity_set(s: &mut String, t: &str, set: &str, timeout: u32) {
    let _ = writeln!(
        s,
        "add set {t} {set} {{ type ipv4_addr ; flags dynamic,timeout ; timeout {timeout}s ; }}"
    );
}

fn add_elements(s: &mut String, t: &str, name: &str, elements: impl Iterator<Item = String>) {
    let elements: Vec<String> = elements.collect();
    // A bounded number per command keeps lines short for big clusters.
    for chunk in elements.chunks(500) {
        let _ = writeln!(s, "add element {t} {name} {{ {} }}", chunk.join(", "));
    }
}

fn delete_elements(s: &mut String, t: &str, name: &str, keys: &[&String]) {
    for chunk in keys.chunks(500) {
        let keys: Vec<&str> = chunk.iter().map(|k| k.as_str()).collect();
        let _ = writeln!(s, "delete element {t} {name} {{ {} }}", keys.join(", "));
    }
}

/// A script that changes the applied `old` into `new`, touching only what differs; `None`
/// when nothing does.
pub fn diff_script(config: &RulesConfig, old: &Ruleset, new: &Ruleset) -> Option<String> {
    if old == new {
        return None;
    }
    let t = format!("ip {}", config.table);
    let mut s = String::new();
    for (set, timeout) in &new.affinity {
        match old.affinity.get(set) {
            None => add_affinity_set(&mut s, &t, set, *timeout),
            Some(old_timeout) if old_timeout != timeout => {
                // A set's timeout cannot change in place; its elements are re-learned.
                let _ = writeln!(s, "flush set {t} {set}");
            }
            Some(_) => {}
        }
    }
    for name in new.chains.keys() {
        if !old.chains.contains_key(name) {
            let _ = writeln!(s, "add chain {t} {name}");
        }
    }
    for (name, rules) in &new.chains {
        match old.chains.get(name) {
            Some(old_rules) if old_rules == rules => continue,
            Some(_) => {
                let _ = writeln!(s, "flush chain {t} {name}");
            }
            None => {}
        }
        for rule in rules {
            let _ = writeln!(s, "add rule {t} {name} {rule}");
        }
    }
    let empty_map = BTreeMap::new();
    for map in ALL_MAPS {
        let before = old.maps.get(map).unwrap_or(&empty_map);
        let after = new.maps.get(map).unwrap_or(&empty_map);
        let gone: Vec<&String> = before
            .iter()
            .filter(|(k, v)| after.get(*k) != Some(*v))
            .map(|(k, _)| k)
            .collect();
        delete_elements(&mut s, &t, map, &gone);
        let added = after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k} : {v}"));
        add_elements(&mut s, &t, map, added);
    }
    let empty_set = BTreeSet::new();
    for set in [CLUSTER_IPS, NODEPORT_IPS, HAIRPIN] {
        let before = old.sets.get(set).unwrap_or(&empty_set);
        let after = new.sets.get(set).unwrap_or(&empty_set);
        let gone: Vec<&String> = before.difference(after).collect();
        delete_elements(&mut s, &t, set, &gone);
        add_elements(&mut s, &t, set, after.difference(before).cloned());
    }
    // Chains that went: emptied first (they may refer to each other), then deleted.
    let removed: Vec<&String> = old
        .chains
        .keys()
        .filter(|name| !new.chains.contains_key(*name))
        .collect();
    for name in &removed {
        let _ = writeln!(s, "flush chain {t} {name}");
    }
    for name in &removed {
        let _ = writeln!(s, "delete chain {t} {name}");
    }
    for set in old.affinity.keys() {
        if !new.affinity.contains_key(set) {
            let _ = writeln!(s, "delete set {t} {set}");
        }
    }
    Some(s)
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
