//! The proxy's sync: the current Services and EndpointSlices to a rule set, applied as the
//! difference from the last one applied (the whole table on start, after a failure and
//! periodically), with stale UDP flows cleared.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::dataplane::{Dataplane, Error, StaleFlow};
use crate::model::{Protocol, ServicePort};
use crate::rules::{self, RulesConfig, Ruleset};

/// Where each UDP service address sends traffic: (address or node port, port) to endpoints.
type UdpServing = BTreeMap<(UdpKey, u16), BTreeSet<Ipv4Addr>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum UdpKey {
    Address(Ipv4Addr),
    NodePort,
}

fn udp_serving(ports: &[ServicePort]) -> UdpServing {
    let mut out = UdpServing::new();
    for sp in ports.iter().filter(|p| p.protocol == Protocol::Udp) {
        let endpoints: BTreeSet<Ipv4Addr> = sp.cluster_endpoints().iter().map(|e| e.ip).collect();
        for ip in sp
            .cluster_ip
            .iter()
            .chain(&sp.external_ips)
            .chain(&sp.load_balancer_ips)
        {
            out.insert((UdpKey::Address(*ip), sp.port), endpoints.clone());
        }
        if let Some(node_port) = sp.node_port {
            out.insert((UdpKey::NodePort, node_port), endpoints.clone());
        }
    }
    out
}

/// The UDP flows whose conntrack entries are stale after `old` became `new`.
fn stale_flows(old: &UdpServing, new: &UdpServing) -> Vec<StaleFlow> {
    let mut out = Vec::new();
    let none = BTreeSet::new();
    for ((key, port), endpoints) in new {
        let before = old.get(&(*key, *port)).unwrap_or(&none);
        if before.is_empty() && !endpoints.is_empty() {
            out.push(match key {
                UdpKey::Address(ip) => StaleFlow::ToService {
                    ip: *ip,
                    port: *port,
                },
                UdpKey::NodePort => StaleFlow::ToNodePort { port: *port },
            });
        }
    }
    for ((key, port), endpoints) in old {
        let UdpKey::Address(ip) = key else { continue };
        let after = new.get(&(*key, *port)).unwrap_or(&none);
        for endpoint in endpoints.difference(after) {
            out.push(StaleFlow::ToEndpoint {
                ip: *ip,
                endpoint: *endpoint,
            });
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The proxy's figures, rendered for /metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    syncs: AtomicU64,
    failures: AtomicU64,
    duration_micros_sum: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    last_sync_unix: AtomicU64,
    rules: AtomicU64,
}

const BUCKETS: [f64; 10] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 1.0,
];

impl Metrics {
    fn observe(&self, took: Duration, rules: usize) {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.duration_micros_sum.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        for (bucket, le) in self.buckets.iter().zip(BUCKETS) {
            if took.as_secs_f64() <= le {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.rules.store(rules as u64, Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_sync_unix.store(now, Ordering::Relaxed);
    }

    /// Prometheus text, in upstream kube-proxy's metric names where they exist.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let syncs = self.syncs.load(Ordering::Relaxed);
        let mut s = String::new();
        s.push_str("# HELP kubeproxy_sync_proxy_rules_duration_seconds SyncProxyRules latency in seconds\n");
        s.push_str("# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram\n");
        for (bucket, le) in self.buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                s,
                "kubeproxy_sync_proxy_rules_duration_seconds_bucket{{le=\"{le}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "kubeproxy_sync_proxy_rules_duration_seconds_bucket{{le=\"+Inf\"}} {syncs}"
        );
        let _ = writeln!(
            s,
            "kubeproxy_sync_proxy_rules_duration_seconds_sum {}",
            self.duration_micros_sum.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            s,
            "kubeproxy_sync_proxy_rules_duration_seconds_count {syncs}"
        );
        s.push_str("# HELP kubeproxy_sync_proxy_rules_last_timestamp_seconds The last time proxy rules were successfully synced\n");
        s.push_str("# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge\n");
        let _ = writeln!(
            s,
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds {}",
            self.last_sync_unix.load(Ordering::Relaxed)
        );
        s.push_str("# HELP rkube_proxy_sync_failures_total Rule syncs the packet filter refused\n");
        s.push_str("# TYPE rkube_proxy_sync_failures_total counter\n");
        let _ = writeln!(
            s,
            "rkube_proxy_sync_failures_total {}",
            self.failures.load(Ordering::Relaxed)
        );
        s.push_str("# HELP rkube_proxy_rules Rules and map elements programmed\n");
        s.push_str("# TYPE rkube_proxy_rules gauge\n");
        let _ = writeln!(
            s,
            "rkube_proxy_rules {}",
            self.rules.load(Ordering::Relaxed)
        );
        s
    }
}

/// Who claims a map key: the claiming ports in order (the first one's element is served).
type Claims = BTreeMap<(u8, String), BTreeMap<ClaimOrder, (&'static str, String)>>;

/// Ports in the order the rule set is built: Services by namespace and name.
type ClaimOrder = (String, String, String);

/// What each applied service port contributed, to change one port's part without looking at
/// the others.
#[derive(Default)]
struct Parts {
    /// Port key to its input and its part.
    ports: HashMap<String, (ServicePort, Ruleset)>,
    claims: Claims,
    /// Set elements with the number of parts that need them.
    needed: BTreeMap<(&'static str, String), usize>,
    /// The [`rules::ENDPOINTS`] blocks the parts hold.
    blocks: BTreeSet<u32>,
}

impl Parts {
    fn add(&mut self, sp: &ServicePort, key: String, part: Ruleset) {
        let order = (sp.namespace.clone(), sp.name.clone(), key.clone());
        for (map, elements) in &part.maps {
            for (k, v) in elements {
                self.claims
                    .entry((rules::key_space(map), k.clone()))
                    .or_default()
                    .insert(order.clone(), (*map, v.clone()));
            }
        }
        for (set, elements) in &part.sets {
            for e in elements {
                *self.needed.entry((*set, e.clone())).or_default() += 1;
            }
        }
        self.ports.insert(key, (sp.clone(), part));
    }

    fn remove(&mut self, key: &str) -> Option<(ServicePort, Ruleset)> {
        let (sp, part) = self.ports.remove(key)?;
        let order = (sp.namespace.clone(), sp.name.clone(), key.to_owned());
        for (map, elements) in &part.maps {
            for k in elements.keys() {
                let space = (rules::key_space(map), k.clone());
                if let Some(claimants) = self.claims.get_mut(&space) {
                    claimants.remove(&order);
                    if claimants.is_empty() {
                        self.claims.remove(&space);
                    }
                }
            }
        }
        for (set, elements) in &part.sets {
            for e in elements {
                let k = (*set, e.clone());
                if let Some(n) = self.needed.get_mut(&k) {
                    *n -= 1;
                    if *n == 0 {
                        self.needed.remove(&k);
                    }
                }
            }
        }
        Some((sp, part))
    }

    fn from_scratch(config: &RulesConfig, ports: &[ServicePort]) -> (Parts, Ruleset) {
        let mut parts = Parts::default();
        let mut blocks = rules::Blocks::new(BTreeMap::new(), BTreeSet::new());
        let mut ruleset = rules::empty(config);
        for sp in ports {
            let part = rules::port_part(config, &mut blocks, sp);
            parts.add(sp, sp.key(), part);
        }
        // The same assembly as `rules::build`: chains, sets and the first claim of each key.
        for (_, part) in parts.ports.values() {
            ruleset.chains.extend(part.chains.clone());
            ruleset.affinity.extend(part.affinity.clone());
            ruleset.blocks.extend(part.blocks.clone());
        }
        parts.blocks = ruleset.blocks.values().copied().collect();
        for (set, e) in parts.needed.keys() {
            ruleset.sets.entry(*set).or_default().insert(e.clone());
        }
        for ((_, k), claimants) in &parts.claims {
            if let Some((map, v)) = claimants.values().next() {
                ruleset
                    .maps
                    .entry(*map)
                    .or_default()
                    .insert(k.clone(), v.clone());
            }
        }
        (parts, ruleset)
    }
}

/// A change to the applied rule set: the affected chains, elements and sets before and after,
/// as two small rule sets [`rules::diff_script`] turns into a script.
struct Change {
    before: Ruleset,
    after: Ruleset,
}

impl Change {
    /// Makes `applied` what it is after the change.
    fn apply_to(self, applied: &mut Ruleset) {
        for name in self.before.chains.keys() {
            applied.chains.remove(name);
        }
        applied.chains.extend(self.after.chains);
        for name in self.before.affinity.keys() {
            applied.affinity.remove(name);
        }
        applied.affinity.extend(self.after.affinity);
        for name in self.before.blocks.keys() {
            applied.blocks.remove(name);
        }
        applied.blocks.extend(self.after.blocks);
        for (map, elements) in self.before.maps {
            if let Some(m) = applied.maps.get_mut(map) {
                for k in elements.keys() {
                    m.remove(k);
                }
            }
        }
        for (map, elements) in self.after.maps {
            applied.maps.entry(map).or_default().extend(elements);
        }
        for (set, elements) in self.before.sets {
            if let Some(s) = applied.sets.get_mut(set) {
                for e in &elements {
                    s.remove(e);
                }
            }
        }
        for (set, elements) in self.after.sets {
            applied.sets.entry(set).or_default().extend(elements);
        }
    }
}

/// The sync state: what was last applied.
pub struct Proxier {
    config: RulesConfig,
    dataplane: Arc<dyn Dataplane>,
    applied: Option<(Parts, Ruleset)>,
    udp: UdpServing,
    last_full: Option<Instant>,
    full_every: Duration,
    metrics: Arc<Metrics>,
}

impl Proxier {
    /// A proxier that has applied nothing yet.
    pub fn new(
        config: RulesConfig,
        dataplane: Arc<dyn Dataplane>,
        full_every: Duration,
        metrics: Arc<Metrics>,
    ) -> Proxier {
        Proxier {
            config,
            dataplane,
            applied: None,
            udp: UdpServing::new(),
            last_full: None,
            full_every,
            metrics,
        }
    }

    /// Makes the packet filter serve `ports`: the whole table when nothing is known to be
    /// applied or a periodic resync is due, else only what changed, computed from the ports
    /// that changed alone.
    pub fn sync(&mut self, ports: &[ServicePort], now: Instant) -> Result<(), Error> {
        let started = Instant::now();
        let due = self
            .last_full
            .is_none_or(|at| now.duration_since(at) >= self.full_every);
        let applied = if due { None } else { self.applied.take() };
        let (script, parts, ruleset) = match applied {
            Some((mut parts, mut ruleset)) => {
                let change = self.change(&mut parts, &ruleset, ports);
                let script = rules::diff_script(&self.config, &change.before, &change.after);
                change.apply_to(&mut ruleset);
                (script, parts, ruleset)
            }
            None => {
                let (parts, ruleset) = Parts::from_scratch(&self.config, ports);
                let script = rules::full_script(&self.config, &ruleset);
                (Some(script), parts, ruleset)
            }
        };
        if let Some(script) = script
            && let Err(e) = self.dataplane.apply(&script)
        {
            self.applied = None;
            self.metrics.failures.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
        if due {
            self.last_full = Some(now);
        }
        let udp = udp_serving(ports);
        let stale = stale_flows(&self.udp, &udp);
        if !stale.is_empty() {
            self.dataplane.clear_udp_flows(&stale);
        }
        self.udp = udp;
        self.metrics.observe(started.elapsed(), ruleset.size());
        self.applied = Some((parts, ruleset));
        Ok(())
    }

    /// Brings `parts` to `ports`, rebuilding only the ports that changed, and says what that
    /// changes in `applied`.
    fn change(&self, parts: &mut Parts, applied: &Ruleset, ports: &[ServicePort]) -> Change {
        let mut before = Ruleset::default();
        let mut after = Ruleset::default();
        let mut changed = Vec::new();
        let mut found = 0;
        let mut key = String::new();
        for sp in ports {
            key.clear();
            sp.write_key(&mut key);
            match parts.ports.get(key.as_str()) {
                Some((old, _)) => {
                    found += 1;
                    if old != sp {
                        changed.push((sp, key.clone()));
                    }
                }
                None => changed.push((sp, key.clone())),
            }
        }
        // Ports that went: only looked for when fewer than all known ones were found.
        let gone: Vec<String> = if found == parts.ports.len() {
            Vec::new()
        } else {
            let keys: HashSet<String> = ports.iter().map(ServicePort::key).collect();
            parts
                .ports
                .keys()
                .filter(|k| !keys.contains(*k))
                .cloned()
                .collect()
        };
        let mut claims = BTreeSet::new();
        let mut elements = BTreeSet::new();
        let mut reuse = BTreeMap::new();
        let removing = gone.iter().chain(changed.iter().map(|(_, key)| key));
        for key in removing {
            let Some((_, part)) = parts.remove(key) else {
                continue;
            };
            note(&part, &mut claims, &mut elements);
            reuse.extend(part.blocks.clone());
            before.chains.extend(part.chains);
            before.affinity.extend(part.affinity);
            before.blocks.extend(part.blocks);
        }
        let held = std::mem::take(&mut parts.blocks);
        let mut blocks = rules::Blocks::new(reuse, BTreeSet::new()).avoiding(&held);
        let mut new_parts = Vec::with_capacity(changed.len());
        for (sp, key) in changed {
            let part = rules::port_part(&self.config, &mut blocks, sp);
            note(&part, &mut claims, &mut elements);
            after.chains.extend(part.chains.clone());
            after.affinity.extend(part.affinity.clone());
            after.blocks.extend(part.blocks.clone());
            new_parts.push((sp, key, part));
        }
        drop(blocks);
        parts.blocks = held;
        for block in before.blocks.values() {
            parts.blocks.remove(block);
        }
        parts.blocks.extend(after.blocks.values().copied());
        for (sp, key, part) in new_parts {
            parts.add(sp, key, part);
        }
        for (space, key) in claims {
            let was = applied
                .maps
                .iter()
                .filter(|(m, _)| rules::key_space(m) == space)
                .find_map(|(m, elements)| Some((*m, elements.get(&key)?)));
            if let Some((map, value)) = was {
                before
                    .maps
                    .entry(map)
                    .or_default()
                    .insert(key.clone(), value.clone());
            }
            if let Some((map, value)) = parts
                .claims
                .get(&(space, key.clone()))
                .and_then(|c| c.values().next())
            {
                after
                    .maps
                    .entry(*map)
                    .or_default()
                    .insert(key, value.clone());
            }
        }
        for (set, e) in elements {
            if applied.sets.get(set).is_some_and(|s| s.contains(&e)) {
                before.sets.entry(set).or_default().insert(e.clone());
            }
            if parts.needed.contains_key(&(set, e.clone())) {
                after.sets.entry(set).or_default().insert(e);
            }
        }
        Change { before, after }
    }
}

/// Records the map keys and set elements `part` has, whose serving may change.
fn note(
    part: &Ruleset,
    claims: &mut BTreeSet<(u8, String)>,
    elements: &mut BTreeSet<(&'static str, String)>,
) {
    for (map, entries) in &part.maps {
        for k in entries.keys() {
            claims.insert((rules::key_space(map), k.clone()));
        }
    }
    for (set, entries) in &part.sets {
        for e in entries {
            elements.insert((*set, e.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::Recorder;
    use crate::model::{Endpoint, TrafficPolicy};

    fn udp_port(endpoints: &[&str]) -> ServicePort {
        ServicePort {
            namespace: "kube-system".to_owned(),
            name: "dns".to_owned(),
            port_name: "dns".to_owned(),
            protocol: Protocol::Udp,
            cluster_ip: Some("10.43.0.10".parse().unwrap()),
            port: 53,
            node_port: None,
            external_ips: Vec::new(),
            load_balancer_ips: Vec::new(),
            affinity_timeout: None,
            internal_policy: TrafficPolicy::Cluster,
            external_policy: TrafficPolicy::Cluster,
            health_check_node_port: None,
            endpoints: endpoints
                .iter()
                .map(|ip| Endpoint {
                    ip: ip.parse().unwrap(),
                    port: 53,
                    ready: true,
                    serving: true,
                    terminating: false,
                    local: true,
                })
                .collect(),
        }
    }

    fn proxier(recorder: &Arc<Recorder>) -> Proxier {
        let config = RulesConfig {
            table: "t".to_owned(),
            cluster_cidr: None,
            service_cidrs: Vec::new(),
            nodeport_addresses: Vec::new(),
        };
        Proxier::new(
            config,
            recorder.clone(),
            Duration::from_secs(3600),
            Arc::default(),
        )
    }

    #[test]
    fn the_first_sync_writes_the_table_and_later_ones_the_difference() {
        let recorder = Arc::new(Recorder::default());
        let mut p = proxier(&recorder);
        let now = Instant::now();
        p.sync(&[udp_port(&["10.42.0.5"])], now).unwrap();
        p.sync(&[udp_port(&["10.42.0.5"])], now).unwrap();
        p.sync(&[udp_port(&["10.42.0.6"])], now).unwrap();
        let scripts = recorder.scripts.lock().unwrap();
        assert_eq!(scripts.len(), 2, "an unchanged sync applies nothing");
        assert!(scripts[0].starts_with("add table ip t\ndelete table ip t\n"));
        assert!(!scripts[1].contains("delete table"));
        assert!(p.metrics.render().contains("rkube_proxy_rules "));
    }

    fn tcp_port(name: &str, cluster_ip: &str, endpoints: &[&str]) -> ServicePort {
        let mut sp = udp_port(endpoints);
        sp.namespace = "ns".to_owned();
        sp.name = name.to_owned();
        sp.protocol = Protocol::Tcp;
        sp.cluster_ip = Some(cluster_ip.parse().unwrap());
        sp
    }

    #[test]
    fn changes_computed_from_the_changed_ports_equal_a_rebuild() {
        let recorder = Arc::new(Recorder::default());
        let mut p = proxier(&recorder);
        let now = Instant::now();
        let mut a = tcp_port("a", "10.43.0.20", &["10.42.0.5", "10.42.0.6"]);
        a.external_ips = vec!["192.0.2.50".parse().unwrap()];
        let mut b = tcp_port("b", "10.43.0.21", &["10.42.0.6"]);
        b.external_ips = a.external_ips.clone();
        b.node_port = Some(30080);
        let c = tcp_port("c", "10.43.0.22", &[]);
        let mut steps = vec![vec![a.clone(), b.clone(), c.clone()]];
        let mut a2 = a.clone();
        a2.endpoints.pop();
        steps.push(vec![a2.clone(), b.clone(), c.clone()]);
        // The first claimant of the contested address goes: the second one gets it.
        steps.push(vec![b.clone(), c.clone()]);
        let mut c2 = c.clone();
        c2.endpoints = b.endpoints.clone();
        c2.affinity_timeout = Some(30);
        steps.push(vec![a2, b, c2]);
        steps.push(vec![c]);
        for ports in &steps {
            p.sync(ports, now).unwrap();
            let (_, applied) = p.applied.as_ref().unwrap();
            assert_eq!(
                *applied,
                rules::build_from(&p.config, ports, applied),
                "{ports:?}"
            );
        }
        let scripts = recorder.scripts.lock().unwrap();
        assert_eq!(scripts.len(), steps.len());
        assert!(
            scripts[2].contains("192.0.2.50 . tcp . 53 : goto ext-ns/b/tcp/dns"),
            "{}",
            scripts[2]
        );
        assert!(
            scripts[2].contains("delete element ip t hairpin { 10.42.0.5 . 10.42.0.5 }"),
            "{}",
            scripts[2]
        );
    }

    #[test]
    fn a_refused_sync_is_followed_by_a_full_one() {
        let recorder = Arc::new(Recorder::default());
        let mut p = proxier(&recorder);
        let now = Instant::now();
        p.sync(&[udp_port(&["10.42.0.5"])], now).unwrap();
        *recorder.fail_next.lock().unwrap() = true;
        assert!(p.sync(&[udp_port(&["10.42.0.6"])], now).is_err());
        p.sync(&[udp_port(&["10.42.0.6"])], now).unwrap();
        let scripts = recorder.scripts.lock().unwrap();
        assert!(scripts[1].contains("delete table ip t"));
    }

    #[test]
    fn udp_flows_are_cleared_when_endpoints_come_and_go() {
        let recorder = Arc::new(Recorder::default());
        let mut p = proxier(&recorder);
        let now = Instant::now();
        p.sync(&[udp_port(&[])], now).unwrap();
        p.sync(&[udp_port(&["10.42.0.5"])], now).unwrap();
        p.sync(&[udp_port(&["10.42.0.6"])], now).unwrap();
        let flows = recorder.flows.lock().unwrap();
        assert_eq!(
            *flows,
            [
                StaleFlow::ToService {
                    ip: "10.43.0.10".parse().unwrap(),
                    port: 53
                },
                StaleFlow::ToEndpoint {
                    ip: "10.43.0.10".parse().unwrap(),
                    endpoint: "10.42.0.5".parse().unwrap()
                }
            ]
        );
    }
}
